//! Property tests of CSV ingest: arbitrary bytes and mutated valid files never panic, and
//! every load that is not refused as a whole reconciles, `read = loaded + quarantined`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use retain_data::{IngestOptions, Table, Workspace, ingest};

use crate::common::{fixture, with_subscribers};

static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Loads `bytes` as a file of `table`; a load refused as a whole (an unreadable header, too
/// many rejections) is an error, any other must reconcile.
fn load_bytes(ws: &Workspace, scratch: &Path, table: Table, bytes: &[u8]) {
    let n = LOADS.fetch_add(1, Ordering::Relaxed);
    let file = scratch.join(format!("input-{n}.csv"));
    std::fs::write(&file, bytes).unwrap();
    let options = IngestOptions {
        label: format!("prop-{n}"),
        ..IngestOptions::default()
    };
    if let Ok(report) = ingest(ws, table, &[file], &options) {
        assert_eq!(
            report.read,
            report.loaded + report.quarantined,
            "{report:?}"
        );
        assert_eq!(
            report.rejected_by_column.values().sum::<u64>(),
            report.quarantined,
            "{report:?}"
        );
    }
}

/// One change to a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    DuplicateLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let garbage = prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            Just(b','),
            Just(b'"'),
            Just(b'\n'),
            Just(b'\r'),
            Just(0u8),
            Just(0xe4),
        ],
        1..12,
    );
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), garbage).prop_map(|(i, g)| Mutation::Insert(i, g)),
        (any::<usize>(), 1..40_usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Mutation::Insert(i, g) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, g.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Mutation::DuplicateLine(i) => {
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let line = lines[i % lines.len()].to_vec();
                bytes.extend_from_slice(b"\n");
                bytes.extend_from_slice(&line);
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_reconcile(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        with_header in any::<bool>(),
    ) {
        let s = with_subscribers();
        let header = std::fs::read(fixture("plans.csv")).unwrap();
        let header = header.split(|b| *b == b'\n').next().unwrap().to_vec();
        let mut input = if with_header { header.clone() } else { Vec::new() };
        if with_header {
            input.push(b'\n');
        }
        input.extend_from_slice(&bytes);
        load_bytes(&s.ws, &s.scratch, Table::Plans, &input);
        load_bytes(&s.ws, &s.scratch, Table::Subscribers, &input);
    }

    #[test]
    fn mutated_valid_files_never_panic_and_reconcile(
        mutations in prop::collection::vec(mutation(), 1..6),
        which in 0..3_usize,
    ) {
        let s = with_subscribers();
        let (name, table) = [
            ("plans.csv", Table::Plans),
            ("subscribers.csv", Table::Subscribers),
            ("usage_monthly_bad.csv", Table::UsageMonthly),
        ][which];
        let bytes = mutate(std::fs::read(fixture(name)).unwrap(), &mutations);
        load_bytes(&s.ws, &s.scratch, table, &bytes);
    }
}
