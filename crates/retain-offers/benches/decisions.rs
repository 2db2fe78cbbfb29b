//! Real-time decision latency with a million subscribers loaded: p50, p99 and max of
//! `DecisionIndex::decide` by msisdn, at the counter and for an outbound call.
//! `cargo bench -p retain-offers --bench decisions` (SUBSCRIBERS overrides the size).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use chrono::NaiveDate;
use retain_offers::{
    Candidate, Channel, Choice, Contact, DecisionIndex, Inputs, Level, Library, Method, Policy,
};

fn main() {
    let n: usize = std::env::var("SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let library = Library::parse(retain_offers::DEFAULT_OFFERS, Path::new("default.toml"))
        .expect("the default library compiles");
    let policy = Policy::default();
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).expect("valid");
    let started = Instant::now();
    let mut inputs = Inputs {
        as_of,
        subscribers: n,
        ..Inputs::default()
    };
    let mut choices = Vec::with_capacity(n);
    let offers = library.offers.len() as u16;
    for i in 0..n {
        let id = 100_000_000 + i as i64;
        let msisdn = format!("1{:010}", 3_800_000_000u64 + i as u64);
        inputs.msisdn.insert(msisdn.clone(), id);
        // Everyone is a candidate: the worst case for the index.
        inputs.candidates.push(Candidate {
            subscriber_id: id,
            msisdn,
            level: [Level::Red, Level::Yellow, Level::Blue][i % 3],
            warned: true,
            p_churn: 0.3,
            p_source: "model",
            clv: 1200.0,
            arpu: 50.0,
            reason: i % 8,
            tier: "medium".to_owned(),
            preferred: Channel::Sms,
            has_manager: false,
            eligible: Vec::new(),
            row: i,
        });
        choices.push(
            (0..3u16)
                .map(|k| Choice {
                    offer: (i as u16 + k) % offers,
                    channel: Channel::OutboundCall,
                    save_rate: 0.2,
                    method: Method::Cells,
                    cost: 32.0,
                    expected_cost: 10.0,
                    expected_value: 60.0 - f64::from(k),
                })
                .collect(),
        );
        if i % 50 == 0 {
            inputs.ledger.contacts.insert(
                id,
                vec![Contact {
                    date: as_of - chrono::Duration::days(5),
                    offer_id: "DATA-10G".into(),
                    channel: "sms".into(),
                    refused: i % 100 == 0,
                }],
            );
        }
    }
    let index = DecisionIndex::build(&inputs, &library, &policy, &choices);
    let keys: Vec<String> = inputs.candidates.iter().map(|c| c.msisdn.clone()).collect();
    drop(inputs);
    let built = started.elapsed().as_secs_f64();
    let at = as_of.and_hms_opt(14, 0, 0).expect("valid");
    let mut report = HashMap::new();
    for (name, channel) in [
        ("counter", None),
        ("outbound_call", Some(Channel::OutboundCall)),
    ] {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut latencies = Vec::with_capacity(200_000);
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = &keys[(state % keys.len() as u64) as usize];
            let t = Instant::now();
            let d = index.decide(key, at, channel);
            latencies.push(t.elapsed().as_nanos() as f64 / 1e6);
            assert!(d.is_some());
        }
        latencies.sort_by(f64::total_cmp);
        let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        report.insert(name, (q(0.5), q(0.99), latencies[latencies.len() - 1]));
    }
    println!("decisions with {n} subscribers loaded (index built in {built:.1} s)");
    println!("| call | p50 ms | p99 ms | max ms |\n|---|---|---|---|");
    for name in ["counter", "outbound_call"] {
        let (p50, p99, max) = report[name];
        println!("| {name} | {p50:.4} | {p99:.4} | {max:.3} |");
    }
    let (_, p99, _) = report["counter"];
    println!(
        "goal p99 < 5 ms: {}",
        if p99 < 5.0 { "met" } else { "NOT met" }
    );
}
