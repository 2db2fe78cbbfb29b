//! What `/metrics` exposes beyond request counts: per-route latency histograms in Prometheus's
//! text format, requests in flight, and the latest batch run of each kind from the store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds: from a cached read to a long export.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// One route's latencies.
#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Requests at or under each bound (not yet cumulative).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Latencies per route and the requests being served.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    routes: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
}

/// Counts a request as in flight while it lives, however it ends (a dropped connection too).
pub(crate) struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Latency {
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn observe(&self, route: &str, took: Duration) {
        let seconds = took.as_secs_f64();
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let h = routes.entry(route.to_owned()).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The histograms and the gauge in Prometheus's text format.
    pub(crate) fn write(&self, text: &mut String) {
        text.push_str(
            "# HELP retain_http_request_duration_seconds Time to answer a request, by route.\n\
             # TYPE retain_http_request_duration_seconds histogram\n",
        );
        if let Ok(routes) = self.routes.lock() {
            for (route, h) in routes.iter() {
                let mut cumulative = 0;
                for (bound, n) in BUCKETS.iter().zip(h.counts) {
                    cumulative += n;
                    let _ = writeln!(
                        text,
                        "retain_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    text,
                    "retain_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                     retain_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                     retain_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        let _ = writeln!(
            text,
            "# HELP retain_http_requests_in_flight Requests being answered.\n\
             # TYPE retain_http_requests_in_flight gauge\n\
             retain_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// The latest run of each batch kind (ingest, warn, train, …) in the store: how long it took,
/// when it ended, whether it succeeded, and the rows it reports, as gauges.
pub(crate) fn write_runs(text: &mut String, runs: &[retain_store::RunRecord]) {
    let mut latest: BTreeMap<&str, &retain_store::RunRecord> = BTreeMap::new();
    // Newest first: the first of each kind is its latest.
    for r in runs {
        latest.entry(r.kind.as_str()).or_insert(r);
    }
    text.push_str(
        "# HELP retain_batch_last_run_seconds How long the latest run of each batch step took.\n\
         # TYPE retain_batch_last_run_seconds gauge\n",
    );
    for (kind, r) in &latest {
        if let Some(end) = r.finished_at {
            let seconds = (end - r.started_at).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                text,
                "retain_batch_last_run_seconds{{kind=\"{kind}\",status=\"{}\"}} {seconds}",
                label(&r.status)
            );
        }
    }
    text.push_str(
        "# HELP retain_batch_last_run_timestamp_seconds When the latest run of each batch step ended (Unix time).\n\
         # TYPE retain_batch_last_run_timestamp_seconds gauge\n",
    );
    for (kind, r) in &latest {
        if let Some(end) = r.finished_at {
            let _ = writeln!(
                text,
                "retain_batch_last_run_timestamp_seconds{{kind=\"{kind}\"}} {}",
                end.timestamp()
            );
        }
    }
    text.push_str(
        "# HELP retain_batch_last_run_rows Rows the latest run of each batch step reports (loaded, listed, scored, assigned).\n\
         # TYPE retain_batch_last_run_rows gauge\n",
    );
    for (kind, r) in &latest {
        if let Some(rows) = r.summary.as_ref().and_then(rows_of) {
            let _ = writeln!(text, "retain_batch_last_run_rows{{kind=\"{kind}\"}} {rows}");
        }
    }
}

/// The row count a run's summary reports under the name its step uses.
fn rows_of(summary: &serde_json::Value) -> Option<u64> {
    [
        "loaded",
        "listed",
        "scored",
        "assigned",
        "subscribers",
        "rows",
    ]
    .iter()
    .find_map(|k| summary.get(*k).and_then(serde_json::Value::as_u64))
}

/// A label value as Prometheus's text format allows it.
fn label(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_in_the_count() {
        let l = Latency::default();
        for ms in [1, 3, 40, 700, 2_000] {
            l.observe("/api/v1/me", Duration::from_millis(ms));
        }
        let guard = l.start();
        let mut text = String::new();
        l.write(&mut text);
        let bucket = |le: &str| {
            let line = format!(
                "retain_http_request_duration_seconds_bucket{{route=\"/api/v1/me\",le=\"{le}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .unwrap_or_else(|| panic!("{le}: {text}"))
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(bucket("0.005"), 2);
        assert_eq!(bucket("0.05"), 3);
        assert_eq!(bucket("1"), 4);
        assert_eq!(bucket("2.5"), 5);
        assert_eq!(bucket("+Inf"), 5);
        assert!(
            text.contains("retain_http_request_duration_seconds_count{route=\"/api/v1/me\"} 5")
        );
        assert!(text.contains("retain_http_requests_in_flight 1"));
        drop(guard);
        let mut text = String::new();
        l.write(&mut text);
        assert!(text.contains("retain_http_requests_in_flight 0"));
    }

    #[test]
    fn the_latest_run_of_each_kind_is_reported() {
        let at = |s: i64| chrono::DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap();
        let run =
            |kind: &str, start: i64, end: i64, status: &str, summary| retain_store::RunRecord {
                id: 0,
                kind: kind.into(),
                started_at: at(start),
                finished_at: Some(at(end)),
                status: status.into(),
                params: serde_json::Value::Null,
                summary,
                error: None,
            };
        // Newest first, as the store lists them.
        let runs = [
            run(
                "warn",
                100,
                112,
                "succeeded",
                Some(serde_json::json!({ "listed": 840 })),
            ),
            run("ingest", 50, 53, "failed", None),
            run(
                "warn",
                0,
                30,
                "succeeded",
                Some(serde_json::json!({ "listed": 1 })),
            ),
        ];
        let mut text = String::new();
        write_runs(&mut text, &runs);
        assert!(
            text.contains("retain_batch_last_run_seconds{kind=\"warn\",status=\"succeeded\"} 12\n"),
            "{text}"
        );
        assert!(
            text.contains("retain_batch_last_run_seconds{kind=\"ingest\",status=\"failed\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("retain_batch_last_run_rows{kind=\"warn\"} 840\n"),
            "{text}"
        );
        assert!(
            !text.contains("retain_batch_last_run_rows{kind=\"ingest\"}"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "retain_batch_last_run_timestamp_seconds{{kind=\"warn\"}} {}",
            at(112).timestamp()
        )));
    }
}
