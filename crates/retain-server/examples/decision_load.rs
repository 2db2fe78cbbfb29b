//! An open-loop load generator for the decision endpoint, the way a goal such as "p99 under
//! 5 ms at 5,000 requests a second" is meant: requests are due on a fixed schedule, `RATE` a
//! second spread over `CONNECTIONS` keep-alive connections (each connection's requests evenly
//! spaced), whatever the server does. A request sent late because its connection was still
//! waiting for an earlier answer is timed from when it was due, so a server that stalls cannot
//! hide the queue it caused (wrk, which sends only after each answer, measures the server at
//! its own pace instead). A request sent on time is timed from when it was sent, so the
//! generator's timer granularity is not charged to the server.
//!
//! ```text
//! decision_load ADDR TOKEN IDS_FILE RATE SECONDS [CONNECTIONS] [CHANNEL]
//! ```
//!
//! Asks `GET /api/v1/decisions/{id}?channel=CHANNEL` for random ids of `IDS_FILE` (one per
//! line) and prints one JSON object: requests, answers by status, the achieved rate and the
//! latency percentiles in milliseconds. Used by `bench/decision-load.sh`.
//!
//! With `DECISION_LOAD_TIMELINE=FILE` it also writes, per 100 ms of due times, the wall-clock
//! time, the answers, those slower than 5 ms and the slowest: to place a tail against what the
//! server was doing then (its log).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Plan {
    addr: String,
    token: String,
    ids: Vec<String>,
    rate: f64,
    channel: String,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Latencies in microseconds of the answers with status 200.
    latencies: Vec<u64>,
    /// When each of those was due, in microseconds after the start.
    due: Vec<u64>,
    /// Answers with another status.
    other: u64,
    /// Requests that got no answer (the connection failed).
    failed: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: decision_load ADDR TOKEN IDS_FILE RATE SECONDS [CONNECTIONS] [CHANNEL]");
        std::process::exit(2);
    }
    let ids: Vec<String> = std::fs::read_to_string(&args[2])
        .unwrap_or_else(|e| panic!("reading {}: {e}", args[2]))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!ids.is_empty(), "{} names no ids", args[2]);
    let rate: f64 = args[3].parse().expect("RATE is requests a second");
    let seconds: f64 = args[4].parse().expect("SECONDS is a number");
    let connections: usize = args.get(5).map_or(64, |c| c.parse().expect("CONNECTIONS"));
    let plan = Arc::new(Plan {
        addr: args[0].clone(),
        token: args[1].clone(),
        ids,
        rate,
        channel: args.get(6).cloned().unwrap_or_else(|| "store".to_owned()),
    });

    // One thread: the generator must not take a core from the server it measures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let wall = std::time::SystemTime::now() + Duration::from_millis(50);
    let (tallies, elapsed) = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = (0..connections)
            .map(|k| tokio::spawn(connection(plan.clone(), k, connections, start, end)))
            .collect();
        let mut tallies = Vec::with_capacity(connections);
        for task in tasks {
            tallies.push(task.await.expect("a connection task does not panic"));
        }
        (tallies, start.elapsed())
    });

    if let Ok(path) = std::env::var("DECISION_LOAD_TIMELINE") {
        write_timeline(&path, wall, &tallies);
    }
    let mut latencies: Vec<u64> = tallies.iter().flat_map(|t| t.latencies.clone()).collect();
    latencies.sort_unstable();
    let other: u64 = tallies.iter().map(|t| t.other).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let ok = latencies.len() as u64;
    let ms = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    println!(
        "{{\"rate\":{rate},\"seconds\":{seconds},\"connections\":{connections},\
         \"requests\":{},\"ok\":{ok},\"other_status\":{other},\"failed\":{failed},\
         \"achieved_rps\":{:.0},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\
         \"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        ok + other + failed,
        (ok + other) as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        ms(1.0),
    );
}

/// Per 100 ms of due times: the time of day (UTC, as the server logs it), answers, answers
/// over 5 ms and the slowest in milliseconds, as CSV.
fn write_timeline(path: &str, wall: std::time::SystemTime, tallies: &[Tally]) {
    let mut windows = std::collections::BTreeMap::<u64, (u64, u64, u64)>::new();
    for t in tallies {
        for (due, latency) in t.due.iter().zip(&t.latencies) {
            let w = windows.entry(due / 100_000).or_default();
            w.0 += 1;
            w.1 += u64::from(*latency > 5_000);
            w.2 = w.2.max(*latency);
        }
    }
    let mut out = String::from("at,answers,over_5ms,max_ms\n");
    for (window, (answers, slow, max)) in windows {
        let at = chrono::DateTime::<chrono::Utc>::from(wall + Duration::from_millis(window * 100));
        let _ = writeln!(
            out,
            "{},{answers},{slow},{:.3}",
            at.format("%H:%M:%S%.3f"),
            max as f64 / 1000.0
        );
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// Connection `k` of `of`: its requests are due every `of / rate` seconds from
/// `start + k / rate` until `end`.
async fn connection(plan: Arc<Plan>, k: usize, of: usize, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let period = Duration::from_secs_f64(of as f64 / plan.rate);
    let mut due = start + Duration::from_secs_f64(k as f64 / plan.rate);
    let left = |due: Instant| ((end - due).as_secs_f64() / period.as_secs_f64()).ceil() as u64;
    let Ok(socket) = TcpStream::connect(&plan.addr).await else {
        tally.failed = left(due);
        return tally;
    };
    let _ = socket.set_nodelay(true);
    let mut stream = BufReader::new(socket);
    // xorshift64*, seeded per connection: the same requests in every run.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (k as u64 + 1);
    let mut answered = start;
    let mut body = Vec::new();
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let pick = state.wrapping_mul(0x2545_F491_4F6C_DD1D) % plan.ids.len() as u64;
        let id = &plan.ids[usize::try_from(pick).expect("an index")];
        let sent = Instant::now();
        // Late because this connection's previous answer came after the due time: the
        // server's delay, counted from when it was due. Otherwise from when it left.
        let from = if answered > due { due } else { sent };
        let request = format!(
            "GET /api/v1/decisions/{id}?channel={} HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {}\r\n\r\n",
            plan.channel, plan.addr, plan.token
        );
        let Ok(status) = exchange(&mut stream, request.as_bytes(), &mut body).await else {
            tally.failed += left(due);
            return tally;
        };
        answered = Instant::now();
        if status == 200 {
            tally
                .latencies
                .push(u64::try_from((answered - from).as_micros()).unwrap_or(u64::MAX));
            tally
                .due
                .push(u64::try_from((due - start).as_micros()).unwrap_or(u64::MAX));
        } else {
            tally.other += 1;
        }
        due += period;
    }
    tally
}

/// Sends one request and reads its answer; returns the status.
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    body: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
        }
    }
    body.resize(length, 0);
    stream.read_exact(body).await?;
    Ok(status)
}
