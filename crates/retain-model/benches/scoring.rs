//! Tree scoring throughput on one core: rows a second through a forest shaped like the
//! operator model's (`TREES` trees of 31 leaves over `FEATURES` columns, defaults 500 and 55),
//! by leaf masks (the default: the AVX-512 build where the processor has it, and the AVX2 and baseline
//! builds) and
//! by walking the trees. `cargo bench -p retain-model --bench scoring`.

use std::time::Instant;

fn main() {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (trees, width, rows) = (var("TREES", 500), var("FEATURES", 55), var("ROWS", 200_000));
    let (x, y) = data(rows, width);
    let started = Instant::now();
    let forest = retain_model::Forest::grown(&x, &y, width, trees).expect("the trees");
    println!(
        "{} trees of 31 leaves, {width} features, {rows} rows; trained in {:.1} s",
        forest.trees(),
        started.elapsed().as_secs_f64()
    );
    assert!(forest.scores_by_masks(), "the forest fits the leaf masks");
    let walking = forest.walking();
    let avx2 = forest.limited_to(retain_model::Isa::Avx2);
    let baseline = forest.limited_to(retain_model::Isa::Baseline);
    let expected = forest.raw_scores_here(&x, width).expect("scores");
    let time = |what: &str, threads: usize, score: &dyn Fn() -> Vec<f64>| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let started = Instant::now();
            let got = score();
            best = best.min(started.elapsed().as_secs_f64());
            assert_eq!(got.len(), expected.len());
        }
        let per_core = rows as f64 / best / threads as f64;
        println!("{what:<32} {per_core:>12.0} rows/s per core ({threads} thread(s), best of 5)");
        per_core
    };
    let masks = time("leaf masks", 1, &|| {
        forest.raw_scores_here(&x, width).expect("scores")
    });
    let two = time("leaf masks, AVX2 build", 1, &|| {
        avx2.raw_scores_here(&x, width).expect("scores")
    });
    let base = time("leaf masks, baseline build", 1, &|| {
        baseline.raw_scores_here(&x, width).expect("scores")
    });
    let walk = time("walking the trees", 1, &|| {
        walking.raw_scores_here(&x, width).expect("scores")
    });
    println!(
        "leaf masks / walking {:.2}x (AVX2 {:.2}x, baseline {:.2}x) (per core)",
        masks / walk,
        two / walk,
        base / walk,
    );
}

/// Rows of mixed signal, noise and missing values, and labels with a 10% base rate.
fn data(rows: usize, width: usize) -> (Vec<f64>, Vec<bool>) {
    let mut state = 42u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(rows * width);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..width)
            .map(|j| {
                let u = uniform();
                if j % 7 == 0 && u < 0.1 {
                    f64::NAN
                } else {
                    (uniform() * 100.0).round() / 10.0 - 5.0 + j as f64 * 0.01
                }
            })
            .collect();
        let signal: f64 = row
            .iter()
            .enumerate()
            .map(|(j, v)| {
                if v.is_nan() {
                    0.3
                } else {
                    (v * (j as f64 + 1.0)).sin() / (j as f64 + 1.0).sqrt()
                }
            })
            .sum();
        y.push(signal + uniform() * 1.5 > 1.2);
        x.extend(row);
    }
    (x, y)
}
