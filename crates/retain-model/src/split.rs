//! Seeded, reproducible row selection: stratified splits and samples.

/// SplitMix64: small, fast and good enough to shuffle and sample rows reproducibly.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Splits `rows` into (kept, held out) with `share` of each class held out, so both sides keep
/// the churn rate. Both lists come back in row order.
#[must_use]
pub fn stratified(
    rows: &[usize],
    labels: &[bool],
    share: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix(seed);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for class in [true, false] {
        let mut members: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|i| labels[*i] == class)
            .collect();
        rng.shuffle(&mut members);
        let n = (members.len() as f64 * share).round() as usize;
        held.extend_from_slice(&members[..n]);
        kept.extend_from_slice(&members[n..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// At most `max` of `rows`, chosen at random but reproducibly, in row order.
#[must_use]
pub fn sample(rows: &[usize], max: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let mut all = rows.to_vec();
    SplitMix(seed).shuffle(&mut all);
    all.truncate(max);
    all.sort_unstable();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_the_churn_rate_and_is_reproducible() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let rows: Vec<usize> = (0..1000).collect();
        let (kept, held) = stratified(&rows, &labels, 0.3, 42);
        assert_eq!(kept.len() + held.len(), 1000);
        assert_eq!(held.iter().filter(|i| labels[**i]).count(), 30);
        assert_eq!(held.len(), 300);
        assert_eq!(stratified(&rows, &labels, 0.3, 42).1, held);
        assert_ne!(stratified(&rows, &labels, 0.3, 43).1, held);
        assert!(kept.iter().all(|i| !held.contains(i)));
    }

    #[test]
    fn sample_is_bounded_and_sorted() {
        let rows: Vec<usize> = (0..100).collect();
        let s = sample(&rows, 10, 1);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(&rows, 200, 1), rows);
    }
}
