//! The scheduler on a simulated clock against a real store: overlap, retry with back-off,
//! catch-up, partial deliveries, a holder that died and a step that panicked.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use retain_schedule::{
    Action, Attempt, Clock, FakeClock, Job, Outcome, Schedule, Scheduler, Steps, delivery,
};
use retain_store::{JobStatus, Store};

fn shanghai(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    shanghai_offset()
        .with_ymd_and_hms(2026, 12, d, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn shanghai_offset() -> chrono::FixedOffset {
    // Shanghai keeps UTC+8 all year.
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Store,
    clock: Arc<FakeClock>,
}

fn world(start: DateTime<Utc>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("retain.db").display());
    let store = rt.block_on(Store::connect(&url)).unwrap();
    World {
        _dir: dir,
        rt,
        store,
        clock: Arc::new(FakeClock::new(start)),
    }
}

fn schedule(text: &str) -> Schedule {
    Schedule::parse(text, Path::new("schedule.toml")).unwrap()
}

fn scheduler<'a>(w: &'a World, s: &'a Schedule, holder: &str) -> Scheduler<'a> {
    Scheduler {
        store: &w.store,
        schedule: s,
        clock: Arc::clone(&w.clock) as Arc<dyn Clock>,
        holder: holder.into(),
    }
}

/// Steps that do what they are told and count their calls.
struct Scripted<F: Fn(&Job, &Attempt<'_>) -> Result<Outcome, String>> {
    calls: Mutex<Vec<(String, DateTime<Utc>, u32)>>,
    f: F,
}

impl<F: Fn(&Job, &Attempt<'_>) -> Result<Outcome, String>> Scripted<F> {
    fn new(f: F) -> Self {
        Scripted {
            calls: Mutex::new(Vec::new()),
            f,
        }
    }
    fn calls(&self) -> Vec<(String, DateTime<Utc>, u32)> {
        self.calls.lock().unwrap().clone()
    }
}

impl<F: Fn(&Job, &Attempt<'_>) -> Result<Outcome, String>> Steps for Scripted<F> {
    fn run(&self, job: &Job, a: &Attempt<'_>) -> Result<Outcome, String> {
        self.calls
            .lock()
            .unwrap()
            .push((job.name.clone(), a.slot, a.attempt));
        (self.f)(job, a)
    }
}

const WEEKLY: &str =
    "[[job]]\nname = \"weekly-warning\"\nstep = \"warn\"\ncron = \"0 6 * * MON\"\n";

#[test]
fn missed_slots_are_caught_up_once_and_a_done_slot_never_runs_again() {
    let w = world(shanghai(7, 6, 0));
    let s = schedule(WEEKLY);
    let steps = Scripted::new(|_, _| Ok(Outcome::Done(serde_json::json!({"red": 1}))));
    let sch = scheduler(&w, &s, "a:1");
    let r = sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(r.jobs[0].action, Action::Ran);
    assert_eq!(r.jobs[0].status, Some(JobStatus::Succeeded));
    assert_eq!(r.jobs[0].next_run, Some(shanghai(14, 6, 0)));
    // Again the same minute, and the day after: nothing.
    sch.cycle(&w.rt, &steps).unwrap();
    w.clock.set(shanghai(8, 9, 0));
    assert_eq!(
        sch.cycle(&w.rt, &steps).unwrap().jobs[0].action,
        Action::Idle
    );
    // Down for three weeks: one run, for the latest Monday.
    w.clock.set(shanghai(30, 10, 0));
    sch.cycle(&w.rt, &steps).unwrap();
    sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(
        steps.calls(),
        vec![
            ("weekly-warning".into(), shanghai(7, 6, 0), 1),
            ("weekly-warning".into(), shanghai(28, 6, 0), 1)
        ]
    );
    let runs = w.rt.block_on(w.store.job_runs(None, 10)).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].summary, Some(serde_json::json!({"red": 1})));
    let states = w.rt.block_on(sch.states()).unwrap();
    assert_eq!(
        states[0].next_run,
        Some(Utc.with_ymd_and_hms(2027, 1, 3, 22, 0, 0).unwrap())
    );
}

/// An HTTP receiver on loopback that answers 200 and keeps every body.
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            keep.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        }
    });
    (url, got)
}

#[test]
fn a_failing_job_is_retried_with_doubling_waits_then_given_up_with_an_alert_each_time() {
    let (url, alerts) = webhook();
    let w = world(shanghai(7, 6, 0));
    let s = schedule(&format!(
        "[alert]\nwebhook = \"{url}\"\n{WEEKLY}attempts = 3\nbackoff_minutes = 10\n"
    ));
    let steps = Scripted::new(|_, _| Err("no subscribers are loaded".to_owned()));
    let sch = scheduler(&w, &s, "a:1");
    let first = sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(first.jobs[0].status, Some(JobStatus::Failed));
    assert_eq!(first.jobs[0].retry_at, Some(shanghai(7, 6, 10)));
    assert_eq!(first.jobs[0].next_run, Some(shanghai(7, 6, 10)));
    assert_eq!(first.jobs[0].alert_error, None);
    for (minute, runs) in [(5, 1), (10, 2), (29, 2), (30, 3), (59, 3), (120, 3)] {
        w.clock.set(shanghai(7, 6, 0) + Duration::minutes(minute));
        sch.cycle(&w.rt, &steps).unwrap();
        assert_eq!(steps.calls().len(), runs, "at minute {minute}");
    }
    let attempts: Vec<u32> = steps.calls().iter().map(|c| c.2).collect();
    assert_eq!(attempts, [1, 2, 3]);
    let alerts = alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0]["event"], "job_failed");
    assert_eq!(alerts[0]["error"], "no subscribers are loaded");
    assert_eq!(alerts[0]["gave_up"], false);
    assert_eq!(alerts[2]["gave_up"], true);
    assert_eq!(alerts[2]["attempt"], 3);
    let last =
        w.rt.block_on(w.store.last_job_run("weekly-warning"))
            .unwrap()
            .unwrap();
    assert_eq!((last.status, last.retry_at), (JobStatus::Failed, None));
}

#[test]
fn an_unreachable_webhook_is_reported_and_does_not_stop_the_cycle() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = world(shanghai(7, 6, 0));
    let s = schedule(&format!(
        "[alert]\nwebhook = \"http://127.0.0.1:{port}/x\"\ntimeout_seconds = 2\n{WEEKLY}\
         [[job]]\nname = \"match\"\nstep = \"match\"\ncron = \"0 6 * * MON\"\n"
    ));
    let steps = Scripted::new(|job, _| {
        if job.name == "match" {
            Ok(Outcome::Done(serde_json::json!({})))
        } else {
            Err("boom".into())
        }
    });
    let r = scheduler(&w, &s, "a:1").cycle(&w.rt, &steps).unwrap();
    assert!(
        r.jobs[0]
            .alert_error
            .as_deref()
            .unwrap()
            .contains("alert webhook")
    );
    assert_eq!(r.jobs[1].status, Some(JobStatus::Succeeded));
}

#[test]
fn a_job_running_in_one_process_is_busy_for_another() {
    let w = world(shanghai(7, 6, 0));
    let s = schedule(WEEKLY);
    let other = scheduler(&w, &s, "b:2");
    let seen = Mutex::new(None);
    let steps = Scripted::new(|_, _| {
        // While this step runs, a second scheduler tries the same job on its own runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let idle = Scripted::new(|_, _| panic!("ran twice at once"));
        let r = std::thread::scope(|scope| {
            scope
                .spawn(|| other.cycle(&rt, &idle).unwrap())
                .join()
                .unwrap()
        });
        *seen.lock().unwrap() = Some(r.jobs[0].action);
        Ok(Outcome::Done(serde_json::json!({})))
    });
    scheduler(&w, &s, "a:1").cycle(&w.rt, &steps).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(Action::Busy));
    // Once it is done, the other finds nothing due.
    let idle = Scripted::new(|_, _| panic!("ran a done slot"));
    assert_eq!(
        other.cycle(&w.rt, &idle).unwrap().jobs[0].action,
        Action::Idle
    );
}

#[test]
fn a_run_whose_holder_died_is_failed_and_retried_once_its_lease_lapses() {
    let w = world(shanghai(7, 6, 0));
    let s = schedule(&format!("{WEEKLY}lease_minutes = 30\n"));
    let t = shanghai(7, 6, 0);
    // A process took the lease and recorded its attempt, then was killed.
    w.rt.block_on(async {
        assert!(
            w.store
                .acquire_job_lease("weekly-warning", "dead:9", t, t + Duration::minutes(30))
                .await
                .unwrap()
        );
        w.store
            .start_job_run("weekly-warning", t, 1, "dead:9", t)
            .await
            .unwrap();
    });
    let steps = Scripted::new(|_, _| Ok(Outcome::Done(serde_json::json!({}))));
    let sch = scheduler(&w, &s, "a:1");
    w.clock.set(t + Duration::minutes(20));
    assert_eq!(
        sch.cycle(&w.rt, &steps).unwrap().jobs[0].action,
        Action::Busy
    );
    w.clock.set(t + Duration::minutes(31));
    let r = sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(
        (r.jobs[0].attempt, r.jobs[0].status),
        (Some(2), Some(JobStatus::Succeeded))
    );
    let runs = w.rt.block_on(w.store.job_runs(None, 10)).unwrap();
    assert_eq!(runs[1].status, JobStatus::Failed);
    assert!(
        runs[1].error.as_deref().unwrap().contains("dead:9 stopped"),
        "{:?}",
        runs[1].error
    );
}

#[test]
fn a_partial_delivery_waits_and_is_loaded_once_whole() {
    let drop = tempfile::tempdir().unwrap();
    let w = world(shanghai(7, 1, 0));
    let s = schedule(
        "[[job]]\nname = \"load\"\nstep = \"ingest\"\ncron = \"0 * * * *\"\nrecheck_minutes = 15\n",
    );
    let loaded = Mutex::new(Vec::new());
    let steps = Scripted::new(|_, _| {
        let mut waiting = Vec::new();
        for d in delivery::deliveries(drop.path()).map_err(|e| e.to_string())? {
            match d {
                delivery::Delivery::Complete { name, .. } => {
                    delivery::mark_loaded(drop.path(), &name).map_err(|e| e.to_string())?;
                    loaded.lock().unwrap().push(name);
                }
                delivery::Delivery::Partial { name, missing } => {
                    waiting.push(format!("{name}: {}", missing.join(", ")));
                }
            }
        }
        if waiting.is_empty() {
            Ok(Outcome::Done(serde_json::json!({})))
        } else {
            Ok(Outcome::Waiting(waiting.join("; ")))
        }
    });
    let d = drop.path().join("2026-12-07");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        r#"{"files": [{"table": "plans", "file": "plans.csv", "bytes": 12}]}"#,
    )
    .unwrap();
    std::fs::write(d.join("plans.csv"), "plan_id\n").unwrap();
    let sch = scheduler(&w, &s, "a:1");
    let r = sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(r.jobs[0].status, Some(JobStatus::Waiting));
    assert!(
        r.jobs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("plans.csv (8 of 12 bytes)")
    );
    assert_eq!(r.jobs[0].retry_at, Some(shanghai(7, 1, 15)));
    w.clock.set(shanghai(7, 1, 10));
    assert_eq!(
        sch.cycle(&w.rt, &steps).unwrap().jobs[0].action,
        Action::Idle
    );
    std::fs::write(d.join("plans.csv"), "plan_id\nP1\nP").unwrap();
    w.clock.set(shanghai(7, 1, 15));
    let r = sch.cycle(&w.rt, &steps).unwrap();
    assert_eq!(
        (r.jobs[0].status, r.jobs[0].attempt),
        (Some(JobStatus::Succeeded), Some(1))
    );
    assert_eq!(*loaded.lock().unwrap(), ["2026-12-07"]);
    assert!(drop.path().join("loaded/2026-12-07/plans.csv").exists());
}

#[test]
fn a_panicking_step_fails_its_run_and_the_next_job_still_runs() {
    let w = world(shanghai(7, 6, 0));
    let s = schedule(&format!(
        "{WEEKLY}attempts = 1\n[[job]]\nname = \"match\"\nstep = \"match\"\ncron = \"0 6 * * MON\"\n"
    ));
    let steps = Scripted::new(|job, _| {
        assert!(job.name != "weekly-warning", "index out of range");
        Ok(Outcome::Nothing("no budget".into()))
    });
    let r = scheduler(&w, &s, "a:1").cycle(&w.rt, &steps).unwrap();
    assert_eq!(r.jobs[0].status, Some(JobStatus::Failed));
    assert!(
        r.jobs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("internal error")
    );
    assert_eq!(r.jobs[0].retry_at, None);
    assert_eq!(r.jobs[1].status, Some(JobStatus::Skipped));
}

#[test]
fn disabled_jobs_do_not_run_and_late_slots_of_jobs_that_do_not_catch_up_are_skipped() {
    let w = world(shanghai(7, 9, 0));
    let s = schedule(&format!(
        "{WEEKLY}catch_up = false\n[[job]]\nname = \"off\"\nstep = \"train\"\ncron = \"* * * * *\"\nenabled = false\n"
    ));
    let steps = Scripted::new(|_, _| panic!("nothing should run"));
    let r = scheduler(&w, &s, "a:1").cycle(&w.rt, &steps).unwrap();
    assert_eq!(r.jobs[0].action, Action::Missed);
    assert_eq!(r.jobs[1].action, Action::Disabled);
    let r = scheduler(&w, &s, "a:1").cycle(&w.rt, &steps).unwrap();
    assert_eq!(r.jobs[0].action, Action::Idle);
}

#[test]
fn a_job_run_now_takes_a_slot_of_its_own_and_the_schedule_goes_on() {
    let w = world(shanghai(7, 6, 0));
    let s = schedule(WEEKLY);
    let steps = Scripted::new(|_, _| Ok(Outcome::Done(serde_json::json!({}))));
    let sch = scheduler(&w, &s, "a:1");
    sch.cycle(&w.rt, &steps).unwrap();
    // Tuesday, a late delivery in: the analyst runs the warning again.
    w.clock.set(shanghai(8, 10, 0));
    let r = sch.run_now(&w.rt, &steps, "weekly-warning").unwrap();
    assert_eq!((r.action, r.slot), (Action::Ran, Some(shanghai(8, 10, 0))));
    // The Monday slot is not run a third time; the next Monday is.
    assert_eq!(
        sch.cycle(&w.rt, &steps).unwrap().jobs[0].action,
        Action::Idle
    );
    w.clock.set(shanghai(14, 6, 0));
    sch.cycle(&w.rt, &steps).unwrap();
    let slots: Vec<_> = steps.calls().iter().map(|c| c.1).collect();
    assert_eq!(
        slots,
        [shanghai(7, 6, 0), shanghai(8, 10, 0), shanghai(14, 6, 0)]
    );
    let e = sch
        .run_now(&w.rt, &steps, "nightly")
        .unwrap_err()
        .to_string();
    assert!(e.contains("weekly-warning"), "{e}");
}
