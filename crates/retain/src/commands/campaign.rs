//! `retain campaign`: the campaign loop — create from a template, rehearse, approve, launch,
//! callbacks, evaluate — and the plan library.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use retain_campaign::{Actor, Campaigns, CreateRequest, Role};
use retain_data::Workspace;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Common {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Act as this user (`retain user add`): their role and approval level apply, and the
    /// audit log names them. Without it, the local operator acts as an admin: the command
    /// line trusts whoever can write the workspace; the server authenticates.
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
}

impl Common {
    async fn campaigns(&self) -> anyhow::Result<Campaigns> {
        Ok(Campaigns::open(&Workspace::open(&self.dir)?).await?)
    }

    async fn actor(&self, campaigns: &Campaigns) -> anyhow::Result<Actor> {
        let Some(name) = &self.actor else {
            return Ok(Actor::local());
        };
        let user = campaigns
            .store
            .user(name)
            .await?
            .with_context(|| format!("no user {name:?} (retain user add)"))?;
        if user.disabled {
            anyhow::bail!("user {name:?} is disabled");
        }
        let role = Role::from_code(&user.role)
            .with_context(|| format!("user {name:?} has an unknown role {:?}", user.role))?;
        Ok(Actor {
            name: user.name,
            role,
            level: user.approval_level,
        })
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Sub {
    /// Create a draft campaign from a template of the plan library; prints its id.
    Create {
        #[command(flatten)]
        common: Common,
        /// Template name (`retain campaign templates`).
        #[arg(long)]
        template: String,
        /// Budget in yuan (default: the template's).
        #[arg(long)]
        budget: Option<f64>,
        /// The campaign's date (YYYY-MM-DD); defaults to the month after the last loaded one.
        #[arg(long)]
        as_of: Option<String>,
        /// A name of your own.
        #[arg(long)]
        name: Option<String>,
        /// Seed of the rehearsal sample and the control draw (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Plan on a sample: projected reach, cost, saves, ROI and conflicts.
    Rehearse {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
    },
    /// Approve (or `--reject`) a rehearsed campaign.
    Approve {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
        #[arg(long)]
        reject: bool,
        /// A note for the audit log.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Launch an approved campaign: members, control group, work orders and channel files.
    Launch {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
    },
    /// Import a call centre's result file, or `--simulate` them (synthetic operator only).
    Callbacks {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
        /// Draw callbacks and outcomes from the synthetic operator's true offer effects.
        #[arg(long, conflicts_with = "file")]
        simulate: bool,
        /// Result file (CSV: work_order_id, reached, accepted[, stated_reason, notes, follow_up]).
        #[arg(required_unless_present = "simulate")]
        file: Option<PathBuf>,
    },
    /// Treated vs control retention with a confidence interval, ARPU change, cost and ROI.
    Evaluate {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
    },
    /// Care triggers of a month (welcome, first bill, birthday, contract expiry) as work
    /// orders of that month's care campaign, under the contact policy.
    Care {
        #[command(flatten)]
        common: Common,
        /// A day of the month to run (default: the month after the last loaded one).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Every campaign and where it stands.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// One campaign with its history (the audit log).
    Show {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        id: i64,
    },
    /// The plan library: saved and bundled templates.
    Templates {
        #[command(flatten)]
        common: Common,
    },
    /// Save a template file as the next version of its name.
    TemplateSave {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
    },
    /// Copy a template under a new name.
    TemplateClone {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(dispatch(&args.command))
}

/// `retain winback`: the recent leavers list.
#[derive(Debug, clap::Args)]
pub(crate) struct WinbackArgs {
    #[command(flatten)]
    common: Common,
    /// The list's date (YYYY-MM-DD); defaults to the month after the last loaded one.
    #[arg(long)]
    as_of: Option<String>,
    /// Leavers of the last this many months (1 to 24).
    #[arg(long, default_value_t = 3)]
    window_months: u32,
}

pub(crate) fn winback(args: &WinbackArgs) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let c = args.common.campaigns().await?;
        let as_of = match &args.as_of {
            Some(d) => super::parse_as_of(d)?,
            None => c.default_as_of().await?,
        };
        let leavers =
            retain_campaign::leavers(&c.ctx, &c.workspace, as_of, args.window_months).await?;
        let report =
            retain_campaign::write_list(&c.workspace, as_of, args.window_months, &leavers)?;
        let r = &report.summary;
        let text = format!(
            "{} leavers in the {} months before {as_of}: {} voluntary, {} involuntary (arrears \
             cut-offs, for arrears handling); {} reachable for a win-back (value {:.2}) by \
             channel {:?}; {} on the do-not-disturb list; by exit {:?}\nlist: {}",
            r.leavers,
            r.window_months,
            r.voluntary,
            r.involuntary,
            r.reachable,
            r.reachable_value,
            r.by_channel,
            r.do_not_disturb,
            r.by_exit,
            report.list_file.display()
        );
        emit(&args.common, &report, &text)
    })
}

fn emit(common: &Common, value: &impl serde::Serialize, text: &str) -> anyhow::Result<()> {
    if common.json {
        output::print_json(value)
    } else {
        output::print_text(text);
        Ok(())
    }
}

async fn dispatch(sub: &Sub) -> anyhow::Result<()> {
    match sub {
        Sub::Create {
            common,
            template,
            budget,
            as_of,
            name,
            seed,
        } => {
            let c = common.campaigns().await?;
            let req = CreateRequest {
                template: template.clone(),
                budget: *budget,
                as_of: as_of.as_deref().map(super::parse_as_of).transpose()?,
                name: name.clone(),
                seed: *seed,
            };
            let r = c.create(&req, &common.actor(&c).await?).await?;
            let text = format!(
                "campaign {} created from {} (v{}): budget {:.2}, approval level {}, as of {}",
                r.id, r.template, r.template_version, r.budget, r.approval_level, r.as_of
            );
            emit(common, &r, &text)
        }
        Sub::Rehearse { common, id } => {
            let c = common.campaigns().await?;
            let r = c.rehearse(*id, &common.actor(&c).await?).await?;
            let p = &r.projected;
            let mut text = format!(
                "campaign {id} rehearsed on {:.0}% of its target ({} of {}):\n  projected {} members ({} treated, {} control) by channel {:?}\n  reach {:.0}, cost {:.2} (expected {:.2}), expected saves {:.1}, saved value {:.2}, ROI {:.2}\n  in other running campaigns: {}; left out: {:?}; approval level {}",
                r.sample_share * 100.0,
                r.sampled,
                r.target,
                p.members,
                p.treated,
                p.control,
                p.treated_by_channel,
                p.expected_reach,
                p.cost,
                p.expected_cost,
                p.expected_saves,
                p.expected_saved_value,
                p.expected_roi,
                r.conflicts_running_campaigns,
                r.skipped_by_constraint,
                r.approval_level
            );
            let w = &r.power;
            let _ = write!(
                text,
                "\n  control share {:.2} (template {:.2}): expected uplift {:.4}, minimum detectable {} ({})",
                w.control_share,
                w.template_control_share,
                w.expected_uplift,
                w.min_detectable_uplift
                    .map_or_else(|| "none".to_owned(), |m| format!("{m:.4}")),
                if w.detectable {
                    "detectable"
                } else {
                    "not detectable"
                }
            );
            if p.surveys > 0 {
                let _ = write!(
                    text,
                    "\n  satisfaction survey: {} members of both arms, cost {:.2}",
                    p.surveys, p.survey_cost
                );
            }
            for n in &r.notes {
                let _ = write!(text, "\nnote: {n}");
            }
            emit(common, &r, &text)
        }
        Sub::Approve {
            common,
            id,
            reject,
            note,
        } => {
            let c = common.campaigns().await?;
            let r = c
                .approve(*id, &common.actor(&c).await?, *reject, note)
                .await?;
            let text = format!("campaign {id} is {}", r.status);
            emit(common, &r, &text)
        }
        Sub::Launch { common, id } => {
            let c = common.campaigns().await?;
            let r = c.launch(*id, &common.actor(&c).await?).await?;
            let mut text = format!(
                "campaign {id} {}: {} work orders, {} members",
                if r.created {
                    "launched"
                } else {
                    "was already launched"
                },
                r.work_orders,
                r.members
            );
            for f in &r.files {
                let _ = write!(text, "\n  {}", f.display());
            }
            emit(common, &r, &text)
        }
        Sub::Callbacks {
            common,
            id,
            simulate,
            file,
        } => {
            let c = common.campaigns().await?;
            let actor = common.actor(&c).await?;
            if *simulate {
                let r = c.simulate_callbacks(*id, &actor).await?;
                let text = format!(
                    "campaign {id}: {} simulated callbacks ({} reached, {} accepted), {} outcomes; true uplift {:.4}",
                    r.callbacks, r.reached, r.accepted, r.outcomes, r.true_uplift
                );
                return emit(common, &r, &text);
            }
            let file = file.as_ref().context("a result file or --simulate")?;
            let r = c.import_callbacks(*id, file, &actor).await?;
            let mut text = format!(
                "{}: read {}, loaded {} ({} new, {} corrected), quarantined {} → {}",
                r.file.display(),
                r.read,
                r.loaded,
                r.inserted,
                r.updated,
                r.quarantined,
                r.quarantine_file.display()
            );
            for e in &r.errors {
                let _ = write!(text, "\n  {e}");
            }
            emit(common, &r, &text)
        }
        Sub::Evaluate { common, id } => {
            let c = common.campaigns().await?;
            let (e, history) = c.evaluate(*id, &common.actor(&c).await?).await?;
            let win_back = retain_campaign::is_win_back(&c.get(*id).await?);
            let o = &e.overall;
            let mut text = format!(
                "campaign {id}: {} treated {:.4} ({}) vs control {:.4} ({}): uplift {:+.4} [{:+.4}, {:+.4}] (95%)\n  ARPU change {:+.2} vs {:+.2}; cost {:.2}; incremental {} {:.1}, saved value {:.2}, ROI {:.2}\n  stated reasons agree with the model's in {:.0}% of {} callbacks",
                if win_back { "returned" } else { "retention" },
                o.treated_retention,
                o.treated,
                o.control_retention,
                o.control,
                o.uplift.unwrap_or(f64::NAN),
                o.uplift_ci_low.unwrap_or(f64::NAN),
                o.uplift_ci_high.unwrap_or(f64::NAN),
                e.arpu_change_treated,
                e.arpu_change_control,
                e.cost,
                if win_back { "returns" } else { "saves" },
                e.incremental_saves,
                e.saved_value,
                e.roi.unwrap_or(f64::NAN),
                e.reasons.agreement * 100.0,
                e.reasons.stated
            );
            let _ = write!(
                text,
                "\n  {}; ROI interval [{}, {}]",
                if o.significant {
                    "significant (the interval excludes zero)".to_owned()
                } else {
                    format!(
                        "not significant: the interval includes zero (minimum detectable uplift {})",
                        o.min_detectable_uplift
                            .map_or_else(|| "none".to_owned(), |m| format!("{m:.4}"))
                    )
                },
                e.roi_ci_low
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                e.roi_ci_high
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            );
            let nps = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.1}"));
            let _ = write!(
                text,
                "\n  NPS treated {} ({} answers) vs control {} ({} answers); new-service penetration {:.1}%",
                nps(e.nps_treated),
                e.survey_treated.answers,
                nps(e.nps_control),
                e.survey_control.answers,
                e.new_service_penetration * 100.0
            );
            if !win_back {
                let l = &e.left;
                let _ = write!(
                    text,
                    "\n  left: treated {} voluntary, {} arrears cut-offs; control {} voluntary, {} arrears cut-offs",
                    l.treated_voluntary,
                    l.treated_involuntary,
                    l.control_voluntary,
                    l.control_involuntary
                );
            }
            if let Some(t) = e.true_uplift {
                let _ = write!(text, "\n  true uplift (synthetic truth): {t:+.4}");
            }
            let _ = write!(
                text,
                "\n  {}: {}",
                if win_back {
                    "contacts written (a return is not a save: not fed to campaign_history)"
                } else {
                    "contacts fed back to campaign_history"
                },
                history.display()
            );
            emit(common, &e, &text)
        }
        Sub::Care { common, as_of } => {
            let c = common.campaigns().await?;
            let as_of = as_of.as_deref().map(super::parse_as_of).transpose()?;
            let r = c.care(as_of, &common.actor(&c).await?).await?;
            let text = format!(
                "care {} (campaign {}): triggered {:?}; created {:?}; held back {:?}; {} work orders",
                r.month, r.id, r.triggered, r.created, r.held_back, r.work_orders
            );
            emit(common, &r, &text)
        }
        Sub::List { common } => {
            let c = common.campaigns().await?;
            let all = c.list().await?;
            let mut text = String::new();
            for r in &all {
                let _ = writeln!(
                    text,
                    "{:>4}  {:10} {:18} {:>12.2}  {}  {}",
                    r.id, r.status, r.template, r.budget, r.as_of, r.name
                );
            }
            if all.is_empty() {
                text.push_str(
                    "no campaigns yet (retain campaign create --template weekly-high-end)",
                );
            }
            emit(
                common,
                &serde_json::json!({ "count": all.len(), "campaigns": all }),
                text.trim_end(),
            )
        }
        Sub::Show { common, id } => {
            let c = common.campaigns().await?;
            let r = c.get(*id).await?;
            let history = c.store.audit_log("campaign", Some(&id.to_string())).await?;
            let orders = c.store.work_orders(*id).await?;
            let members = c.store.members(*id).await?;
            let treated = members.iter().filter(|m| m.arm == "treatment").count();
            let surveys = orders.iter().filter(|w| w.purpose == "survey").count();
            let mut text = format!(
                "campaign {} {:?}: {} from {} v{}, budget {:.2}, owner {}, {} work orders ({surveys} satisfaction surveys), {} members ({treated} treated)",
                r.id,
                r.name,
                r.status,
                r.template,
                r.template_version,
                r.budget,
                r.owner,
                orders.len(),
                members.len()
            );
            for e in &history {
                let _ = write!(text, "\n  {} {} {} {}", e.at, e.actor, e.action, e.detail);
            }
            emit(
                common,
                &serde_json::json!({
                    "campaign": r, "history": history, "work_orders": orders.len(),
                    "members": members.len(), "treated": treated, "surveys": surveys,
                }),
                &text,
            )
        }
        Sub::Templates { common } => {
            let c = common.campaigns().await?;
            let all = c.templates().await?;
            let mut text = String::new();
            for t in &all {
                let _ = writeln!(
                    text,
                    "{:18} v{:<3} {:8} {} / {} (budget {:.0}, control {:.0}%)",
                    t.name,
                    t.version,
                    t.source,
                    t.name_zh,
                    t.name_en,
                    t.budget,
                    t.control_share * 100.0
                );
            }
            emit(
                common,
                &serde_json::json!({ "templates": all }),
                text.trim_end(),
            )
        }
        Sub::TemplateSave { common, file } => {
            let c = common.campaigns().await?;
            let (name, version) = c.save_template(file, &common.actor(&c).await?).await?;
            emit(
                common,
                &serde_json::json!({ "name": name, "version": version }),
                &format!("saved {name} v{version}"),
            )
        }
        Sub::TemplateClone { common, from, to } => {
            let c = common.campaigns().await?;
            let version = c.clone_template(from, to, &common.actor(&c).await?).await?;
            emit(
                common,
                &serde_json::json!({ "name": to, "version": version }),
                &format!("saved {to} v{version} (from {from})"),
            )
        }
    }
}
