//! Offer matching on a small synthetic operator: the plan honours every constraint and the
//! verifier catches each kind of break; decisions honour the contact policy.

use std::fmt::Write as _;

use chrono::{Duration, NaiveDate, NaiveTime};
use retain_data::Workspace;
use retain_offers::{
    Channel, Contact, DecisionIndex, Level, MatchOptions, Strategy, arbitrate, run_match, verify,
};

fn operator(dir: &std::path::Path) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers: 3000,
        months: 18,
        seed: 5,
        ..Default::default()
    };
    retain_synth::synthetic_workspace(&params, dir).unwrap()
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

/// A warning list from the shipped rules, and churn scores from a fixed spread (the model is
/// another crate's business; matching only reads its file).
async fn upstream(ws: &Workspace) -> Vec<(i64, String)> {
    let ctx = retain_features::session(ws).await.unwrap();
    let rules = retain_warn::RuleSet::parse(
        retain_warn::DEFAULT_RULES,
        std::path::Path::new("rules.toml"),
    )
    .unwrap();
    retain_warn::run(&ctx, &rules, ws, as_of(), retain_features::Cadence::Monthly)
        .await
        .unwrap();
    let mut ids: Vec<(i64, String)> = retain_offers::msisdn_map(&ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|(m, id)| (id, m))
        .collect();
    ids.sort();
    let subscribers: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
    let probabilities: Vec<f64> = (0..ids.len())
        .map(|i| [0.02, 0.05, 0.1, 0.2, 0.35, 0.6][i % 6])
        .collect();
    retain_model::write_scores(
        ws,
        as_of(),
        1,
        &subscribers,
        &probabilities,
        &std::collections::HashMap::new(),
    )
    .unwrap();
    ids
}

fn caught(run: &retain_offers::MatchRun, plan: &retain_offers::Plan, budget: f64, rule: &str) {
    let v = verify(plan, &run.inputs, &run.library, &run.policy, budget);
    assert!(
        v.iter().any(|x| x.constraint == rule),
        "{rule} not caught: {v:?}"
    );
}

#[tokio::test]
async fn the_plan_honours_every_constraint_and_the_verifier_catches_each_break() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path());
    let ids = upstream(&ws).await;
    // Tight channels so capacity binds; a do-not-disturb list by msisdn.
    std::fs::write(
        ws.root().join("policy.toml"),
        "campaign_days = 2\n[channels.outbound_call]\ncontact_cost = 2.0\ndaily_capacity = 15\n[channels.store]\ncontact_cost = 5.0\ndaily_capacity = 5\n",
    )
    .unwrap();
    let dnd: Vec<&(i64, String)> = ids.iter().step_by(10).collect();
    let mut text = String::from("msisdn\n");
    for (_, m) in &dnd {
        let _ = writeln!(text, "{m}");
    }
    let _ = writeln!(text, "19999999999");
    std::fs::write(ws.root().join("dnd.csv"), text).unwrap();

    let ctx = retain_features::session(&ws).await.unwrap();
    let budget = 3000.0;
    let run = run_match(
        &ctx,
        &ws,
        &MatchOptions {
            as_of: as_of(),
            budget,
            seed: 1,
            partitions: None,
        },
    )
    .await
    .unwrap();
    let r = &run.report;
    assert_eq!(r.constraint_violations, 0, "{:?}", r.violations);
    // A later run that died before its index was complete is passed over.
    let done = retain_offers::latest_run_dir(&ws).unwrap();
    assert_eq!(done, retain_offers::run_dir(&ws, as_of()));
    let died = retain_offers::run_dir(&ws, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
    std::fs::create_dir_all(&died).unwrap();
    std::fs::copy(done.join("decisions.csv"), died.join("decisions.csv")).unwrap();
    assert_eq!(retain_offers::latest_run_dir(&ws).unwrap(), done);
    std::fs::remove_dir_all(&died).unwrap();
    assert!(
        r.assigned > 20,
        "{} assigned of {} candidates",
        r.assigned,
        r.candidates
    );
    assert!(r.cost <= budget);
    assert!(
        r.skipped_by_constraint
            .get("do_not_disturb")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(
        r.skipped_by_constraint.contains_key("channel_capacity")
            || r.by_channel
                .get("outbound_call")
                .is_some_and(|t| t.count <= 30)
    );
    let sim = r
        .simulated_saved_value
        .as_ref()
        .expect("the truth is in the workspace");
    assert!(sim.retain > 0.0 && sim.random > 0.0, "{sim:?}");
    assert_eq!(r.baselines["random"].constraint_violations, 0);
    assert_eq!(r.baselines["max_discount"].constraint_violations, 0);
    // The oracle, knowing every true cause and effect under the same rules, keeps the most.
    assert_eq!(r.baselines["oracle"].constraint_violations, 0);
    assert!(
        sim.oracle >= sim.retain && sim.oracle >= sim.random && sim.oracle >= sim.max_discount,
        "{sim:?}"
    );
    assert!(
        sim.retain_vs_oracle > 0.0 && sim.retain_vs_oracle <= 1.0,
        "{sim:?}"
    );
    assert_eq!(
        r.uplift.campaign_periods.len(),
        7,
        "{:?}",
        r.uplift.campaign_periods
    );
    assert_eq!(r.uplift.held_out_periods.len(), 2);
    // Every assignment says why, and reds come first on every day of a full channel.
    for a in &run.plan.assignments {
        assert!(a.expected_value > 0.0 && !a.reason.is_empty(), "{a:?}");
        if a.channel.is_remote() {
            assert!(!run.policy.is_quiet(a.time.unwrap()));
        }
    }
    assert!(r.assignment_file.exists() && r.skipped_file.exists());
    let written = std::fs::read_to_string(&r.assignment_file).unwrap();
    assert_eq!(written.lines().count(), r.assigned + 1);
    assert!(!written.contains(&ids[0].1), "phone numbers are masked");

    // Tampering: each break is caught by name.
    let base = run.plan.clone();
    caught(&run, &base, r.cost - 1.0, "budget");
    let mut p = base.clone();
    p.assignments.push(p.assignments[0].clone());
    caught(&run, &p, budget * 2.0, "one_offer_per_run");
    let mut p = base.clone();
    let remote = p
        .assignments
        .iter()
        .position(|a| a.channel.is_remote())
        .unwrap();
    p.assignments[remote].time = Some(NaiveTime::from_hms_opt(22, 30, 0).unwrap());
    caught(&run, &p, budget, "quiet_hours");
    let mut p = base.clone();
    p.assignments[0].day = as_of() + Duration::days(30);
    caught(&run, &p, budget, "schedule");
    let mut p = base.clone();
    p.assignments[0].cost -= 1.0;
    caught(&run, &p, budget, "cost");
    let mut p = base.clone();
    let dnd_id = run
        .inputs
        .candidates
        .iter()
        .find(|c| run.inputs.ledger.dnd.contains(&c.subscriber_id))
        .unwrap()
        .subscriber_id;
    let mut a = p.assignments[0].clone();
    a.subscriber_id = dnd_id;
    p.assignments.push(a);
    caught(&run, &p, budget * 2.0, "do_not_disturb");
    let mut p = base.clone();
    let first = p.assignments[0].clone();
    for _ in 0..60 {
        let mut a = first.clone();
        a.channel = Channel::OutboundCall;
        p.assignments.push(a);
    }
    caught(&run, &p, budget * 100.0, "channel_capacity");
    let mut p = base.clone();
    let offer = run
        .library
        .offers
        .iter()
        .find(|o| !o.channels.contains(&Channel::Sms))
        .unwrap();
    p.assignments[0].offer_id = offer.id.clone();
    p.assignments[0].channel = Channel::Sms;
    caught(&run, &p, budget * 2.0, "channel");
    // A red turned away for budget while a blue got money is a priority break (the plan is
    // edited: the verifier trusts nothing the arbitration did).
    let mut p = base.clone();
    p.assignments[0].level = Level::Blue;
    p.skipped.push(retain_offers::Skipped {
        subscriber_id: 1,
        level: Level::Red,
        constraint: "budget",
        detail: String::new(),
        blocked_by_budget: Some(p.assignments[0].cost),
        blocked_channels: Vec::new(),
    });
    caught(&run, &p, budget, "priority");
    // So is a red turned away for a channel that a less urgent subscriber was given.
    let mut p = base.clone();
    p.assignments[0].level = Level::Yellow;
    p.skipped.push(retain_offers::Skipped {
        subscriber_id: 1,
        level: Level::Red,
        constraint: "channel_capacity",
        detail: String::new(),
        blocked_by_budget: None,
        blocked_channels: vec![p.assignments[0].channel],
    });
    caught(&run, &p, budget * 100.0, "priority");

    // A per-offer budget binds the arbitration, and the verifier checks it.
    let busiest = r
        .by_offer
        .iter()
        .max_by_key(|(_, t)| t.count)
        .unwrap()
        .0
        .clone();
    let spent = r.by_offer[&busiest].cost;
    let mut run = run;
    let oi = run
        .library
        .offers
        .iter()
        .position(|o| o.id == busiest)
        .unwrap();
    run.library.offers[oi].budget = Some(spent / 2.0);
    caught(&run, &run.plan, budget, "offer_budget");
    let capped = arbitrate(
        &run.inputs,
        &run.library,
        &run.policy,
        &run.choices,
        budget,
        Strategy::Retain,
    );
    let used: f64 = capped
        .assignments
        .iter()
        .filter(|a| a.offer_id == busiest)
        .map(|a| a.cost)
        .sum();
    assert!(used <= spent / 2.0 + 1e-6, "{used} > {}", spent / 2.0);
    assert!(
        capped
            .skipped
            .iter()
            .any(|s| s.constraint == "offer_budget")
            || capped
                .assignments
                .iter()
                .any(|a| a.binding.as_deref().is_some_and(|b| b.contains(&busiest)))
    );
    assert!(verify(&capped, &run.inputs, &run.library, &run.policy, budget).is_empty());
    // Untested offer kinds get at most the exploration share.
    let explored: f64 = capped
        .assignments
        .iter()
        .filter(|a| a.method == retain_offers::Method::Prior)
        .map(|a| a.cost)
        .sum();
    assert!(explored <= run.policy.exploration_share * budget + 1e-6);

    // An offer already planned for the run's last day counts on whichever day the new
    // contact lands: the plan must not give it again over its limit, and the verifier agrees.
    let last_day = as_of() + Duration::days(i64::from(run.policy.campaign_days.max(1)) - 1);
    let mut planned = run.plan.assignments.clone();
    planned.retain(|a| {
        run.library
            .offers
            .iter()
            .any(|o| o.id == a.offer_id && o.limit_per_subscriber == 1)
    });
    assert!(!planned.is_empty(), "some offer has a limit of one");
    for a in &planned {
        run.inputs
            .ledger
            .contacts
            .entry(a.subscriber_id)
            .or_default()
            .push(Contact {
                date: last_day,
                offer_id: a.offer_id.clone(),
                channel: "sms".into(),
                refused: false,
            });
    }
    let again = arbitrate(
        &run.inputs,
        &run.library,
        &run.policy,
        &run.choices,
        budget,
        Strategy::Retain,
    );
    let broken = verify(&again, &run.inputs, &run.library, &run.policy, budget);
    assert!(broken.is_empty(), "{broken:?}");
    assert!(!again.assignments.iter().any(|a| {
        planned
            .iter()
            .any(|p| p.subscriber_id == a.subscriber_id && p.offer_id == a.offer_id)
    }));
    for a in &planned {
        run.inputs
            .ledger
            .contacts
            .get_mut(&a.subscriber_id)
            .unwrap()
            .pop();
    }

    // Contact policy in arbitration: recent contacts and refusals rule subscribers out.
    let mut inputs = run.inputs;
    let (a, b) = (
        inputs.candidates[0].subscriber_id,
        inputs.candidates[1].subscriber_id,
    );
    inputs.ledger.dnd.clear();
    let contact = |days: i64, refused: bool| Contact {
        date: as_of() - Duration::days(days),
        offer_id: "X".into(),
        channel: "sms".into(),
        refused,
    };
    inputs
        .ledger
        .contacts
        .insert(a, vec![contact(3, false), contact(10, false)]);
    inputs.ledger.contacts.insert(b, vec![contact(40, true)]);
    let plan = arbitrate(
        &inputs,
        &run.library,
        &run.policy,
        &run.choices,
        1e9,
        Strategy::Retain,
    );
    let why = |id| {
        plan.skipped
            .iter()
            .find(|s| s.subscriber_id == id)
            .map(|s| s.constraint)
    };
    assert_eq!(why(a), Some("contact_limit"));
    assert_eq!(why(b), Some("cool_off"));
    assert!(verify(&plan, &inputs, &run.library, &run.policy, 1e9).is_empty());
}

#[tokio::test]
async fn decisions_rank_offers_and_honour_the_contact_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path());
    upstream(&ws).await;
    let ctx = retain_features::session(&ws).await.unwrap();
    let run = run_match(
        &ctx,
        &ws,
        &MatchOptions {
            as_of: as_of(),
            budget: 1000.0,
            seed: 1,
            partitions: None,
        },
    )
    .await
    .unwrap();
    let msisdn = retain_offers::msisdn_map(&ctx).await.unwrap();
    let index = DecisionIndex::load(&run.report.decisions_dir, msisdn.clone()).unwrap();
    assert_eq!(index.len(), run.inputs.candidates.len());
    let noon = as_of().and_hms_opt(12, 0, 0).unwrap();
    let c = run
        .inputs
        .candidates
        .iter()
        .zip(&run.choices)
        .find(|(_, cs)| cs.iter().any(|x| x.expected_value > 0.0))
        .unwrap()
        .0;
    // By id and by msisdn, the same answer.
    let d = index
        .decide(&c.subscriber_id.to_string(), noon, None)
        .unwrap();
    let by_msisdn = index.decide(&c.msisdn, noon, None).unwrap();
    assert_eq!(d.subscriber_id, by_msisdn.subscriber_id);
    assert!(
        d.at_risk && d.blocked.is_none() && !d.offers.is_empty(),
        "{d:?}"
    );
    assert!(
        d.offers
            .windows(2)
            .all(|w| w[0].expected_value >= w[1].expected_value)
    );
    let zh = format!("【{}】", d.reason_zh.unwrap());
    assert!(
        d.offers[0].talking_point_zh.starts_with(&zh),
        "{:?}",
        d.offers[0]
    );
    let en = format!("[{}]", d.reason.unwrap().replace('_', " "));
    assert!(
        d.offers[0].talking_point_en.starts_with(&en),
        "{:?}",
        d.offers[0]
    );
    assert!(d.msisdn.contains("****"));
    // Quiet hours stop a call, not a counter conversation.
    let late = as_of().and_hms_opt(22, 0, 0).unwrap();
    assert!(
        index
            .decide(&c.msisdn, late, Some(Channel::OutboundCall))
            .unwrap()
            .blocked
            .is_some()
    );
    assert!(
        index
            .decide(&c.msisdn, late, None)
            .unwrap()
            .blocked
            .is_none()
    );
    // Two contacts in 30 days use up the limit.
    let mut index = index;
    for _ in 0..2 {
        index.record_contact(
            c.subscriber_id,
            Contact {
                date: as_of(),
                offer_id: "X".into(),
                channel: "store".into(),
                refused: false,
            },
        );
    }
    let d = index.decide(&c.msisdn, noon, None).unwrap();
    assert!(
        d.blocked.as_deref().unwrap_or("").contains("30 days"),
        "{d:?}"
    );
    // A subscriber not at risk gets an answer without offers; an unknown key gets none.
    let calm = msisdn
        .values()
        .find(|id| {
            !run.inputs
                .candidates
                .iter()
                .any(|c| c.subscriber_id == **id)
        })
        .unwrap();
    let d = index.decide(&calm.to_string(), noon, None).unwrap();
    assert!(!d.at_risk && d.offers.is_empty());
    assert!(index.decide("no-such-number", noon, None).is_none());
}

/// Above a million subscribers a match run computes features one partition at a time:
/// the inputs and the plan are the same as when it computes them at once.
#[tokio::test]
async fn matching_in_subscriber_partitions_equals_matching_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(dir.path());
    upstream(&ws).await;
    let ctx = retain_features::session(&ws).await.unwrap();
    let mut runs = Vec::new();
    for partitions in [None, Some(3)] {
        let run = run_match(
            &ctx,
            &ws,
            &MatchOptions {
                as_of: as_of(),
                budget: 2000.0,
                seed: 1,
                partitions,
            },
        )
        .await
        .unwrap();
        runs.push(run);
    }
    let (whole, parted) = (&runs[0], &runs[1]);
    assert!(whole.inputs.subscribers > 2000);
    assert_eq!(parted.inputs.subscribers, whole.inputs.subscribers);
    assert!(whole.inputs.candidates.len() > 100);
    assert_eq!(parted.inputs.features.ids, whole.inputs.features.ids);
    // Sums and averages may differ in the last bits: the engine adds in batch order.
    let close =
        |a: f64, b: f64| (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let (x, y) = (&parted.inputs.features.x, &whole.inputs.features.x);
    assert_eq!(x.len(), y.len());
    assert!(x.iter().zip(y).all(|(a, b)| close(*a, *b)));
    let who = |run: &retain_offers::MatchRun| {
        run.inputs
            .candidates
            .iter()
            .map(|c| (c.subscriber_id, c.level, c.reason, c.eligible.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(who(parted), who(whole));
    let (a, b) = (&parted.report, &whole.report);
    assert_eq!(
        (
            a.candidates,
            a.assigned,
            &a.by_channel.keys().collect::<Vec<_>>()
        ),
        (
            b.candidates,
            b.assigned,
            &b.by_channel.keys().collect::<Vec<_>>()
        )
    );
    assert!(close(a.cost, b.cost), "{} against {}", a.cost, b.cost);

    // The group members' tenure playbooks go to their cohorts only: group members, new ones the
    // staged credit, those past a year the renewal, and nobody two of them.
    let batches = ctx
        .sql("SELECT subscriber_id, join_date, group_id FROM subscribers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let people: std::collections::HashMap<i64, (NaiveDate, bool)> =
        retain_features::json_rows(&batches)
            .into_iter()
            .map(|r| {
                (
                    r["subscriber_id"].as_i64().unwrap(),
                    (
                        r["join_date"].as_str().unwrap().parse().unwrap(),
                        !r["group_id"].is_null(),
                    ),
                )
            })
            .collect();
    let index = |id: &str| {
        whole
            .library
            .offers
            .iter()
            .position(|o| o.id == id)
            .unwrap() as u16
    };
    let playbooks = [
        index("GROUP-NEW-STAGED"),
        index("GROUP-TENURE-UPGRADE"),
        index("GROUP-RENEWAL"),
    ];
    let mut offered = [0; 3];
    for c in &whole.inputs.candidates {
        let held: Vec<usize> = (0..3)
            .filter(|k| c.eligible.contains(&playbooks[*k]))
            .collect();
        assert!(held.len() <= 1, "{} holds {held:?}", c.subscriber_id);
        let (joined, member) = people[&c.subscriber_id];
        let months = (as_of() - joined).num_days() / 30;
        for k in held {
            offered[k] += 1;
            assert!(member, "{} is no group member", c.subscriber_id);
            match k {
                0 => assert!(months <= 6, "{} joined {joined}", c.subscriber_id),
                1 => assert!(
                    (5..=13).contains(&months),
                    "{} joined {joined}",
                    c.subscriber_id
                ),
                _ => assert!(months >= 11, "{} joined {joined}", c.subscriber_id),
            }
        }
    }
    assert!(
        offered[2] > 0,
        "long-standing group members get the renewal: {offered:?}"
    );
}
