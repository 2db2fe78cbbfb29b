//! Rows shared out among the cores: scoring, TreeSHAP, the blend's calibrations and the
//! column-wise scorer all split their rows into runs a thread each with these.

/// Runs `work` over the rows of row-major `x` (`d` columns) on every core: each thread takes a
/// run of rows, at least `min_rows` and a multiple of `align`, and their `width` outputs a row
/// in `out`. With one thread's worth of rows, `work` runs here.
pub(crate) fn on_cores(
    x: &[f64],
    d: usize,
    out: &mut [f64],
    width: usize,
    min_rows: usize,
    align: usize,
    work: impl Fn(&[f64], &mut [f64]) + Sync,
) {
    let rows = x.len() / d.max(1);
    rows_on_cores(rows, out, width, min_rows, align, |first, chunk| {
        work(&x[first * d..(first + chunk.len() / width) * d], chunk);
    });
}

/// Runs `work` over `rows` rows held wherever the caller keeps them, on every core: each thread
/// takes a run of rows, at least `min_rows` and a multiple of `align`, given as its first row
/// and their `width` outputs a row in `out`. With one thread's worth of rows, `work` runs here.
pub(crate) fn rows_on_cores(
    rows: usize,
    out: &mut [f64],
    width: usize,
    min_rows: usize,
    align: usize,
    work: impl Fn(usize, &mut [f64]) + Sync,
) {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(rows.div_ceil(min_rows.max(1)))
        .max(1);
    if threads == 1 {
        work(0, out);
        return;
    }
    let per = rows.div_ceil(threads).div_ceil(align) * align;
    let work = &work;
    std::thread::scope(|scope| {
        for (k, chunk) in out.chunks_mut(per * width).enumerate() {
            scope.spawn(move || work(k * per, chunk));
        }
    });
}
