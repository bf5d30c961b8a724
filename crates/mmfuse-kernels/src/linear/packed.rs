//! `y = x·W + b` at prediction with `W` packed once: the weight is laid out in panels of 16
//! columns (`[K][16]` each, the last one zero-padded) the first time a layer predicts, kept
//! beside the layer ([`PackedCache`]), and reused by every later call; an AVX2 + FMA kernel of
//! 6 rows × 16 columns (12 accumulators, two loads of the panel and six broadcasts of `x` per
//! step of `K`) writes each output tile once, with the bias added as it is stored. Where the
//! CPU has AVX-512 the same kernel in 512-bit registers covers two panels at once (6 × 32),
//! with the same operations in the same order per output: both give the same bits.
//!
//! Why not `gemm` (which `Linear` used before, through burn's matmul): gemm re-packs the whole
//! weight on every call, and at the row counts of one post (65 tokens) splits the product over
//! two threads unevenly. On MuSE-small's shapes at 2 threads this layer ran at 1.2–2.4× burn's
//! op (`cargo bench -p mmfuse --bench muse_vs_torch -- --linear-shapes`: 65 × 256 → 1024 at 118
//! against 49 GFLOP/s, 2080 × 1024 → 256 at 149 against 118). On an AVX-512 CPU (AMD Zen 4)
//! the 256-bit kernel ran MuSE-small's batch of 32 at 1.1× gemm's AVX-512 kernels and concat's
//! batch-1 latency at 1.3×, and the 512-bit form was level with it or ahead
//! (`bench/README.md`). Other architectures use gemm.
//!
//! The cache ([`crate::cache::DerivedCache`]) holds the weight tensor it packed and is checked
//! against the layer's current weight on every call: a replaced weight packs again.
//!
//! Training (`backward.rs`) packs `W` and `Wᵀ` on every call instead, into a buffer each thread
//! keeps for its next packing ([`PackedWeight::recycle`]).

use crate::math::DisjointOut;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

/// Rows of an output tile.
const MR: usize = 6;
/// Columns of an output tile (two AVX vectors) and of a weight panel.
const NR: usize = 16;
/// Steps of `K` per pass over a panel: a panel block of 256 × 16 f32 (16 KiB) stays in L1 while
/// every row tile of a task passes over it.
const KC: usize = 256;
/// Rows per task: a block of `x` of 96 × 256 f32 (96 KiB) stays in L2.
const MC: usize = 96;
/// Panels packed by one task.
const PACK_GROUP: usize = 8;
/// The fewest multiply-adds a task of one product gets (a few microseconds of work): below
/// that, handing the task to another thread costs about what it computes, and where several
/// predictions share the pool (a server's or Python's threads) each such hand-off ties one
/// call to another's progress. Two Python threads predicting a small demo model post by post
/// took 1.7–1.8× one thread's time with a task per even block of rows, 1.1–1.35× with this.
const TASK_FMAS: usize = 1 << 18;

/// The kernels a CPU runs (ordered: a CPU that runs one runs those before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// 6 × 16 tiles in 256-bit registers (AVX2 + FMA).
    Avx2,
    /// 6 × 32 tiles over two panels in 512-bit registers (AVX-512F), the 6 × 16 kernel for a
    /// panel left over.
    Avx512,
}

/// This CPU's kernels: x86-64 with AVX2 and FMA, and AVX-512F for the wide one; `None` elsewhere.
pub(crate) fn isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            avx2.then_some(if is_x86_feature_detected!("avx512f") { Isa::Avx512 } else { Isa::Avx2 })
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// This CPU's kernels, for a caller that checked [`available`].
///
/// # Panics
/// Where the CPU does not run the packed kernel.
fn this_cpu() -> Isa {
    isa().expect("linear::packed::forward without AVX2 + FMA")
}

/// Whether this CPU runs the packed kernel ([`isa`]).
pub(crate) fn available() -> bool {
    isa().is_some()
}

/// A `[K, N]` weight in panels of [`NR`] columns: panel `p` holds columns `16p..16p+16` as `K`
/// rows of 16 (zeros past `N`).
#[derive(Debug, PartialEq)]
pub struct PackedWeight {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeight {
    /// Packs the row-major `[k, n]` values `w`.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedWeight: {} values for [{k}, {n}]", w.len());
        let n_panels = n.div_ceil(NR);
        let mut panels = buffer(n_panels * NR * k);
        // a task per PACK_GROUP panels, reading its columns of each row in one stretch
        panels.par_chunks_mut(PACK_GROUP * NR * k).enumerate().for_each(|(g, group)| {
            let p0 = g * PACK_GROUP;
            for (r, row) in w.chunks_exact(n).enumerate() {
                for (q, panel) in group.chunks_exact_mut(NR * k).enumerate() {
                    let (c0, width) = ((p0 + q) * NR, NR.min(n - (p0 + q) * NR));
                    let dst = &mut panel[r * NR..(r + 1) * NR];
                    dst[..width].copy_from_slice(&row[c0..c0 + width]);
                    dst[width..].fill(0.0);
                }
            }
        });
        PackedWeight { k, n, panels }
    }

    /// Packs the transpose of the row-major `[k, n]` values `w`: the `[n, k]` weight `wᵀ` (a
    /// layer's backward, `dx = g·Wᵀ`), without a transposed copy first.
    pub(crate) fn transposed(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedWeight: {} values for [{k}, {n}]", w.len());
        // wᵀ is [n, k]: its K is n, its columns are the rows of w
        let n_panels = k.div_ceil(NR);
        let mut panels = buffer(n_panels * NR * n);
        panels.par_chunks_mut(NR * n).enumerate().for_each(|(p, panel)| {
            let (r0, width) = (p * NR, NR.min(k - p * NR));
            if width < NR {
                panel.fill(0.0);
            }
            for (c, row) in w[r0 * n..(r0 + width) * n].chunks_exact(n).enumerate() {
                for (dst, v) in panel[c..].iter_mut().step_by(NR).zip(row) {
                    *dst = *v;
                }
            }
        });
        PackedWeight { k: n, n: k, panels }
    }

    /// Gives the packing's buffer back to this thread for its next packing ([`buffer`]): a
    /// packing made for one call (training's) then costs no fresh pages. On this VM a fresh
    /// page's first touch cost about 2.5 µs, most of a multi-megabyte packing's time.
    pub(crate) fn recycle(self) {
        SPARE.with(|spare| {
            let kept = spare.take();
            spare.set(if kept.capacity() > self.panels.capacity() { kept } else { self.panels });
        });
    }

    /// Rows of the weight (the product's `K`).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Steps `k0..k0 + kc` of panels `p..p + count`: from the first panel's step `k0` to the
    /// last one's step `k0 + kc` (consecutive panels lie `NR·K` values apart).
    fn steps(&self, p: usize, count: usize, k0: usize, kc: usize) -> &[f32] {
        &self.panels[p * NR * self.k + k0 * NR..(p + count - 1) * NR * self.k + (k0 + kc) * NR]
    }
}

thread_local! {
    /// The buffer of the last packing recycled on this thread ([`PackedWeight::recycle`]).
    static SPARE: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `len` values for a packing to overwrite, all of them: this thread's spare buffer where it has
/// one (its old values kept), else a new one.
fn buffer(len: usize) -> Vec<f32> {
    let mut v = SPARE.take();
    v.resize(len, 0.0);
    v
}

/// The packed weight of one `Linear` (or of several side by side, [`forward_group`](super::forward_group)),
/// kept with the weight tensors it was packed from.
pub type PackedCache = crate::cache::DerivedCache<PackedWeight>;

/// The packing of `weights` (each `[k, n_i]`, any layout) side by side, `[k, Σ n_i]`.
pub(crate) fn pack_side_by_side(weights: &[FlexTensor]) -> PackedWeight {
    let k = crate::autodiff::dims::<2>(&weights[0])[0];
    let widths: Vec<usize> = weights.iter().map(|w| crate::autodiff::dims::<2>(w)[1]).collect();
    let n = widths.iter().sum::<usize>();
    // the columns of every weight, row by row
    let values: Vec<_> = weights.iter().map(|w| crate::autodiff::values(w)).collect();
    let mut side_by_side = Vec::with_capacity(k * n);
    for r in 0..k {
        for (v, &w) in values.iter().zip(&widths) {
            side_by_side.extend_from_slice(&v[r * w..(r + 1) * w]);
        }
    }
    PackedWeight::new(&side_by_side, k, n)
}

/// Whether a product over `rows` rows is too short to keep every thread busy by rows alone (one
/// post): its columns are split too, and products over the same input are better done as one.
pub(crate) fn few_rows(rows: usize) -> bool {
    rows.div_ceil(MC) < 2 * rayon::current_num_threads()
}

/// `x` `[rows, K]` (row-major) times the packed weight, plus `bias` `[N]`: `y` `[rows, N]`.
/// Each output is summed whole by one task in a fixed order: the result does not depend on the
/// threads, nor on the kernel's width. `y` is not zeroed first: the first block of `K` stores
/// every output.
///
/// # Panics
/// If the lengths do not match the shapes, or [`available`] is false.
pub(crate) fn forward(x: &[f32], rows: usize, w: &PackedWeight, bias: Option<&[f32]>) -> Vec<f32> {
    forward_isa(this_cpu(), x, rows, w, bias, None)
}

/// [`forward`] through a packing made for this one call, its buffer then given back to the
/// thread ([`PackedWeight::recycle`]).
pub(crate) fn forward_once(x: &[f32], rows: usize, w: PackedWeight, bias: Option<&[f32]>) -> Vec<f32> {
    let y = forward(x, rows, &w, bias);
    w.recycle();
    y
}

/// What runs over each finished stretch of output while it is still in cache:
/// `(row, first column, the values of that row from that column)`, e.g. a shortcut's add and
/// an activation. Every output passes through it exactly once.
pub(crate) type Epilogue<'a> = dyn Fn(usize, usize, &mut [f32]) + Sync + 'a;

/// [`forward`], then `epilogue` over each task's rectangle of the output as soon as it is done.
pub(crate) fn forward_then(x: &[f32], rows: usize, w: &PackedWeight, bias: Option<&[f32]>, epilogue: &Epilogue) -> Vec<f32> {
    forward_isa(this_cpu(), x, rows, w, bias, Some(epilogue))
}

/// [`forward_then`] with the kernels of `isa` (which this CPU must run).
pub(crate) fn forward_isa(isa: Isa, x: &[f32], rows: usize, w: &PackedWeight, bias: Option<&[f32]>, epilogue: Option<&Epilogue>) -> Vec<f32> {
    let mut y = Vec::<f32>::with_capacity(rows * w.n);
    // SAFETY: `y` holds rows × N allocated values.
    unsafe { run(isa, x, rows, w, bias, epilogue, &DisjointOut(y.as_mut_ptr())) };
    // SAFETY: `run` stored every one of them.
    unsafe { y.set_len(rows * w.n) };
    y
}

/// [`forward_then`] into `y` (`rows × N` values, all overwritten), e.g. a band of a larger map.
///
/// # Panics
/// As [`forward`], and if `y` does not hold `rows × N` values.
pub(crate) fn forward_into(x: &[f32], rows: usize, w: &PackedWeight, bias: Option<&[f32]>, epilogue: Option<&Epilogue>, y: &mut [f32]) {
    assert_eq!(y.len(), rows * w.n, "linear::packed::forward_into: the output does not match the shapes");
    let isa = this_cpu();
    // SAFETY: `y` is exclusively borrowed and holds rows × N values.
    unsafe { run(isa, x, rows, w, bias, epilogue, &DisjointOut(y.as_mut_ptr())) }
}

/// The product into `out`, every one of its `rows × N` values stored.
///
/// # Safety
/// `out` must point at `rows × N` allocated f32 values that nothing else reads or writes
/// during the call.
unsafe fn run(isa: Isa, x: &[f32], rows: usize, w: &PackedWeight, bias: Option<&[f32]>, epilogue: Option<&Epilogue>, out: &DisjointOut) {
    let (k, n) = (w.k, w.n);
    assert!(self::isa().is_some_and(|cpu| isa <= cpu), "linear::packed: this CPU does not run {isa:?}");
    assert!(k > 0 && x.len() == rows * k && bias.is_none_or(|b| b.len() == n), "linear::packed::forward: shapes do not match");
    let n_panels = n.div_ceil(NR);
    // bias padded to whole panels
    let mut b = vec![0f32; n_panels * NR];
    if let Some(bias) = bias {
        b[..n].copy_from_slice(bias);
    }
    let threads = rayon::current_num_threads();
    // blocks of at most MC rows, as many as the threads share evenly, of whole tiles as even
    // as they can be (1024 rows: 12 blocks of 84–90, not 10 of 96 and one of 64), but no more
    // than the work pays for, TASK_FMAS multiply-adds each (a small CNN's first layer, 1024 rows
    // × 27 → 16, is 0.44 M in all, which even blocks would cut into 12 tasks of a microsecond)
    let row_blocks = balanced_blocks(rows, threads).min((rows * k * n / TASK_FMAS).max(1));
    let tiles = rows.div_ceil(MR);
    let block_rows = |r: usize| ((r * tiles / row_blocks * MR).min(rows), ((r + 1) * tiles / row_blocks * MR).min(rows));
    // few row blocks (a single post): split the columns too, so that every thread has work
    // (again no task below TASK_FMAS)
    let col_groups =
        if row_blocks >= 2 * threads { 1 } else { (2 * threads).div_ceil(row_blocks).min(n_panels).min((rows * k * n / TASK_FMAS / row_blocks).max(1)) };
    // with AVX-512, whole pairs of panels per group: an odd group's last panel would run the
    // 256-bit kernel
    let per_group = n_panels.div_ceil(col_groups);
    let per_group = if isa == Isa::Avx512 { per_group + per_group % 2 } else { per_group };
    let tasks = row_blocks * n_panels.div_ceil(per_group);
    let task = |t: usize| {
        let (r, g) = (t % row_blocks, t / row_blocks);
        let rows = block_rows(r);
        let panels = (g * per_group, ((g + 1) * per_group).min(n_panels));
        // SAFETY: tasks write disjoint (row block × panel group) rectangles of `out`'s
        // `rows × N` allocated values, which nothing else touches (the caller's guarantee).
        unsafe { block(isa, x, w, &b, out, rows, panels) }
        if let Some(epilogue) = epilogue {
            let (c0, c1) = (panels.0 * NR, (panels.1 * NR).min(n));
            for i in rows.0..rows.1 {
                // SAFETY: this task's rectangle, every value of it stored by `block` above.
                epilogue(i, c0, unsafe { std::slice::from_raw_parts_mut(out.at(i * n + c0), c1 - c0) });
            }
        }
    };
    if tasks == 1 { task(0) } else { (0..tasks).into_par_iter().for_each(task) }
    // the tasks cover every (row, column) of `out`, and the first block of K (`k0 == 0`, with
    // the bias) stores each of its outputs before any later block reads it
}

/// How many row blocks a product over `rows` rows is split into: at least one per [`MC`] rows,
/// rounded up to a multiple of `threads` where there are enough tiles of [`MR`] rows for that.
fn balanced_blocks(rows: usize, threads: usize) -> usize {
    let blocks = rows.div_ceil(MC).max(1);
    let even = blocks.div_ceil(threads) * threads;
    if blocks >= threads && even <= rows.div_ceil(MR) { even } else { blocks }
}

/// Rows `rows.0..rows.1` × panels `panels.0..panels.1` of the output; with [`Isa::Avx512`],
/// two full panels at a time.
///
/// # Safety
/// `y` must point at `rows × N` allocated f32 values that no other thread reads or writes in
/// this rectangle (not yet initialised before the first block of `K`); `x`, `w` and `bias` as
/// checked by [`forward_isa`], whose `isa` the CPU runs.
unsafe fn block(isa: Isa, x: &[f32], w: &PackedWeight, bias: &[f32], y: &DisjointOut, rows: (usize, usize), panels: (usize, usize)) {
    let (k, n) = (w.k, w.n);
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let mut p = panels.0;
        while p < panels.1 {
            let c0 = p * NR;
            // with AVX-512, panels p and p + 1 when both are full: their blocks lie NR·K apart
            let pair = isa == Isa::Avx512 && p + 1 < panels.1 && c0 + 2 * NR <= n;
            let (n_panels, width) = if pair { (2, 2 * NR) } else { (1, NR.min(n - c0)) };
            let b = w.steps(p, n_panels, k0, kc);
            let bias = (k0 == 0).then_some(&bias[c0..c0 + n_panels * NR]);
            let mut i = rows.0;
            while i < rows.1 {
                let r = MR.min(rows.1 - i);
                let (a, c) = (&x[i * k + k0..], y.at(i * n + c0));
                // SAFETY: rows i..i+r, columns c0..c0+width lie in this task's rectangle; a
                // pair only where the CPU has AVX-512F.
                unsafe {
                    if pair {
                        wide_rows(a.as_ptr(), k, b.as_ptr(), NR * k, kc, c, n, r, bias);
                    } else {
                        tile(a, k, b, kc, c, n, r, width, bias);
                    }
                }
                i += r;
            }
            p += n_panels;
        }
        k0 += kc;
    }
}

/// One output tile of `r` ≤ 6 rows × `width` ≤ 16 columns at `c` (row stride `ldc`): set to
/// `bias + a·panel` when `bias` is given (the first block of `K`: `c` is only written), else
/// added to.
///
/// # Safety
/// `c` must be valid for `r` rows of `width` values at stride `ldc`; `a` holds `r` rows of at
/// least `kc` values at stride `lda` (the last row may end right after its `kc` values).
#[allow(clippy::too_many_arguments)]
unsafe fn tile(a: &[f32], lda: usize, panel: &[f32], kc: usize, c: *mut f32, ldc: usize, r: usize, width: usize, bias: Option<&[f32]>) {
    debug_assert!(r <= MR && width <= NR && panel.len() >= kc * NR && a.len() >= (r - 1) * lda + kc);
    if width == NR {
        // SAFETY: as the caller guarantees.
        unsafe { kernel_rows(a.as_ptr(), lda, panel.as_ptr(), kc, c, ldc, r, bias) }
        return;
    }
    // the last, narrower panel: through a full-width tile on the stack (holding the partial
    // sums of the earlier blocks of K, if any)
    let mut tmp = [0f32; MR * NR];
    for i in (0..r).filter(|_| bias.is_none()) {
        // SAFETY: row i of the tile has `width` values at c + i·ldc, stored by the first block.
        unsafe { std::ptr::copy_nonoverlapping(c.add(i * ldc), tmp.as_mut_ptr().add(i * NR), width) };
    }
    // SAFETY: tmp holds MR full rows of NR.
    unsafe { kernel_rows(a.as_ptr(), lda, panel.as_ptr(), kc, tmp.as_mut_ptr(), NR, r, bias) };
    for i in 0..r {
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr().add(i * NR), c.add(i * ldc), width) };
    }
}

/// `kernel::<r>(args)` for the const-generic instance of `r` ≤ 6 rows.
#[cfg(target_arch = "x86_64")]
macro_rules! for_rows {
    ($r:expr, $($kernel:ident)::+, ($($arg:expr),*)) => {
        match $r {
            6 => $($kernel)::+::<6>($($arg),*),
            5 => $($kernel)::+::<5>($($arg),*),
            4 => $($kernel)::+::<4>($($arg),*),
            3 => $($kernel)::+::<3>($($arg),*),
            2 => $($kernel)::+::<2>($($arg),*),
            _ => $($kernel)::+::<1>($($arg),*),
        }
    };
}

/// The kernel for `r` rows, dispatched to its const-generic instance.
///
/// # Safety
/// As [`tile`], with `width` = 16 and the CPU having AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_rows(a: *const f32, lda: usize, b: *const f32, kc: usize, c: *mut f32, ldc: usize, r: usize, bias: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded; `forward` checked `available()` (AVX2 + FMA).
    unsafe {
        for_rows!(r, avx2::kernel, (a, lda, b, kc, c, ldc, bias.map(<[f32]>::as_ptr)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the packed kernel runs only where `available()`: {:?}", (a, lda, b, kc, c, ldc, r, bias.is_some()))
}

/// The 512-bit kernel for `r` rows × two panels (`b` and `b + next`), dispatched to its
/// const-generic instance.
///
/// # Safety
/// As [`avx512::kernel`].
#[allow(clippy::too_many_arguments)]
unsafe fn wide_rows(a: *const f32, lda: usize, b: *const f32, next: usize, kc: usize, c: *mut f32, ldc: usize, r: usize, bias: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        for_rows!(r, avx512::kernel, (a, lda, b, next, kc, c, ldc, bias.map(<[f32]>::as_ptr)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the packed kernel runs only where `available()`: {:?}", (a, lda, b, next, kc, c, ldc, r, bias.is_some()))
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::NR;
    use std::arch::x86_64::*;

    /// `R` rows × 32 columns, the 16 of the panel block at `b` then the 16 of the one at
    /// `b + next`: `c = bias + a·b` (or `c += a·b` without `bias`) over `kc` steps, the
    /// operations of the 256-bit kernel in the same order, in 512-bit registers.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` valid for `R` rows of `kc` at stride `lda`, `b` and `b + next`
    /// for `kc × 16` each, `c` for `R` rows of 32 at stride `ldc`, `bias` (if any) for 32.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel<const R: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        next: usize,
        kc: usize,
        c: *mut f32,
        ldc: usize,
        bias: Option<*const f32>,
    ) {
        // SAFETY: every pointer offset below stays inside the ranges the caller guarantees.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for p in 0..kc {
                let b0 = _mm512_loadu_ps(b.add(p * NR));
                let b1 = _mm512_loadu_ps(b.add(next + p * NR));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(i * lda + p));
                    acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                let row = c.add(i * ldc);
                let (c0, c1) = match bias {
                    Some(bias) => (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(NR))),
                    None => (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(NR))),
                };
                _mm512_storeu_ps(row, _mm512_add_ps(c0, acc[0]));
                _mm512_storeu_ps(row.add(NR), _mm512_add_ps(c1, acc[1]));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::NR;
    use std::arch::x86_64::*;

    /// `R` rows × 16 columns: `c = bias + a·b` (or `c += a·b` without `bias`) over `kc` steps,
    /// `a` row-major at stride `lda`, `b` a panel block of `kc` rows of 16.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `a` valid for `R` rows of `kc` at stride `lda`, `b` for
    /// `kc × 16`, `c` for `R` rows of 16 at stride `ldc`, `bias` (if any) for 16.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel<const R: usize>(a: *const f32, lda: usize, b: *const f32, kc: usize, c: *mut f32, ldc: usize, bias: Option<*const f32>) {
        // SAFETY: every pointer offset below stays inside the ranges the caller guarantees.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for p in 0..kc {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(i * lda + p));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                let row = c.add(i * ldc);
                let (c0, c1) = match bias {
                    Some(bias) => (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))),
                    None => (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))),
                };
                _mm256_storeu_ps(row, _mm256_add_ps(c0, acc[0]));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(c1, acc[1]));
            }
        }
    }
}
