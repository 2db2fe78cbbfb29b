//! The seed study's reason model: the detailed churn reasons grouped into four categories
//! (价格 price, 质量 quality, 社会 social, 便捷 convenience) and the strategy table of what to do
//! for each category at each stage (预防 prevention, 维系 care, 挽留 retention, 挽回 win-back),
//! naming the library's offers that do it. The table is data: `<workspace>/strategies.toml`,
//! else the shipped one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use retain_features::expr::line_column;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::library::{Library, Stage};

/// The categories: (code, Chinese, English).
pub const CATEGORIES: [(&str, &str, &str); 4] = [
    ("price", "价格", "Price"),
    ("quality", "质量", "Quality"),
    ("social", "社会", "Social"),
    ("convenience", "便捷", "Convenience"),
];

/// The stages: (code, Chinese, English).
pub const STAGES: [(&str, &str, &str); 4] = [
    ("prevention", "预防", "Prevention"),
    ("care", "维系", "Care"),
    ("retention", "挽留", "Retention"),
    ("win_back", "挽回", "Win-back"),
];

/// The shipped strategy table.
pub const DEFAULT_STRATEGIES: &str = include_str!("../strategies/default.toml");

/// The category of a detailed reason (the model's and the ones only a conversation reveals);
/// `unknown` for a reason that names none.
#[must_use]
pub fn category_of(reason: &str) -> &'static str {
    match reason {
        "value_decline" | "competitor_lure" | "billing_arrears" | "price" => "price",
        "network_quality" | "service_complaints" => "quality",
        "low_engagement" | "relocation" => "social",
        "contract_expiry" => "convenience",
        _ => "unknown",
    }
}

/// One cell of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyCell {
    pub category: String,
    pub stage: String,
    pub measure_zh: String,
    pub measure_en: String,
    /// Ids of the library's offers that carry the measure out.
    pub offers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(rename = "strategy")]
    strategies: Vec<toml::Spanned<CellFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellFile {
    category: String,
    stage: String,
    measure_zh: String,
    measure_en: String,
    #[serde(default)]
    offers: Vec<String>,
}

/// The strategy table: every category × stage, once.
#[derive(Debug, Clone, Serialize)]
pub struct Strategies {
    /// The file read; empty for the shipped table.
    #[serde(skip)]
    pub source: PathBuf,
    pub cells: Vec<StrategyCell>,
}

/// The longest text a measure may have.
const MAX_MEASURE: usize = 512;

impl Strategies {
    /// Parses and checks a table against the library: known categories and stages, every cell
    /// once, measures in both languages, offers that exist and fit the stage (a win-back offer
    /// only where leavers are won back, a retention offer never there). With `lenient`, offers
    /// the library does not have are dropped instead (the shipped table over a library of the
    /// operator's own).
    pub fn parse(text: &str, path: &Path, library: &Library, lenient: bool) -> Result<Strategies> {
        let bad = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            Error::Config(format!("{}:{line}:{column}: {message}", path.display()))
        };
        let file: TableFile = toml::from_str(text)
            .map_err(|e| bad(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut cells = Vec::new();
        for spanned in file.strategies {
            let at = spanned.span().start;
            let mut cell = spanned.into_inner();
            if !CATEGORIES.iter().any(|(c, ..)| *c == cell.category) {
                let known: Vec<&str> = CATEGORIES.iter().map(|(c, ..)| *c).collect();
                return Err(bad(
                    at,
                    format!(
                        "unknown category {:?} (known: {})",
                        cell.category,
                        known.join(", ")
                    ),
                ));
            }
            if !STAGES.iter().any(|(s, ..)| *s == cell.stage) {
                let known: Vec<&str> = STAGES.iter().map(|(s, ..)| *s).collect();
                return Err(bad(
                    at,
                    format!(
                        "unknown stage {:?} (known: {})",
                        cell.stage,
                        known.join(", ")
                    ),
                ));
            }
            let key = (cell.category.clone(), cell.stage.clone());
            if seen.insert(key, at).is_some() {
                return Err(bad(
                    at,
                    format!("{} × {} is given twice", cell.category, cell.stage),
                ));
            }
            for (what, m) in [
                ("measure_zh", &cell.measure_zh),
                ("measure_en", &cell.measure_en),
            ] {
                if m.trim().is_empty() || m.chars().count() > MAX_MEASURE {
                    return Err(bad(at, format!("{what}: 1 to {MAX_MEASURE} characters")));
                }
            }
            let win_back = cell.stage == "win_back";
            let mut offers = Vec::with_capacity(cell.offers.len());
            for id in std::mem::take(&mut cell.offers) {
                let Some(offer) = library.get(&id) else {
                    if lenient {
                        continue;
                    }
                    return Err(bad(at, format!("offer {id} is not in the library")));
                };
                if (offer.stage == Stage::WinBack) != win_back {
                    return Err(bad(
                        at,
                        format!(
                            "offer {id} is for {} and cannot serve the {} stage",
                            if offer.stage == Stage::WinBack {
                                "leavers"
                            } else {
                                "subscribers still here"
                            },
                            cell.stage
                        ),
                    ));
                }
                offers.push(id);
            }
            cell.offers = offers;
            cells.push(StrategyCell {
                category: cell.category,
                stage: cell.stage,
                measure_zh: cell.measure_zh,
                measure_en: cell.measure_en,
                offers: cell.offers,
            });
        }
        for (c, ..) in CATEGORIES {
            for (s, ..) in STAGES {
                if !seen.contains_key(&(c.to_owned(), s.to_owned())) {
                    return Err(bad(0, format!("{c} × {s} is missing: every cell is given")));
                }
            }
        }
        // Category by category, stage by stage, whatever the file's order.
        let rank = |cell: &StrategyCell| {
            (
                CATEGORIES.iter().position(|(c, ..)| *c == cell.category),
                STAGES.iter().position(|(s, ..)| *s == cell.stage),
            )
        };
        cells.sort_by_key(rank);
        Ok(Strategies {
            source: path.to_path_buf(),
            cells,
        })
    }

    /// `<workspace>/strategies.toml` when present, else the shipped table over the library.
    pub fn for_workspace(
        workspace: &retain_data::Workspace,
        library: &Library,
    ) -> Result<Strategies> {
        let path = workspace.root().join("strategies.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            Self::parse(&text, &path, library, false)
        } else {
            Self::parse(
                DEFAULT_STRATEGIES,
                Path::new("<default strategies>"),
                library,
                true,
            )
        }
    }

    /// The cell of a category and stage.
    #[must_use]
    pub fn cell(&self, category: &str, stage: &str) -> Option<&StrategyCell> {
        self.cells
            .iter()
            .find(|c| c.category == category && c.stage == stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::REASONS;

    fn library() -> Library {
        Library::parse(crate::DEFAULT_OFFERS, Path::new("default.toml")).unwrap()
    }

    #[test]
    fn every_reason_has_a_category_and_the_shipped_table_every_cell() {
        for (code, _) in REASONS.iter().filter(|(c, _)| *c != "unknown") {
            assert_ne!(category_of(code), "unknown", "{code}");
        }
        for code in ["price", "relocation"] {
            assert_ne!(category_of(code), "unknown", "{code}");
        }
        let lib = library();
        let table =
            Strategies::parse(DEFAULT_STRATEGIES, Path::new("default.toml"), &lib, false).unwrap();
        assert_eq!(table.cells.len(), 16);
        // Every offer of the library serves somewhere.
        for offer in &lib.offers {
            assert!(
                table.cells.iter().any(|c| c.offers.contains(&offer.id)),
                "{} is in no cell",
                offer.id
            );
        }
        assert_eq!(
            table.cell("price", "win_back").unwrap().offers,
            ["WINBACK-DISC-30"]
        );
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let lib = library();
        for (from, to, says) in [
            (
                "category = \"price\"\nstage = \"care\"",
                "category = \"cost\"\nstage = \"care\"",
                "unknown category \"cost\"",
            ),
            ("stage = \"care\"", "stage = \"later\"", "unknown stage"),
            (
                "[\"LOYALTY-UP\", \"FAMILY-SHARE\"]",
                "[\"NO-SUCH\"]",
                "offer NO-SUCH is not in the library",
            ),
            (
                "offers = [\"WINBACK-DISC-30\"]",
                "offers = [\"DISC-20-6M\"]",
                "cannot serve the win_back stage",
            ),
            (
                "stage = \"prevention\"\nmeasure_zh = \"按用量",
                "stage = \"care\"\nmeasure_zh = \"按用量",
                "given twice",
            ),
            (
                "measure_en = \"A welcome-back price to port the number back.\"",
                "measure_en = \"  \"",
                "measure_en",
            ),
        ] {
            assert!(DEFAULT_STRATEGIES.contains(from), "{from}");
            let text = DEFAULT_STRATEGIES.replacen(from, to, 1);
            let err = Strategies::parse(&text, Path::new("s.toml"), &lib, false)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("s.toml:") && err.contains(says),
                "{says}: {err}"
            );
            let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
            assert!(line > 1, "{err}");
        }
        // A missing cell is named.
        let cut = DEFAULT_STRATEGIES.rsplit_once("[[strategy]]").unwrap().0;
        let err = Strategies::parse(cut, Path::new("s.toml"), &lib, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("convenience × win_back is missing"), "{err}");
        // The shipped table over an operator's library drops the offers it lacks.
        let own = Library::parse(
            "[[offer]]\nid = \"X1\"\nname_zh = \"x\"\nname_en = \"x\"\nkind = \"fee_discount\"\nreasons = [\"value_decline\"]\nchannels = [\"sms\"]\n",
            Path::new("offers.toml"),
        )
        .unwrap();
        let table =
            Strategies::parse(DEFAULT_STRATEGIES, Path::new("default.toml"), &own, true).unwrap();
        assert!(table.cells.iter().all(|c| c.offers.is_empty()));
    }
}
