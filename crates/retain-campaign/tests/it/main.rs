//! The campaign loop on a small synthetic operator: every step, its guards, idempotent launch,
//! callbacks validated like ingest, and an evaluation whose interval matches the truth.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use retain_campaign::{Actor, Campaigns, CreateRequest, Error, Role};
use retain_data::Workspace;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

fn operator(dir: &Path, subscribers: u64) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers,
        months: 18,
        seed: 11,
        ..Default::default()
    };
    retain_synth::synthetic_workspace(&params, dir).unwrap()
}

/// Churn scores from an oracle that knows who intends to leave: the campaign loop is under
/// test here, not the model, and a sharp target makes the true effect large enough to see.
fn oracle_scores(ws: &Workspace) -> HashSet<i64> {
    let truth = std::fs::read_to_string(ws.root().join("truth/churn.csv")).unwrap();
    let pending: HashSet<i64> = truth
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("pending"))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    let subs = std::fs::read_to_string(ws.root().join("../in/subscribers.csv")).unwrap();
    let mut text =
        String::from("subscriber_id,probability,decile,reason_1,reason_2,reason_3,model_version\n");
    for line in subs.lines().skip(1) {
        let id: i64 = line.split(',').next().unwrap().parse().unwrap();
        let (p, d) = if pending.contains(&id) {
            (0.9, 1)
        } else {
            (0.02, 10)
        };
        let _ = writeln!(text, "{id},{p},{d},,,,1");
    }
    std::fs::create_dir_all(ws.root().join("scores")).unwrap();
    std::fs::write(ws.root().join("scores/2026-11-01.csv"), text).unwrap();
    pending
}

fn analyst() -> Actor {
    Actor {
        name: "ana".into(),
        role: Role::Analyst,
        level: 0,
    }
}

fn approver(level: i64) -> Actor {
    Actor {
        name: format!("boss{level}"),
        role: Role::Approver,
        level,
    }
}

/// A template that targets only the red level with one channel and a large control group,
/// so the test needs few subscribers.
const RED_CALLS: &str = r#"
name = "red-calls"
name_zh = "红色外呼"
name_en = "Red calls"
budget = 100000
control_share = 0.4
[target]
levels = ["red"]
deciles = [1]
[flow]
red = ["outbound_call"]
[sms]
text_zh = "{offer}"
text_en = "{offer}"
"#;

#[tokio::test]
async fn the_loop_runs_and_its_interval_matches_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 8000);
    let pending = oracle_scores(&ws);
    let c = Campaigns::open(&ws).await.unwrap();
    let file = dir.path().join("red-calls.toml");
    std::fs::write(&file, RED_CALLS).unwrap();
    assert_eq!(
        c.save_template(&file, &analyst()).await.unwrap(),
        ("red-calls".to_owned(), 1)
    );

    let req = CreateRequest {
        template: "red-calls".into(),
        budget: Some(50_000.0),
        as_of: Some(as_of()),
        seed: Some(3),
        ..CreateRequest::default()
    };
    let created = c.create(&req, &analyst()).await.unwrap();
    assert_eq!(
        (created.status.code(), created.approval_level),
        ("draft", 2)
    );
    // Nothing skips a step.
    assert!(matches!(
        c.launch(created.id, &analyst()).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        c.approve(created.id, &approver(3), false, "").await,
        Err(Error::Conflict(_))
    ));
    let r = c.rehearse(created.id, &analyst()).await.unwrap();
    assert!(r.sampled > 0 && r.sampled < r.target, "{r:?}");
    assert!(
        r.projected.cost > 0.0 && r.projected.cost <= 50_000.0 * 1.05,
        "{r:?}"
    );
    assert_eq!(r.constraint_violations, 0);
    // The rehearsal says what the planned sizes can detect; the share is the template's or
    // raised within its limit.
    let mde = r.min_detectable_uplift.unwrap();
    assert!(mde > 0.0 && mde < 1.0, "{r:?}");
    assert_eq!(r.power.min_detectable_uplift, Some(mde));
    assert!(
        (0.4..=0.5).contains(&r.power.control_share),
        "{:?}",
        r.power
    );
    assert_eq!(r.power.detectable, r.power.expected_uplift >= mde);
    assert!(
        r.projected.surveys > 0 && r.projected.survey_cost > 0.0,
        "{r:?}"
    );
    assert_eq!(
        r.projected
            .treated_by_channel
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        ["outbound_call"]
    );

    // Approval: an analyst may not, a level-1 approver may not sign a level-2 budget.
    assert!(matches!(
        c.approve(created.id, &analyst(), false, "").await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        c.approve(created.id, &approver(1), false, "").await,
        Err(Error::Forbidden(_))
    ));
    let approved = c
        .approve(created.id, &approver(2), false, "ok")
        .await
        .unwrap();
    assert_eq!(approved.status, retain_store::CampaignStatus::Approved);
    assert!(matches!(
        c.launch(created.id, &approver(3)).await,
        Err(Error::Forbidden(_))
    ));

    let first = c.launch(created.id, &analyst()).await.unwrap();
    assert!(first.created && first.work_orders > 0, "{first:?}");
    let again = c.launch(created.id, &analyst()).await.unwrap();
    assert!(!again.created);
    assert_eq!(
        (again.work_orders, again.members),
        (first.work_orders, first.members)
    );
    let members = c.store.members(created.id).await.unwrap();
    let treated = members.iter().filter(|m| m.arm == "treatment").count();
    let orders = c.store.work_orders(created.id).await.unwrap();
    let surveyed: HashSet<i64> = orders
        .iter()
        .filter(|w| w.purpose == "survey")
        .map(|w| w.subscriber_id)
        .collect();
    assert_eq!(first.work_orders as usize, treated + surveyed.len());
    assert_eq!(
        orders.iter().filter(|w| w.purpose == "retention").count(),
        treated
    );
    // The survey asks both arms, about a fifth of each (the default share).
    for arm in ["treatment", "control"] {
        let n = members.iter().filter(|m| m.arm == arm).count();
        let k = members
            .iter()
            .filter(|m| m.arm == arm && surveyed.contains(&m.subscriber_id))
            .count();
        assert!(k > 0 && k * 10 < n * 4, "{arm}: {k} of {n} surveyed");
    }
    // The control share the launch chose holds within each stratum (rounded).
    let share = first.power.unwrap().control_share;
    assert!(
        (share - r.power.control_share).abs() < 1e-12,
        "the launch holds out the rehearsed share"
    );
    let mut strata = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for m in &members {
        let e = strata.entry(&m.stratum).or_default();
        e.0 += 1;
        e.1 += usize::from(m.arm == "control");
    }
    for (s, (n, k)) in &strata {
        assert_eq!(*k, (*n as f64 * share).round() as usize, "{s}");
    }
    // The call list exists as CSV and xlsx, with a script and the result columns.
    let calls = c.dir(created.id).join("work_orders/outbound_call.csv");
    let text = std::fs::read_to_string(&calls).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("reached,accepted,stated_reason,satisfaction,notes,follow_up")
    );
    assert_eq!(text.lines().count(), 1 + treated + surveyed.len());
    let xlsx = std::fs::read(c.dir(created.id).join("work_orders/outbound_call.xlsx")).unwrap();
    assert!(
        xlsx.starts_with(b"PK\x03\x04") && xlsx.len() > 1000,
        "an xlsx is a zip"
    );
    // Every channel's list is a workbook as well.
    let lists: Vec<std::path::PathBuf> = std::fs::read_dir(c.dir(created.id).join("work_orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    assert!(!lists.is_empty());
    for csv in lists {
        assert!(csv.with_extension("xlsx").exists(), "{}", csv.display());
    }

    // A second campaign on the same people: those of the running first are left out.
    let second = c.create(&req, &analyst()).await.unwrap();
    let r2 = c.rehearse(second.id, &analyst()).await.unwrap();
    assert!(r2.conflicts_running_campaigns > 0, "{r2:?}");

    let sim = c.simulate_callbacks(created.id, &analyst()).await.unwrap();
    assert_eq!(sim.callbacks, treated + surveyed.len());
    assert_eq!(sim.outcomes, members.len());
    let (e, history) = c.evaluate(created.id, &analyst()).await.unwrap();
    assert_eq!(e.stage, "retention");
    assert_categories_count_everyone(&e, members.len());
    assert_leavers_counted_once(&e, &c.store.outcomes(created.id).await.unwrap());
    let truth = e.true_uplift.unwrap();
    let (lo, hi) = (
        e.overall.uplift_ci_low.unwrap(),
        e.overall.uplift_ci_high.unwrap(),
    );
    assert!(
        truth > 0.05,
        "the offers keep people in the synthetic world: {truth}"
    );
    assert!(
        lo > 0.0,
        "the interval must exclude 0 on the side of the truth: {e:?}"
    );
    assert!(
        lo <= truth && truth <= hi,
        "the interval covers the truth: [{lo}, {hi}] vs {truth}"
    );
    assert!(e.roi.unwrap().is_finite() && e.cost > 0.0);
    assert!(e.overall.significant, "{e:?}");
    let (roi_lo, roi_hi) = (e.roi_ci_low.unwrap(), e.roi_ci_high.unwrap());
    assert!(roi_lo < e.roi.unwrap() && e.roi.unwrap() < roi_hi, "{e:?}");
    // Satisfaction of both arms from the survey; the treated, cared for, answer higher in the
    // synthetic world, and the survey's calls are not the campaign's cost.
    assert!(
        e.survey_treated.answers > 0 && e.survey_control.answers > 0,
        "{e:?}"
    );
    let (nt, nc) = (e.nps_treated.unwrap(), e.nps_control.unwrap());
    assert!((-100.0..=100.0).contains(&nt) && (-100.0..=100.0).contains(&nc));
    assert!(
        e.survey_treated.mean_satisfaction > e.survey_control.mean_satisfaction,
        "{e:?}"
    );
    assert!(e.survey_cost > 0.0);
    assert!(e.callback_satisfaction.answers > 0);
    let taken: usize = e.takeup_by_kind.values().map(|t| t.taken).sum();
    assert_eq!(taken, e.accepted, "{e:?}");
    assert!((0.0..=1.0).contains(&e.new_service_penetration));
    assert!(e.reasons.stated > 0);
    assert!(
        e.by_offer
            .values()
            .map(|x| x.treated + x.control)
            .sum::<usize>()
            == members.len()
    );
    // Most members intend to leave (the oracle target) and the feedback reached the table.
    let leaving = members
        .iter()
        .filter(|m| pending.contains(&m.subscriber_id))
        .count();
    assert!(leaving * 2 > members.len());
    let fed = std::fs::read_to_string(&history).unwrap();
    assert_eq!(fed.lines().count(), 1 + members.len());
    let ctx = retain_features::session(&ws).await.unwrap();
    let n = ctx
        .sql(&format!(
            "SELECT COUNT(*) AS n FROM campaign_history WHERE campaign_id = 'RC{}'",
            created.id
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = n[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n as usize, members.len());

    // The history of the campaign is its audit log.
    let log = c
        .store
        .audit_log("campaign", Some(&created.id.to_string()))
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "rehearse",
            "approve_refused",
            "approve_refused",
            "approve",
            "launch",
            "callbacks_simulated",
            "evaluate"
        ]
    );
}

#[tokio::test]
async fn care_triggers_honour_the_contact_policy_and_run_once_a_month() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 2000);
    let subs = std::fs::read_to_string(ws.root().join("../in/subscribers.csv")).unwrap();
    let header: Vec<&str> = subs.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (id_c, msisdn_c, birth_c, status_c) = (
        col("subscriber_id"),
        col("msisdn"),
        col("birth_date"),
        col("status"),
    );
    // Everyone active born in November, and one in three of them on the DND list.
    let born: Vec<(i64, String)> = subs
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[birth_c].get(5..7) == Some("11") && f[status_c] == "active")
        .map(|f| (f[id_c].parse().unwrap(), f[msisdn_c].to_owned()))
        .collect();
    assert!(born.len() > 30);
    let mut dnd = String::from("msisdn\n");
    for (_, m) in born.iter().step_by(3) {
        let _ = writeln!(dnd, "{m}");
    }
    std::fs::write(ws.root().join("dnd.csv"), dnd).unwrap();
    let c = Campaigns::open(&ws).await.unwrap();
    let admin = Actor::local();
    let r = c.care(Some(as_of()), &admin).await.unwrap();
    assert_eq!(r.triggered["birthday"], born.len());
    let held = r.held_back.get("do_not_disturb").copied().unwrap_or(0);
    assert!(held >= born.len().div_ceil(3), "{r:?}");
    let orders = c.store.work_orders(r.id).await.unwrap();
    let birthdays: HashSet<i64> = orders
        .iter()
        .filter(|w| w.purpose == "birthday")
        .map(|w| w.subscriber_id)
        .collect();
    for (id, _) in born.iter().step_by(3) {
        assert!(!birthdays.contains(id), "{id} is on the DND list");
    }
    assert!(!birthdays.is_empty());
    for w in &orders {
        assert!(w.due_date.starts_with("2026-1"), "{w:?}");
        if w.channel == "sms" {
            assert!(w.payload["send_at"].as_str().unwrap() >= "09:00");
        }
    }
    assert!(r.created.values().sum::<u64>() == r.work_orders);
    // The same month again: the same campaign, nothing new.
    let again = c
        .care(Some(NaiveDate::from_ymd_opt(2026, 11, 15).unwrap()), &admin)
        .await
        .unwrap();
    assert_eq!(again.id, r.id);
    assert_eq!(again.created.values().sum::<u64>(), 0);
    assert_eq!(again.work_orders, r.work_orders);
    let care: Vec<_> = c
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.kind == "care")
        .collect();
    assert_eq!(care.len(), 1);
}

/// Every member who left is counted once, voluntary or not (自愿/非自愿).
fn assert_leavers_counted_once(
    e: &retain_campaign::Evaluation,
    outcomes: &[retain_store::OutcomeRecord],
) {
    let l = &e.left;
    let counted =
        l.treated_voluntary + l.treated_involuntary + l.control_voluntary + l.control_involuntary;
    assert_eq!(
        counted,
        outcomes.iter().filter(|o| !o.retained).count(),
        "{l:?}"
    );
}

/// By the seed study's categories (价格/质量/社会/便捷): every member counted once.
fn assert_categories_count_everyone(e: &retain_campaign::Evaluation, members: usize) {
    let counted: usize = e.by_category.values().map(|g| g.treated + g.control).sum();
    assert_eq!(counted, members);
    for k in e.by_category.keys() {
        assert!(
            ["price", "quality", "social", "convenience", "unknown"].contains(&k.as_str()),
            "{k}"
        );
    }
}

/// Each expected rejection is reported naming the file, its line and the column given.
fn assert_rejected(r: &retain_campaign::ImportReport, file: &Path, expected: &[(&str, usize)]) {
    for (needle, column) in expected {
        let line = r
            .errors
            .iter()
            .find(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {:?}", r.errors));
        assert!(line.contains(&format!(":{column}: ")), "{line}");
        assert!(line.starts_with(&file.display().to_string()), "{line}");
    }
}

#[tokio::test]
async fn callbacks_are_validated_like_ingest_and_unreached_visits_escalate() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 3000);
    oracle_scores(&ws);
    let c = Campaigns::open(&ws).await.unwrap();
    let admin = Actor::local();
    let req = CreateRequest {
        template: "level-flow".into(),
        as_of: Some(as_of()),
        seed: Some(9),
        ..CreateRequest::default()
    };
    let id = c.create(&req, &admin).await.unwrap().id;
    c.rehearse(id, &admin).await.unwrap();
    c.approve(id, &admin, false, "").await.unwrap();
    c.launch(id, &admin).await.unwrap();
    let orders = c.store.work_orders(id).await.unwrap();
    let visit = orders
        .iter()
        .find(|w| w.channel == "manager_visit")
        .expect("red subscribers with a manager are visited first");
    let call = orders
        .iter()
        .find(|w| w.channel != "manager_visit" && w.purpose == "retention")
        .unwrap();
    let survey = orders
        .iter()
        .find(|w| w.purpose == "survey")
        .expect("members of both arms are surveyed");
    let file = dir.path().join("results.csv");
    std::fs::write(
        &file,
        format!(
            "\u{feff}work_order_id,reached,accepted,stated_reason,notes,follow_up\n\
             {},否,否,,not home,2026-11-10\n\
             {},是,是,资费偏高,ok,\n\
             {},yes,maybe,,,\n\
             999999,1,0,,,\n\
             {},0,1,,,\n\
             {},1,0,price,dup,\n\
             {},1,0,,,11/20/2026\n",
            visit.id, call.id, call.id, call.id, call.id, call.id
        ),
    )
    .unwrap();
    let r = c.import_callbacks(id, &file, &admin).await.unwrap();
    assert_eq!((r.read, r.loaded, r.quarantined), (7, 2, 5), "{r:?}");
    assert_eq!(r.read, r.loaded + r.quarantined);
    let q = std::fs::read_to_string(&r.quarantine_file).unwrap();
    assert_eq!(q.lines().count(), 6);
    assert_rejected(
        &r,
        &file,
        &[
            ("maybe", 3),
            ("999999", 1),
            ("accepted but not reached", 3),
            ("already given on line 3", 1),
            ("YYYY-MM-DD", 6),
        ],
    );
    let callbacks = c.store.callbacks(id).await.unwrap();
    assert_eq!(callbacks.len(), 2);
    assert_eq!(
        callbacks
            .iter()
            .find(|cb| cb.work_order_id == call.id)
            .unwrap()
            .stated_reason
            .as_deref(),
        Some("price")
    );
    // The visit found no one: a call follows, due from the follow-up date.
    let after = c.store.work_orders(id).await.unwrap();
    let escalated: Vec<_> = after.iter().filter(|w| w.purpose == "escalation").collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].subscriber_id, visit.subscriber_id);
    assert_eq!(escalated[0].channel, "outbound_call");
    assert_eq!(escalated[0].due_date, "2026-11-17");
    // Importing the same file again corrects, never duplicates.
    let again = c.import_callbacks(id, &file, &admin).await.unwrap();
    assert_eq!((again.inserted, again.updated), (0, 2));
    // The same sheet saved as CSV by a Chinese-language Excel is GBK: it reads the same.
    let text = std::fs::read_to_string(&file).unwrap();
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(text.trim_start_matches('\u{feff}'));
    assert!(!unmappable);
    let gbk_file = dir.path().join("results-gbk.csv");
    std::fs::write(&gbk_file, &gbk).unwrap();
    let from_gbk = c.import_callbacks(id, &gbk_file, &admin).await.unwrap();
    assert_eq!(
        (
            from_gbk.read,
            from_gbk.loaded,
            from_gbk.inserted,
            from_gbk.updated
        ),
        (7, 2, 0, 2),
        "{from_gbk:?}"
    );
    let callbacks = c.store.callbacks(id).await.unwrap();
    assert!(callbacks.iter().any(|cb| cb.notes == "not home"));
    // And saved as a workbook (the call list went out as one): the first sheet reads the same.
    let xlsx_file = dir.path().join("results.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        for (c, cell) in line.split(',').enumerate() {
            sheet
                .write_string(u32::try_from(r).unwrap(), u16::try_from(c).unwrap(), cell)
                .unwrap();
        }
    }
    book.save(&xlsx_file).unwrap();
    let from_xlsx = c.import_callbacks(id, &xlsx_file, &admin).await.unwrap();
    assert_eq!(
        (from_xlsx.read, from_xlsx.loaded, from_xlsx.updated),
        (7, 2, 2),
        "{from_xlsx:?}"
    );
    assert!(
        from_xlsx
            .errors
            .iter()
            .any(|e| e.contains("results.xlsx:5:")),
        "{:?}",
        from_xlsx.errors
    );
    // Satisfaction (0–10) in the result file: a survey's answer, checked like every column.
    let other_survey = orders
        .iter()
        .filter(|w| w.purpose == "survey")
        .nth(1)
        .expect("more than one member is surveyed");
    let sat = dir.path().join("survey.csv");
    std::fs::write(
        &sat,
        format!(
            "work_order_id,reached,accepted,satisfaction\n\
             {},是,否,8分\n\
             {},0,0,7\n\
             {},1,0,11\n\
             {},1,0,half\n\
             {},1,1,9\n",
            survey.id, call.id, call.id, visit.id, other_survey.id
        ),
    )
    .unwrap();
    let r = c.import_callbacks(id, &sat, &admin).await.unwrap();
    assert_eq!((r.read, r.loaded, r.quarantined), (5, 1, 4), "{r:?}");
    assert_rejected(
        &r,
        &sat,
        &[
            ("a satisfaction score but not reached", 4),
            ("\"11\" is not a whole number 0–10", 4),
            ("\"half\" is not a whole number 0–10", 4),
            ("satisfaction survey: it offers nothing to accept", 3),
        ],
    );
    let answered = c.store.callbacks(id).await.unwrap();
    let answer = answered
        .iter()
        .find(|cb| cb.work_order_id == survey.id)
        .unwrap();
    assert_eq!(answer.satisfaction, Some(8));

    // Bytes that are neither UTF-8 nor GBK are refused, naming the file.
    let garbage = dir.path().join("garbage.csv");
    std::fs::write(
        &garbage,
        b"work_order_id,reached,accepted\n1,\xff\xfe\xff,0\n",
    )
    .unwrap();
    let err = c
        .import_callbacks(id, &garbage, &admin)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.csv") && err.contains("GBK"), "{err}");
    assert_eq!(c.store.work_orders(id).await.unwrap().len(), after.len());
    // Evaluating before the data shows any outcome is a clear refusal.
    let err = c.evaluate(id, &admin).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(_)) && err.to_string().contains("2027-02"),
        "{err}"
    );

    // A campaign of the past is evaluated on what the loaded data shows happened. Its target:
    // subscribers the truth says left between May and August, and some who stayed.
    let truth = std::fs::read_to_string(ws.root().join("truth/churn.csv")).unwrap();
    let left: HashSet<i64> = truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let month = f.get(7).copied().unwrap_or("");
            (f[1] == "churned" && f[2] == "quantity" && ("2026-05".."2026-09").contains(&month))
                .then(|| f[0].parse().ok())?
        })
        .collect();
    let mut text =
        String::from("subscriber_id,probability,decile,reason_1,reason_2,reason_3,model_version\n");
    let subs = std::fs::read_to_string(ws.root().join("../in/subscribers.csv")).unwrap();
    for (i, line) in subs.lines().skip(1).enumerate() {
        let id: i64 = line.split(',').next().unwrap().parse().unwrap();
        let p = if left.contains(&id) || i % 7 == 0 {
            0.9
        } else {
            0.02
        };
        let _ = writeln!(text, "{id},{p},1,,,,1");
    }
    std::fs::write(ws.root().join("scores/2026-11-01.csv"), text).unwrap();
    let past = CreateRequest {
        template: "level-flow".into(),
        as_of: Some(NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()),
        seed: Some(4),
        ..CreateRequest::default()
    };
    let old = c.create(&past, &admin).await.unwrap().id;
    c.rehearse(old, &admin).await.unwrap();
    c.approve(old, &admin, false, "").await.unwrap();
    let launched = c.launch(old, &admin).await.unwrap();
    assert!(launched.members > 0);
    let (e, _) = c.evaluate(old, &admin).await.unwrap();
    assert_eq!(e.outcome_source, "observed");
    assert_leavers_counted_once(&e, &c.store.outcomes(old).await.unwrap());
    // Arrears cut-offs among the observed leavers are the truth's.
    let cut_off = e.left.treated_involuntary + e.left.control_involuntary;
    let truth_cut: usize = truth
        .lines()
        .skip(1)
        .filter(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            cells[4] == "arrears_suspension_cancel" && ("2026-05".."2026-09").contains(&cells[7])
        })
        .count();
    assert!(
        cut_off <= truth_cut + 2,
        "{cut_off} cut-offs, the truth has {truth_cut}"
    );
    assert_eq!(e.outcomes as u64, launched.members);
    assert!(e.true_uplift.is_none());
    let outcomes = c.store.outcomes(old).await.unwrap();
    let consistent = outcomes
        .iter()
        .filter(|o| o.retained != left.contains(&o.subscriber_id))
        .count();
    assert!(outcomes.iter().any(|o| !o.retained), "some members left");
    assert!(
        consistent * 100 >= outcomes.len() * 95,
        "observed outcomes follow the truth: {consistent} of {}",
        outcomes.len()
    );
}

#[tokio::test]
async fn the_rule_backtest_leaves_out_subscribers_a_campaign_treated() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 1500);
    let ctx = retain_features::session(&ws).await.unwrap();
    let rules =
        retain_warn::RuleSet::parse(retain_warn::DEFAULT_RULES, Path::new("rules.toml")).unwrap();
    let options = retain_warn::BacktestOptions::default();
    let with = retain_warn::backtest(&ctx, &rules, &options).await.unwrap();
    ctx.deregister_table("campaign_history").unwrap();
    let without = retain_warn::backtest(&ctx, &rules, &options).await.unwrap();
    assert_eq!(with.snapshots, without.snapshots);
    assert!(
        with.overall.population < without.overall.population,
        "{} vs {}",
        with.overall.population,
        without.overall.population
    );
}

/// Rows of `campaign_history`, read fresh from the table file.
async fn history_rows(ws: &Workspace) -> i64 {
    let ctx = retain_features::session(ws).await.unwrap();
    let n = ctx
        .sql("SELECT COUNT(*) AS n FROM campaign_history")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    n[0].column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

/// A busy call centre: launches and evaluations of one campaign clicked four times at once.
/// One of each does the work, the others are told the campaign is busy (or find it done), and
/// `campaign_history` ends with every row it had plus the campaign's, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_launches_and_evaluations_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 3000);
    oracle_scores(&ws);
    let c = std::sync::Arc::new(Campaigns::open(&ws).await.unwrap());
    let file = dir.path().join("red-calls.toml");
    std::fs::write(&file, RED_CALLS).unwrap();
    c.save_template(&file, &analyst()).await.unwrap();
    let req = CreateRequest {
        template: "red-calls".into(),
        budget: Some(50_000.0),
        as_of: Some(as_of()),
        seed: Some(3),
        ..CreateRequest::default()
    };
    let id = c.create(&req, &analyst()).await.unwrap().id;
    c.rehearse(id, &analyst()).await.unwrap();
    c.approve(id, &approver(3), false, "ok").await.unwrap();

    let four = |launch: bool| {
        let c = c.clone();
        async move {
            let calls: Vec<_> = (0..4)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        if launch {
                            c.launch(id, &analyst()).await.map(|_| ())
                        } else {
                            c.evaluate(id, &analyst()).await.map(|_| ())
                        }
                    })
                })
                .collect();
            let mut done = 0;
            for call in calls {
                match call.await.unwrap() {
                    Ok(()) => done += 1,
                    Err(Error::Conflict(m)) => assert!(m.contains("busy"), "{m}"),
                    Err(e) => panic!("{e}"),
                }
            }
            done
        }
    };
    assert!(four(true).await >= 1);
    let members = c.store.members(id).await.unwrap();
    let orders = c.store.work_orders(id).await.unwrap();
    assert_eq!(
        orders.iter().filter(|w| w.purpose == "retention").count(),
        members.iter().filter(|m| m.arm == "treatment").count(),
        "one work order per treated member, however many launches"
    );
    let surveyed: HashSet<i64> = orders
        .iter()
        .filter(|w| w.purpose == "survey")
        .map(|w| w.subscriber_id)
        .collect();
    assert_eq!(
        surveyed.len(),
        orders.len() - members.iter().filter(|m| m.arm == "treatment").count(),
        "one survey per surveyed member, however many launches"
    );
    c.simulate_callbacks(id, &analyst()).await.unwrap();
    let before = history_rows(&ws).await;
    assert!(before > 0);
    assert!(four(false).await >= 1);
    assert_eq!(history_rows(&ws).await, before + members.len() as i64);
    assert_eq!(
        c.get(id).await.unwrap().status,
        retain_store::CampaignStatus::Evaluated
    );
    // Nothing of the evaluations' staging is left behind.
    let tables = ws.root().join("tables");
    let left: Vec<String> = std::fs::read_dir(&tables)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".staging-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Win-back (挽回): the recent leavers, voluntary and reachable only, graded by value, offered
/// a return under the budget, measured against a control group whose interval covers the
/// synthetic truth; a return teaches the retention offers nothing.
#[tokio::test]
async fn win_back_targets_reachable_voluntary_leavers_and_its_interval_covers_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path(), 20_000);
    oracle_scores(&ws);
    let c = Campaigns::open(&ws).await.unwrap();
    let leavers = retain_campaign::leavers(&c.ctx, &ws, as_of(), 3)
        .await
        .unwrap();
    assert!(
        leavers.iter().any(|l| !l.voluntary),
        "arrears cut-offs are seen"
    );
    let reachable: HashSet<i64> = leavers
        .iter()
        .filter(|l| l.targetable())
        .map(|l| l.subscriber_id)
        .collect();
    // How each left, against the truth's path.
    let truth = std::fs::read_to_string(ws.root().join("truth/churn.csv")).unwrap();
    let path: std::collections::HashMap<i64, String> = truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1] == "churned").then(|| Some((f[0].parse().ok()?, f[4].to_owned())))?
        })
        .collect();
    for l in &leavers {
        let expected = match path.get(&l.subscriber_id).map(String::as_str) {
            Some("port_out") => "port_out",
            Some("arrears_suspension_cancel") => "arrears",
            Some("formal_cancel" | "requested_stop_cancel") => "requested",
            other => panic!(
                "{} left without a quantity path: {other:?}",
                l.subscriber_id
            ),
        };
        assert_eq!(l.exit, expected, "{l:?}");
        assert!(l.left_on < as_of() && l.left_on >= NaiveDate::from_ymd_opt(2026, 8, 1).unwrap());
    }
    let written = retain_campaign::write_list(&ws, as_of(), 3, &leavers).unwrap();
    let report = &written.summary;
    assert_eq!(report.voluntary + report.involuntary, report.leavers);
    assert_eq!(report.reachable + report.unreachable, report.leavers);
    assert_eq!(report.reachable, reachable.len());
    let list = std::fs::read(&written.list_file).unwrap();
    assert!(list.starts_with(b"\xEF\xBB\xBF"), "people open it in Excel");
    assert_eq!(
        String::from_utf8_lossy(&list).lines().count(),
        1 + report.leavers
    );
    assert!(written.xlsx_file.exists());

    let req = CreateRequest {
        template: "win-back".into(),
        budget: Some(200_000.0),
        as_of: Some(as_of()),
        seed: Some(5),
        ..CreateRequest::default()
    };
    let id = c.create(&req, &analyst()).await.unwrap().id;
    let r = c.rehearse(id, &analyst()).await.unwrap();
    assert!(r.min_detectable_uplift.is_some(), "{r:?}");
    assert!(r.skipped_by_constraint.contains_key("involuntary"), "{r:?}");
    c.approve(id, &approver(3), false, "").await.unwrap();
    let launched = c.launch(id, &analyst()).await.unwrap();
    assert!(launched.members > 50, "{launched:?}");
    let members = c.store.members(id).await.unwrap();
    assert!(
        members.iter().all(|m| reachable.contains(&m.subscriber_id)),
        "only reachable voluntary leavers are members"
    );
    let orders = c.store.work_orders(id).await.unwrap();
    assert!(
        orders
            .iter()
            .all(|w| w.purpose == "win_back" && w.offer_id.starts_with("WINBACK-"))
    );
    assert_eq!(
        orders.len(),
        members.iter().filter(|m| m.arm == "treatment").count()
    );
    let sim = c.simulate_callbacks(id, &analyst()).await.unwrap();
    assert_eq!(sim.outcomes, members.len());
    let learned_before = std::fs::read(ws.root().join("offers/learning.json")).ok();
    let (e, _) = c.evaluate(id, &analyst()).await.unwrap();
    assert_eq!(e.stage, "win_back");
    assert_categories_count_everyone(&e, members.len());
    let truth = e.true_uplift.unwrap();
    let (lo, hi) = (
        e.overall.uplift_ci_low.unwrap(),
        e.overall.uplift_ci_high.unwrap(),
    );
    assert!(
        truth > 0.05,
        "a welcome-back offer brings people back: {truth}"
    );
    assert!(
        lo <= truth && truth <= hi,
        "the interval covers the truth: [{lo}, {hi}] vs {truth}"
    );
    assert!(
        e.overall.control_retention < 0.2,
        "few come back unprompted: {e:?}"
    );
    // A return is not a save: the retention offers' learning does not count it.
    assert_eq!(
        std::fs::read(ws.root().join("offers/learning.json")).ok(),
        learned_before
    );
    // And the matching of subscribers at risk never offers a win-back offer.
    let prepared = retain_offers::prepare(&c.ctx, &ws, as_of(), None, 1)
        .await
        .unwrap();
    for cs in &prepared.choices {
        for choice in cs {
            let offer = &prepared.library.offers[choice.offer as usize];
            assert_eq!(offer.stage, retain_offers::Stage::Retain, "{}", offer.id);
        }
    }
}
