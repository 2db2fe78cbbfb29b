//! The offer library (维系政策库): retention offers as data, with their cost model, eligibility,
//! the churn reasons they address, channels, validity, limits and approval level.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use retain_features::expr::{Compiler, ExprError, line_column, parse, toml_offset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reason::REASONS;

/// The library shipped with retain, drawn from the seed studies.
pub const DEFAULT_OFFERS: &str = include_str!("../offers/default.toml");

/// What an offer gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    FeeDiscount,
    DataBonus,
    FamilyAddon,
    ContractRenewal,
    LoyaltyUpgrade,
    VipService,
    NetworkFix,
    BillAdjustment,
    PartnerCoupon,
    ReturnGift,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::FeeDiscount,
        Kind::DataBonus,
        Kind::FamilyAddon,
        Kind::ContractRenewal,
        Kind::LoyaltyUpgrade,
        Kind::VipService,
        Kind::NetworkFix,
        Kind::BillAdjustment,
        Kind::PartnerCoupon,
        Kind::ReturnGift,
    ];

    /// The code used in files and campaign history.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Kind::FeeDiscount => "fee_discount",
            Kind::DataBonus => "data_bonus",
            Kind::FamilyAddon => "family_addon",
            Kind::ContractRenewal => "contract_renewal",
            Kind::LoyaltyUpgrade => "loyalty_upgrade",
            Kind::VipService => "vip_service",
            Kind::NetworkFix => "network_fix",
            Kind::BillAdjustment => "bill_adjustment",
            Kind::PartnerCoupon => "partner_coupon",
            Kind::ReturnGift => "return_gift",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    #[must_use]
    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).expect("listed")
    }
}

/// How an offer reaches the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    App,
    OutboundCall,
    Store,
    ManagerVisit,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::App,
        Channel::OutboundCall,
        Channel::Store,
        Channel::ManagerVisit,
    ];

    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::App => "app",
            Channel::OutboundCall => "outbound_call",
            Channel::Store => "store",
            Channel::ManagerVisit => "manager_visit",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.code() == code)
    }

    #[must_use]
    pub fn index(self) -> usize {
        Channel::ALL
            .iter()
            .position(|c| *c == self)
            .expect("listed")
    }

    /// Channels that interrupt the subscriber remotely and so respect quiet hours; a store
    /// pop-up or a visit happens when the subscriber is there.
    #[must_use]
    pub fn is_remote(self) -> bool {
        matches!(self, Channel::Sms | Channel::App | Channel::OutboundCall)
    }
}

/// Who must approve an offer before a campaign may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    None,
    Supervisor,
    Director,
}

/// Cost if accepted: `fixed + arpu_share × ARPU × months` (yuan).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CostModel {
    pub fixed: f64,
    pub arpu_share: f64,
    pub months: f64,
}

impl CostModel {
    #[must_use]
    pub fn cost(&self, arpu: f64) -> f64 {
        self.fixed + self.arpu_share * arpu.max(0.0) * self.months
    }
}

/// One retention offer.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: Kind,
    /// Subscribers still here, or recent leavers (a win-back offer is never matched to a
    /// subscriber at risk, nor a retention offer to a leaver).
    pub stage: Stage,
    pub cost: CostModel,
    /// A condition over features, tags, segments and warnings; empty = everyone.
    pub eligibility: String,
    /// The churn reasons (see [`REASONS`]) the offer addresses.
    pub reasons: Vec<String>,
    pub channels: Vec<Channel>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    /// How many times one subscriber may receive it within `limit_days`.
    pub limit_per_subscriber: u32,
    pub limit_days: u32,
    pub approval: Approval,
    /// A budget of its own (yuan), within the run's total budget.
    pub budget: Option<f64>,
    /// The share of would-be churners with an addressed reason it is expected to keep, before
    /// any campaign has measured it.
    pub prior_save_rate: f64,
    pub talking_point_zh: String,
    pub talking_point_en: String,
    /// The eligibility as SQL over the condition compiler's columns.
    #[serde(skip)]
    pub(crate) sql: String,
}

impl Offer {
    /// Whether the offer may be used on `date`.
    #[must_use]
    pub fn valid_on(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|d| d <= date) && self.valid_to.is_none_or(|d| date <= d)
    }

    #[must_use]
    pub fn addresses(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r == reason)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryFile {
    #[serde(rename = "offer")]
    offers: Vec<OfferFile>,
}

fn default_limit() -> u32 {
    1
}

/// The longest window an offer's limit per subscriber may count over: ten years.
const MAX_LIMIT_DAYS: u32 = 3653;

fn default_limit_days() -> u32 {
    180
}

fn default_prior() -> f64 {
    0.05
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferFile {
    id: toml::Spanned<String>,
    name_zh: String,
    name_en: String,
    kind: Kind,
    #[serde(default)]
    stage: Stage,
    #[serde(default)]
    cost: CostModel,
    #[serde(default)]
    eligibility: Option<toml::Spanned<String>>,
    reasons: toml::Spanned<Vec<String>>,
    channels: toml::Spanned<Vec<Channel>>,
    #[serde(default)]
    valid_from: Option<toml::value::Datetime>,
    #[serde(default)]
    valid_to: Option<toml::value::Datetime>,
    #[serde(default = "default_limit")]
    limit_per_subscriber: u32,
    #[serde(default = "default_limit_days")]
    limit_days: u32,
    #[serde(default)]
    approval: Approval,
    #[serde(default)]
    budget: Option<f64>,
    #[serde(default = "default_prior")]
    prior_save_rate: f64,
    #[serde(default)]
    talking_point_zh: String,
    #[serde(default)]
    talking_point_en: String,
}

/// A validity bound as a date between 2000-01-01 and 2100-12-31, the range every date the
/// product plans with lies in; a bare time of day is no date.
fn to_date(d: Option<toml::value::Datetime>) -> std::result::Result<Option<NaiveDate>, String> {
    let Some(d) = d else { return Ok(None) };
    let date = d
        .date
        .ok_or_else(|| format!("{d} is a time of day, not a date"))?;
    let day = NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
    .filter(|day| (2000..=2100).contains(&day.year()))
    .ok_or_else(|| format!("{d} is not a date between 2000-01-01 and 2100-12-31"))?;
    Ok(Some(day))
}

/// Whom an offer is for: subscribers still here (维系, the matching) or recent leavers (挽回,
/// the win-back campaigns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Retain,
    WinBack,
}

impl Stage {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Stage::Retain => "retain",
            Stage::WinBack => "win_back",
        }
    }
}

/// A compiled offer library.
#[derive(Debug)]
pub struct Library {
    pub source: PathBuf,
    pub offers: Vec<Offer>,
    pub(crate) compiler: Compiler,
}

impl Library {
    /// Parses and validates a library; an error names the file, line, column and offer.
    pub fn parse(text: &str, path: &Path) -> Result<Library> {
        let bad = |offer: &str, offset: usize, message: &str| {
            let (line, column) = line_column(text, offset);
            Error::Config(format!(
                "{}:{line}:{column}: offer {offer}: {message}",
                path.display()
            ))
        };
        let file: LibraryFile = toml::from_str(text)
            .map_err(|e| bad("(file)", e.span().map_or(0, |s| s.start), e.message()))?;
        let mut compiler = Compiler::default();
        let mut offers: Vec<Offer> = Vec::new();
        for o in file.offers {
            let id = o.id.get_ref().clone();
            let at = o.id.span().start;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(&id, at, "an offer id is letters, digits, - and _"));
            }
            if offers.iter().any(|x| x.id == id) {
                return Err(bad(&id, at, "this offer id is used twice"));
            }
            for (what, v) in [
                ("cost.fixed", o.cost.fixed),
                ("cost.arpu_share", o.cost.arpu_share),
                ("cost.months", o.cost.months),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(bad(&id, at, &format!("{what} must be a number ≥ 0")));
                }
            }
            if !(0.0..=1.0).contains(&o.prior_save_rate) {
                return Err(bad(&id, at, "prior_save_rate is a share between 0 and 1"));
            }
            if o.budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
                return Err(bad(&id, at, "budget must be a number ≥ 0"));
            }
            if o.limit_per_subscriber == 0 {
                return Err(bad(&id, at, "limit_per_subscriber must be at least 1"));
            }
            if let Some(r) = o
                .reasons
                .get_ref()
                .iter()
                .find(|r| !REASONS.iter().any(|(code, _)| code == r))
            {
                let known: Vec<&str> = REASONS.iter().map(|(c, _)| *c).collect();
                return Err(bad(
                    &id,
                    o.reasons.span().start,
                    &format!("unknown reason {r:?} (known: {})", known.join(", ")),
                ));
            }
            if o.channels.get_ref().is_empty() {
                return Err(bad(&id, o.channels.span().start, "no channel"));
            }
            let valid_from =
                to_date(o.valid_from).map_err(|e| bad(&id, at, &format!("valid_from: {e}")))?;
            let valid_to =
                to_date(o.valid_to).map_err(|e| bad(&id, at, &format!("valid_to: {e}")))?;
            if !(1..=MAX_LIMIT_DAYS).contains(&o.limit_days) {
                return Err(bad(
                    &id,
                    at,
                    &format!("limit_days is 1 to {MAX_LIMIT_DAYS} (ten years)"),
                ));
            }
            if let (Some(f), Some(t)) = (valid_from, valid_to)
                && f > t
            {
                return Err(bad(&id, at, "valid_from is after valid_to"));
            }
            let (eligibility, sql) = match &o.eligibility {
                Some(when) if !when.get_ref().trim().is_empty() => {
                    let start = when.span().start;
                    let (sql, _) = parse(when.get_ref())
                        .and_then(|e| compiler.condition(&e))
                        .map_err(|ExprError { offset, message }| {
                            bad(&id, toml_offset(text, start, offset), &message)
                        })?;
                    (when.get_ref().clone(), sql)
                }
                _ => (String::new(), "TRUE".to_owned()),
            };
            offers.push(Offer {
                id,
                name_zh: o.name_zh,
                name_en: o.name_en,
                kind: o.kind,
                stage: o.stage,
                cost: o.cost,
                eligibility,
                reasons: o.reasons.into_inner(),
                channels: o.channels.into_inner(),
                valid_from,
                valid_to,
                limit_per_subscriber: o.limit_per_subscriber,
                limit_days: o.limit_days,
                approval: o.approval,
                budget: o.budget,
                prior_save_rate: o.prior_save_rate,
                talking_point_zh: o.talking_point_zh,
                talking_point_en: o.talking_point_en,
                sql,
            });
        }
        if offers.is_empty() {
            return Err(bad("(file)", 0, "the library has no offer"));
        }
        Ok(Library {
            source: path.to_path_buf(),
            offers,
            compiler,
        })
    }

    /// `<workspace>/offers.toml` when present, else the shipped library.
    pub fn for_workspace(workspace: &retain_data::Workspace) -> Result<Library> {
        let path = workspace.root().join("offers.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            Self::parse(&text, &path)
        } else {
            Ok(Self::parse(DEFAULT_OFFERS, Path::new("<default offers>"))
                .expect("the default offers compile (tested)"))
        }
    }

    /// The share of leavers with `reason` the library expects an offer of `kind` to keep, as
    /// the matching values an untested kind: an offer's prior where it answers the reason, a
    /// fifth of it elsewhere; the best offer of the kind. `None` when no offer is of the kind.
    #[must_use]
    pub fn prior_save(&self, reason: &str, kind: &str) -> Option<f64> {
        self.offers
            .iter()
            .filter(|o| o.kind.code() == kind && o.stage == Stage::Retain)
            .map(|o| {
                if o.addresses(reason) {
                    o.prior_save_rate
                } else {
                    o.prior_save_rate * 0.2
                }
            })
            .reduce(f64::max)
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_library_compiles_and_covers_every_kind_and_reason() {
        let lib = Library::parse(DEFAULT_OFFERS, Path::new("default.toml")).unwrap();
        for kind in Kind::ALL {
            assert!(
                lib.offers.iter().any(|o| o.kind == kind),
                "no offer of kind {}",
                kind.code()
            );
        }
        for (reason, _) in REASONS.iter().filter(|(r, _)| *r != "unknown") {
            assert!(
                lib.offers.iter().any(|o| o.addresses(reason)),
                "no offer addresses {reason}"
            );
        }
        for o in &lib.offers {
            assert!(
                !o.talking_point_zh.is_empty() && !o.talking_point_en.is_empty(),
                "{}",
                o.id
            );
        }
    }

    #[test]
    fn errors_name_file_line_column_and_offer() {
        let text = "[[offer]]\nid = \"X1\"\nname_zh = \"x\"\nname_en = \"x\"\nkind = \"fee_discount\"\nreasons = [\"value_decline\"]\nchannels = [\"sms\"]\neligibility = \"plan_fee >= \"\n";
        let err = Library::parse(text, Path::new("offers.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("offers.toml:8:"), "{err}");
        assert!(err.contains("offer X1"), "{err}");

        let text = text
            .replace("plan_fee >= ", "plan_fee >= 10")
            .replace("value_decline", "boredom");
        let err = Library::parse(&text, Path::new("offers.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("offers.toml:6:"), "{err}");
        assert!(err.contains("unknown reason \"boredom\""), "{err}");

        let err = Library::parse(
            "[[offer]]\nid = \"a\"\nkind = \"gift\"\n",
            Path::new("o.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("o.toml:"), "{err}");
    }

    #[test]
    fn an_eligibility_out_of_range_is_refused_when_the_library_is_read() {
        let offer = |eligibility: &str| {
            format!(
                "[[offer]]\nid = \"X1\"\nname_zh = \"x\"\nname_en = \"x\"\nkind = \"fee_discount\"\nreasons = [\"value_decline\"]\nchannels = [\"sms\"]\neligibility = \"{eligibility}\"\n"
            )
        };
        for (eligibility, column, message) in [
            // Once accepted here, it broke every rehearsal that read the library.
            ("count(complaint,4000000000d) = 0", 32, "at most 3660 days"),
            ("plan_fee >= 18 \\u0000", 31, "control character U+0000"),
            (r"\t\t'中文' = 1", 25, "different types"),
        ] {
            let err = Library::parse(&offer(eligibility), Path::new("offers.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("offers.toml:8:{column}: offer X1")),
                "{eligibility}: {err}"
            );
            assert!(err.contains(message), "{eligibility}: {err}");
        }
    }

    #[test]
    fn cost_model_and_validity() {
        let c = CostModel {
            fixed: 10.0,
            arpu_share: 0.2,
            months: 6.0,
        };
        assert!((c.cost(100.0) - 130.0).abs() < 1e-9);
        let text = "[[offer]]\nid = \"X1\"\nname_zh = \"x\"\nname_en = \"x\"\nkind = \"data_bonus\"\nreasons = []\nchannels = [\"sms\"]\nvalid_from = 2026-11-01\nvalid_to = 2026-12-31\n";
        let lib = Library::parse(text, Path::new("o.toml")).unwrap();
        let o = &lib.offers[0];
        assert!(o.valid_on(NaiveDate::from_ymd_opt(2026, 11, 15).unwrap()));
        assert!(!o.valid_on(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
        assert_eq!(o.sql, "TRUE");
    }

    #[test]
    fn dates_and_limit_windows_out_of_range_are_refused_when_read() {
        let offer = "[[offer]]\nid = \"X1\"\nname_zh = \"x\"\nname_en = \"x\"\nkind = \"data_bonus\"\nreasons = []\nchannels = [\"sms\"]\n";
        for (extra, message) in [
            (
                "valid_from = 0001-01-01\n",
                "valid_from: 0001-01-01 is not a date",
            ),
            (
                "valid_to = 2999-12-31\n",
                "valid_to: 2999-12-31 is not a date",
            ),
            (
                "valid_to = 12:00:00\n",
                "valid_to: 12:00:00 is a time of day",
            ),
            ("limit_days = 0\n", "limit_days is 1 to 3653"),
            ("limit_days = 4000000000\n", "limit_days is 1 to 3653"),
        ] {
            let err = Library::parse(&format!("{offer}{extra}"), Path::new("o.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{extra}: {err}");
            assert!(err.contains("o.toml:2:6: offer X1"), "{extra}: {err}");
        }
        let fine = format!(
            "{offer}valid_from = 2000-01-01\nvalid_to = 2100-12-31T08:00:00\nlimit_days = 3653\n"
        );
        Library::parse(&fine, Path::new("o.toml")).unwrap();
    }

    #[test]
    fn deeply_nested_files_are_refused_without_exhausting_the_stack() {
        // A request body is at most 1 MiB: these are what fits in one.
        let deep = 200_000;
        for text in [
            format!("x = {}", "[".repeat(deep)),
            format!("x = {}1{}", "[".repeat(deep), "]".repeat(deep)),
            format!("x = {}", "{a=".repeat(deep)),
            format!("a{} = 1", ".a".repeat(deep)),
            format!("[a{}]", ".a".repeat(deep)),
            format!("[[a{}]]", ".a".repeat(deep)),
        ] {
            // On a thread with a small stack, as a server worker has.
            let err = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    Library::parse(&text, Path::new("o.toml"))
                        .unwrap_err()
                        .to_string()
                })
                .unwrap()
                .join()
                .unwrap();
            assert!(err.starts_with("o.toml:1:"), "{err}");
        }
    }
}
