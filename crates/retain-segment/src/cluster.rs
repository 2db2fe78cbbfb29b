//! Behavioural clusters: mini-batch k-means with k-means++ seeding on standardized features,
//! k chosen by silhouette, and a readable name for every cluster from its most distinctive
//! features.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;

/// A feature used for clustering, with the words that describe a high or a low value.
pub(crate) struct FeatureSpec {
    pub name: &'static str,
    pub high: (&'static str, &'static str),
    pub low: (&'static str, &'static str),
}

pub(crate) const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "arpu",
        high: ("高消费", "high spend"),
        low: ("低消费", "low spend"),
    },
    FeatureSpec {
        name: "data",
        high: ("重度流量", "heavy data"),
        low: ("轻度流量", "light data"),
    },
    FeatureSpec {
        name: "voice",
        high: ("语音依赖", "voice-heavy"),
        low: ("少通话", "few calls"),
    },
    FeatureSpec {
        name: "active_days",
        high: ("高活跃", "highly active"),
        low: ("低活跃", "rarely active"),
    },
    FeatureSpec {
        name: "tenure",
        high: ("网龄长", "long tenure"),
        low: ("网龄短", "short tenure"),
    },
    FeatureSpec {
        name: "age",
        high: ("年长", "older"),
        low: ("年轻", "young"),
    },
    FeatureSpec {
        name: "family",
        high: ("家庭融合", "family bundle"),
        low: ("单卡", "single line"),
    },
    FeatureSpec {
        name: "group",
        high: ("政企成员", "enterprise member"),
        low: ("个人客户", "personal"),
    },
    FeatureSpec {
        name: "fee_trend",
        high: ("消费上升", "spend rising"),
        low: ("消费下滑", "spend falling"),
    },
    FeatureSpec {
        name: "complaints",
        high: ("多投诉", "complaint-prone"),
        low: ("少投诉", "few complaints"),
    },
    FeatureSpec {
        name: "competitor",
        high: ("竞品接触", "competitor contact"),
        low: ("无竞品接触", "no competitor contact"),
    },
    FeatureSpec {
        name: "vas",
        high: ("增值业务多", "VAS user"),
        low: ("无增值业务", "no VAS"),
    },
];

/// A fitted clustering.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Clustering {
    pub k: usize,
    /// Silhouette of each k tried.
    pub silhouettes: Vec<(usize, f64)>,
    /// Centroids in standardized units.
    pub centroids: Vec<Vec<f64>>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(point: &[f64], centroids: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = distance2(point, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Standardizes columns in place; returns (means, standard deviations).
pub(crate) fn standardize(rows: &mut [Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let d = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f64;
    let mut means = vec![0.0; d];
    for r in rows.iter() {
        for (m, x) in means.iter_mut().zip(r) {
            *m += x / n;
        }
    }
    let mut stds = vec![0.0; d];
    for r in rows.iter() {
        for ((s, x), m) in stds.iter_mut().zip(r).zip(&means) {
            *s += (x - m) * (x - m) / n;
        }
    }
    for s in &mut stds {
        *s = s.sqrt().max(1e-9);
    }
    for r in rows.iter_mut() {
        for ((x, m), s) in r.iter_mut().zip(&means).zip(&stds) {
            *x = (*x - m) / s;
        }
    }
    (means, stds)
}

/// k-means++ seeding on a sample.
fn seed_centroids(points: &[&[f64]], k: usize, rng: &mut Pcg64Mcg) -> Vec<Vec<f64>> {
    let mut centroids = vec![points[rng.random_range(0..points.len())].to_vec()];
    let mut d2: Vec<f64> = points.iter().map(|p| distance2(p, &centroids[0])).collect();
    while centroids.len() < k {
        let total: f64 = d2.iter().sum();
        let mut target = rng.random::<f64>() * total;
        let mut chosen = points.len() - 1;
        for (i, d) in d2.iter().enumerate() {
            if target < *d {
                chosen = i;
                break;
            }
            target -= d;
        }
        let c = points[chosen].to_vec();
        for (i, p) in points.iter().enumerate() {
            d2[i] = d2[i].min(distance2(p, &c));
        }
        centroids.push(c);
    }
    centroids
}

/// Mini-batch k-means (Sculley 2010): per-centroid learning rates 1/count.
fn mini_batch_kmeans(
    points: &[Vec<f64>],
    k: usize,
    config: &ClusterConfig,
    rng: &mut Pcg64Mcg,
) -> Vec<Vec<f64>> {
    let sample: Vec<&[f64]> = (0..points.len().min(20_000))
        .map(|_| points[rng.random_range(0..points.len())].as_slice())
        .collect();
    let mut centroids = seed_centroids(&sample, k, rng);
    let mut counts = vec![0.0_f64; k];
    let batch = config.batch_size.min(points.len());
    for _ in 0..config.iterations {
        let picks: Vec<usize> = (0..batch)
            .map(|_| rng.random_range(0..points.len()))
            .collect();
        let assigned: Vec<usize> = picks
            .iter()
            .map(|&i| nearest(&points[i], &centroids).0)
            .collect();
        for (&i, &c) in picks.iter().zip(&assigned) {
            counts[c] += 1.0;
            let eta = 1.0 / counts[c];
            for (x, p) in centroids[c].iter_mut().zip(&points[i]) {
                *x += eta * (p - *x);
            }
        }
    }
    centroids
}

/// Mean silhouette of a sample under the given centroids' assignment.
fn silhouette(sample: &[&[f64]], centroids: &[Vec<f64>]) -> f64 {
    let labels: Vec<usize> = sample.iter().map(|p| nearest(p, centroids).0).collect();
    let k = centroids.len();
    let mut total = 0.0;
    let mut counted = 0usize;
    for (i, p) in sample.iter().enumerate() {
        let mut sums = vec![0.0; k];
        let mut sizes = vec![0usize; k];
        for (j, q) in sample.iter().enumerate() {
            if i != j {
                sums[labels[j]] += distance2(p, q).sqrt();
                sizes[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if sizes[own] == 0 {
            continue;
        }
        let a = sums[own] / sizes[own] as f64;
        let b = (0..k)
            .filter(|c| *c != own && sizes[*c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b).max(1e-12);
            counted += 1;
        }
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f64
    }
}

/// Fits clusters on raw feature rows (one per subscriber, columns as [`FEATURES`]).
pub(crate) fn fit(mut rows: Vec<Vec<f64>>, config: &ClusterConfig) -> (Clustering, Vec<usize>) {
    let (means, stds) = standardize(&mut rows);
    let mut rng = Pcg64Mcg::seed_from_u64(config.seed);
    let sample: Vec<&[f64]> = (0..rows.len().min(config.silhouette_sample))
        .map(|_| rows[rng.random_range(0..rows.len())].as_slice())
        .collect();
    let mut best: Option<(f64, usize, Vec<Vec<f64>>)> = None;
    let mut silhouettes = Vec::new();
    for k in config.k_min..=config.k_max.min(rows.len().max(1)) {
        // Each k gets its own stream so adding a k to the range does not change the others.
        let mut k_rng = Pcg64Mcg::seed_from_u64(config.seed.wrapping_add(k as u64 * 7919));
        let centroids = mini_batch_kmeans(&rows, k, config, &mut k_rng);
        let score = silhouette(&sample, &centroids);
        silhouettes.push((k, (score * 10_000.0).round() / 10_000.0));
        if best.as_ref().is_none_or(|(s, ..)| score > *s) {
            best = Some((score, k, centroids));
        }
    }
    let (_, k, centroids) = best.expect("at least one k is tried");
    let labels = rows.iter().map(|r| nearest(r, &centroids).0).collect();
    (
        Clustering {
            k,
            silhouettes,
            centroids,
            means,
            stds,
        },
        labels,
    )
}

impl Clustering {
    /// Assigns a raw (unstandardized) feature row to its cluster.
    pub(crate) fn assign(&self, raw: &[f64]) -> usize {
        let z: Vec<f64> = raw
            .iter()
            .zip(&self.means)
            .zip(&self.stds)
            .map(|((x, m), s)| (x - m) / s)
            .collect();
        nearest(&z, &self.centroids).0
    }

    /// Automatic zh/en names from each centroid's most distinctive features (largest |z|),
    /// made unique by adding features until no two clusters share a name.
    pub(crate) fn names(&self) -> Vec<(String, String, Vec<String>)> {
        let ranked: Vec<Vec<(usize, f64)>> = self
            .centroids
            .iter()
            .map(|c| {
                let mut r: Vec<(usize, f64)> = c.iter().copied().enumerate().collect();
                r.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
                r
            })
            .collect();
        let words = |c: usize, take: usize| -> (String, String, Vec<String>) {
            let picked: Vec<&(usize, f64)> = ranked[c].iter().take(take).collect();
            let zh: Vec<&str> = picked
                .iter()
                .map(|(f, z)| {
                    if *z >= 0.0 {
                        FEATURES[*f].high.0
                    } else {
                        FEATURES[*f].low.0
                    }
                })
                .collect();
            let en: Vec<&str> = picked
                .iter()
                .map(|(f, z)| {
                    if *z >= 0.0 {
                        FEATURES[*f].high.1
                    } else {
                        FEATURES[*f].low.1
                    }
                })
                .collect();
            let top = picked
                .iter()
                .map(|(f, z)| format!("{} {:+.2}σ", FEATURES[*f].name, z))
                .collect();
            (zh.join("·"), en.join(" · "), top)
        };
        let mut take = vec![3; self.centroids.len()];
        loop {
            let names: Vec<_> = (0..self.centroids.len())
                .map(|c| words(c, take[c]))
                .collect();
            let mut clash = false;
            for i in 0..names.len() {
                for j in i + 1..names.len() {
                    if names[i].0 == names[j].0 {
                        clash = true;
                        for c in [i, j] {
                            take[c] = (take[c] + 1).min(FEATURES.len());
                        }
                    }
                }
            }
            if !clash || take.iter().all(|t| *t == FEATURES.len()) {
                return names
                    .into_iter()
                    .enumerate()
                    .map(|(i, (zh, en, top))| {
                        if clash {
                            (format!("{zh}#{}", i + 1), format!("{en} #{}", i + 1), top)
                        } else {
                            (zh, en, top)
                        }
                    })
                    .collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_separated_blobs_are_found_with_the_right_k() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let centres = [
            [0.0, 0.0],
            [10.0, 0.0],
            [0.0, 10.0],
            [10.0, 10.0],
            [5.0, 20.0],
        ];
        let mut rows = Vec::new();
        for c in centres {
            for _ in 0..300 {
                rows.push(vec![
                    c[0] + rng.random::<f64>() - 0.5,
                    c[1] + rng.random::<f64>() - 0.5,
                ]);
            }
        }
        let config = ClusterConfig {
            k_min: 3,
            k_max: 7,
            silhouette_sample: 600,
            ..ClusterConfig::default()
        };
        let (fit1, labels) = fit(rows.clone(), &config);
        assert_eq!(fit1.k, 5, "{:?}", fit1.silhouettes);
        // Every blob lands in one cluster.
        for b in 0..5 {
            let first = labels[b * 300];
            assert!(labels[b * 300..(b + 1) * 300].iter().all(|l| *l == first));
        }
        // Seeded: the same input gives the same clustering.
        let (fit2, labels2) = fit(rows, &config);
        assert_eq!(labels, labels2);
        assert_eq!(fit1.centroids, fit2.centroids);
    }
}
