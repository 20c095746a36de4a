#!/usr/bin/env python3
"""PyTorch CPU timings of the FDS work that `benches/fds.rs` measures, with the same formulas,
shapes, seeds and data — the comparison the FDS benchmark figures are made against.

Install (only PyPI is reachable, so no `--index-url`; the PyPI `torch` wheel is large — a CUDA
build — but runs on the CPU; keep the virtual environment out of the repository):

    python3 -m venv /tmp/fds-torch-venv
    /tmp/fds-torch-venv/bin/pip install torch numpy

Run (from the workspace root; each thread count is a separate process so that intra-op pools do
not leak between settings):

    /tmp/fds-torch-venv/bin/python crates/dirkit-nn/benches/fds_torch.py --threads 1
    /tmp/fds-torch-venv/bin/python crates/dirkit-nn/benches/fds_torch.py --threads 2

and the Rust side with the same thread count:

    RAYON_NUM_THREADS=1 cargo bench -p dirkit-nn --bench fds
    RAYON_NUM_THREADS=2 cargo bench -p dirkit-nn --bench fds

What is timed (ms per operation, median of --repeats runs after a warm-up run):

- accumulate diag / full: per-bin count, mean, M2 (and co-moment Σ(z−μ)(z−μ)ᵀ for full) of
  12,000 × 2048 f32 features, fed in batches of 256, each batch's per-bin moments (centred on
  the bin's first row in the batch) merged into the per-bin statistics with Chan et al.'s
  parallel update, all in float64 — `Fds::accumulate`. Full, two schedules:
  `accumulate_full` merges every batch (one in-place `addmm_` per bin present: XᵀX plus the
  merge's rank-1 term as one extra row √f·δ, the fastest per-batch form we found);
  `accumulate_full_buffered` lets each bin's rows wait (up to 256) and merges them as one part,
  the schedule the Rust side uses. The 3.1 GiB of statistics are allocated once and zeroed
  outside the timing between runs, as the Rust side clears them in place in `end_epoch`.
- end_epoch diag (D = 2048) and full (D = 256): momentum-0.9 update of the running statistics,
  smoothing over the bin axis (gaussian ks 5 σ 2, sum-normalised, reflect padding that excludes
  the edge), and the per-bin calibration maps: the diagonal scales, or
  A = Σ̃^{1/2} Σ^{-1/2} (shrinkage 0.2 toward the diagonal, eigenvalues floored at 1e-6 × mean,
  singular values clipped to [√0.1, √10]) — `Fds::end_epoch`. Full at D = 2048 would be 3 × 97
  dense 2048² decompositions per epoch and is not timed.
- calibrate diag / full: z' = (z − μ_b)·scale_b + μ̃_b, or z' = (z − μ_b)Aᵀ_b + μ̃_b per bin,
  of a 256 × 2048 f32 batch (the first 256 training rows) — `Fds::calibrate`. The full maps at
  D = 2048 are not made by `end_epoch` (see above) but set directly, as in the Rust benchmark:
  the bins' means and a random near-identity f32 matrix per bin with at least two samples
  (applying a matrix costs the same whatever its values).

Data (identical in benches/fds.rs): a counter-based splitmix64 stream per purpose; only IEEE
+ − × ÷ and sqrt, so numpy and Rust give bit-identical labels and features. Labels are
AgeDB-like ages 3…99, long-tailed: with probability 0.05 uniform, otherwise
3 + ⌊97·x^1.5⌋ with x the mean of three uniforms (peak near 38). Features:
2u − 1 + 0.02·(age − 50), rounded to f32. Both scripts print the same checksums of the bin
counts and feature bits, and the same sums of the diagonal statistics.
"""

import argparse
import statistics
import sys
import time

import numpy as np

N_ROWS = 12_000
BATCH = 256
DIM = 2048
DIM_FULL_END_EPOCH = 256
BIN_START = 3.0
N_BINS = 97  # labels 3..99: the reference's AgeDB-DIR bins (bucket_start 3, bucket_num 100)
SEED = 0x05EE_DFD5
MOMENTUM = 0.9
FLUSH_ROWS = 256  # rows a bin keeps waiting in the buffered schedule (as stats.rs)
CLIP = (0.1, 10.0)
SHRINKAGE = 0.2
EIG_FLOOR = 1e-6

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def uniforms(stream: int, n: int) -> np.ndarray:
    """u_i = splitmix64(SEED + stream·2^32 + (i+1)·GOLDEN) >> 11 · 2^-53, for i < n (f64)."""
    with np.errstate(over="ignore"):
        base = np.uint64((SEED + (stream << 32)) & 0xFFFF_FFFF_FFFF_FFFF)
        z = base + (np.arange(1, n + 1, dtype=np.uint64) * GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def long_tailed_ages(n: int) -> np.ndarray:
    """n AgeDB-like ages 3..99 (f64) from streams 1-4 (also used by head_step_torch.py)."""
    pick, u1, u2, u3 = (uniforms(s, n) for s in (1, 2, 3, 4))
    x = (u1 + u2 + u3) / 3.0
    tail = BIN_START + np.floor(97.0 * u1)
    bell = BIN_START + np.floor(97.0 * (x * np.sqrt(x)))
    return np.where(pick < 0.05, tail, bell)


def dataset(dim: int):
    """Labels (N_ROWS, f32 ages) and features (N_ROWS × dim, f32)."""
    ages = long_tailed_ages(N_ROWS)
    u = uniforms(5, N_ROWS * dim).reshape(N_ROWS, dim)
    feats = 2.0 * u - 1.0 + 0.02 * (ages - 50.0)[:, None]
    return ages.astype(np.float32), feats.astype(np.float32)


def bins_of(torch, y):
    return torch.floor((y.double() - BIN_START) / 1.0).clamp_(0, N_BINS - 1).long()


def gaussian_window():
    """methods.md §2 'gaussian' (ks 5, σ 2, truncation r = 8 folded back by half-sample
    mirroring), sum-normalised for FDS."""
    ks, sigma = 5, 2.0
    r = int(4.0 * sigma + 0.5)
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    g /= g.sum()
    impulse = np.zeros(ks)
    impulse[ks // 2] = 1.0

    def mirror(i):
        p = 2 * ks
        i %= p
        return i if i < ks else p - 1 - i

    out = np.zeros(ks)
    for i in range(ks):
        out[i] = sum(g[j + r] * impulse[mirror(i - j)] for j in range(-r, r + 1))
    return out / out.sum()


class Stats:
    """Per-bin count, mean, M2 and (full) co-moment, float64."""

    def __init__(self, torch, dim, full):
        self.count = torch.zeros(N_BINS, dtype=torch.float64)
        self.mean = torch.zeros(N_BINS, dim, dtype=torch.float64)
        self.m2 = torch.zeros(N_BINS, dim, dtype=torch.float64)
        self.com = torch.zeros(N_BINS, dim, dim, dtype=torch.float64) if full else None

    def add_batch(self, torch, z, y):
        b = bins_of(torch, y)
        x = z.double()
        present, inv, cnt = torch.unique(b, return_inverse=True, return_counts=True)
        order = torch.argsort(inv, stable=True)
        starts = torch.cumsum(cnt, 0) - cnt
        pivot = x[order[starts]]  # first row of each bin in the batch
        p = present.numel()
        shift_sum = torch.zeros(p, x.shape[1], dtype=torch.float64).index_add_(0, inv, x - pivot[inv])
        nb = cnt.double()[:, None]
        mean_b = pivot + shift_sum / nb
        xc = x - mean_b[inv]
        m2_b = torch.zeros_like(mean_b).index_add_(0, inv, xc * xc)
        # Chan et al.: δ = μ_b − μ_a, μ += δ·n_b/n, M2 += M2_b + δ²·n_a·n_b/n, C += C_b + f·δδᵀ.
        na = self.count[present][:, None]
        n = na + nb
        delta = mean_b - self.mean[present]
        f = na * nb / n
        self.mean[present] += delta * nb / n
        self.m2[present] += m2_b + delta * delta * f
        self.count[present] += cnt.double()
        if self.com is not None:
            groups = torch.split(xc[order], cnt.tolist())
            root_f = f.sqrt()
            for j, bin_ in enumerate(present.tolist()):
                rows = torch.cat([groups[j], root_f[j] * delta[j : j + 1]])
                self.com[bin_].addmm_(rows.T, rows)


class BufferedStats(Stats):
    """The same statistics, scheduled as the Rust `Accumulator` does in full-covariance mode:
    each bin's rows wait (up to FLUSH_ROWS) and are folded in as one part — mean and M2
    centred on the part's first row, one `addmm_` for XᵀX plus the rank-1 merge term — when
    the bin has FLUSH_ROWS rows waiting or at the end of the epoch (`finish`)."""

    def __init__(self, torch, dim):
        super().__init__(torch, dim, True)
        self.waiting = [[] for _ in range(N_BINS)]
        self.n_waiting = [0] * N_BINS

    def add_batch(self, torch, z, y):
        b = bins_of(torch, y)
        order = torch.argsort(b, stable=True)
        present, cnt = torch.unique(b, return_counts=True)
        for bin_, rows in zip(present.tolist(), torch.split(z[order], cnt.tolist())):
            self.waiting[bin_].append(rows)
            self.n_waiting[bin_] += rows.shape[0]
            if self.n_waiting[bin_] >= FLUSH_ROWS:
                self.fold(torch, bin_)

    def fold(self, torch, b):
        x = torch.cat(self.waiting[b]).double()
        self.waiting[b], self.n_waiting[b] = [], 0
        n = x.shape[0]
        pivot = x[0]
        mean_b = pivot + (x - pivot).sum(0) / n
        xc = x - mean_b
        m2_b = (xc * xc).sum(0)
        na = float(self.count[b])
        if na == 0:
            self.mean[b] = mean_b
            self.m2[b] = m2_b
            torch.mm(xc.T, xc, out=self.com[b])
        else:
            tot = na + n
            delta = mean_b - self.mean[b]
            f = na * n / tot
            self.mean[b] += delta * n / tot
            self.m2[b] += m2_b + delta * delta * f
            rows = torch.cat([xc, (f**0.5) * delta[None]])
            self.com[b].addmm_(rows.T, rows)
        self.count[b] += n

    def finish(self, torch):
        for b in range(N_BINS):
            if self.n_waiting[b]:
                self.fold(torch, b)


class Fds:
    """Running statistics, smoothing and calibration maps (diagonal or full)."""

    def __init__(self, torch, dim, full):
        self.torch, self.dim, self.full = torch, dim, full
        self.epoch = Stats(torch, dim, full)
        self.seen = torch.zeros(N_BINS, dtype=torch.bool)
        self.r_mean = torch.zeros(N_BINS, dim, dtype=torch.float64)
        self.r_var = torch.ones(N_BINS, dim, dtype=torch.float64)
        self.r_cov = (
            torch.eye(dim, dtype=torch.float64).repeat(N_BINS, 1, 1) if full else None
        )
        self.window = torch.tensor(gaussian_window(), dtype=torch.float64)
        self.maps = None

    def accumulate(self, z, y):
        self.epoch.add_batch(self.torch, z, y)

    def _smooth(self, rows):
        """Σ_k w_k rows[reflect(b + k − 2)] over the bin axis, every element independently."""
        torch = self.torch
        h = self.window.numel() // 2
        flat = rows.reshape(N_BINS, -1)
        idx = torch.arange(-h, N_BINS + h)
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx > N_BINS - 1, 2 * (N_BINS - 1) - idx, idx)
        padded = flat[idx]
        out = torch.zeros_like(flat)
        for k in range(2 * h + 1):
            out += self.window[k] * padded[k : k + N_BINS]
        return out.reshape(rows.shape)

    def end_epoch(self):
        torch = self.torch
        e = self.epoch
        self.epoch = Stats(torch, self.dim, self.full)
        has = e.count > 0
        cnt = e.count.clamp(min=2)[:, None]
        var = torch.where((e.count > 1)[:, None], e.m2 / (cnt - 1), torch.zeros_like(e.m2))
        factor = torch.where(self.seen, MOMENTUM, 0.0).double()[:, None]
        upd = has[:, None]
        self.r_mean = torch.where(upd, (1 - factor) * e.mean + factor * self.r_mean, self.r_mean)
        self.r_var = torch.where(upd, (1 - factor) * var + factor * self.r_var, self.r_var)
        if self.full:
            cov = torch.where((e.count > 1)[:, None, None], e.com / (cnt - 1)[:, :, None], 0.0)
            f3 = factor[:, :, None]
            self.r_cov = torch.where(upd[:, :, None], (1 - f3) * cov + f3 * self.r_cov, self.r_cov)
        self.seen |= has
        s_mean, s_var = self._smooth(self.r_mean), self._smooth(self.r_var)
        if not self.full:
            ok = self.seen[:, None] & (self.r_var > 0)
            scale = (s_var / torch.where(ok, self.r_var, 1.0)).clamp(*CLIP).sqrt()
            self.maps = (
                torch.where(ok, self.r_mean, 0.0).float(),
                torch.where(ok, scale, 1.0).float(),
                torch.where(ok, s_mean, 0.0).float(),
            )
            return
        s_cov = self._smooth(self.r_cov)
        mats = []
        for b in range(N_BINS):
            a = full_transform(torch, self.r_cov[b], s_cov[b]) if self.seen[b] else None
            mats.append(None if a is None else a.T.contiguous().float())
        self.maps = (self.r_mean.float(), s_mean.float(), mats)

    def calibrate(self, z, y):
        torch = self.torch
        b = bins_of(torch, y)
        if not self.full:
            shift, scale, target = self.maps
            return (z - shift.index_select(0, b)) * scale.index_select(0, b) + target.index_select(0, b)
        shift, target, mats = self.maps
        out = z.clone()
        order = torch.argsort(b, stable=True)
        present, cnt = torch.unique(b, return_counts=True)
        for bin_, rows in zip(present.tolist(), torch.split(order, cnt.tolist())):
            a_t = mats[bin_]
            if a_t is None:
                continue
            out[rows] = torch.addmm(target[bin_], z[rows] - shift[bin_], a_t)
        return out


def full_transform(torch, cov, s_cov):
    def shrink(m):
        return (1 - SHRINKAGE) * m + SHRINKAGE * torch.diag(torch.diagonal(m))

    def sym_power(m, f):
        lam, v = torch.linalg.eigh(m)
        mean = lam.mean()
        if not mean > 0:
            return None
        return (v * f(lam.clamp(min=EIG_FLOOR * mean))) @ v.T

    inv_sqrt = sym_power(shrink(cov), lambda l: 1.0 / l.sqrt())
    sq = sym_power(shrink(s_cov), torch.sqrt)
    if inv_sqrt is None or sq is None:
        return None
    a = sq @ inv_sqrt
    u, s, vh = torch.linalg.svd(a)
    return (u * s.clamp(CLIP[0] ** 0.5, CLIP[1] ** 0.5)) @ vh


def timed(fn, setup, repeats):
    """Median wall time (ms) of fn(setup()) over `repeats` runs after one warm-up."""
    times = []
    for i in range(repeats + 1):
        arg = setup()
        t0 = time.perf_counter()
        fn(arg)
        dt = (time.perf_counter() - t0) * 1e3
        if i > 0:
            times.append(dt)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-full", type=int, default=3, help="for the D = 2048 full accumulate")
    ap.add_argument("--skip-full-accumulate", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")

    ages, feats = dataset(DIM)
    y_all = torch.from_numpy(ages)
    z_all = torch.from_numpy(feats)
    counts = np.bincount(bins_of(torch, y_all).numpy(), minlength=N_BINS)
    checksum = int(sum((i + 1) * int(c) for i, c in enumerate(counts)))
    bits = int(feats.view(np.uint32).astype(np.uint64).sum())
    print(
        f"data: {N_ROWS} x {DIM}, {int((counts > 0).sum())} non-empty bins of {N_BINS}, "
        f"counts min {counts.min()} max {counts.max()}, checksum {checksum}, "
        f"feature bit sum {bits}"
    )
    batches = [
        (z_all[i : i + BATCH], y_all[i : i + BATCH]) for i in range(0, N_ROWS, BATCH)
    ]
    zc, yc = batches[0]

    def run_epoch(fds):
        for z, y in batches:
            fds.accumulate(z, y)
        return fds

    results = {}
    # Diagonal, D = 2048.
    med, _ = timed(run_epoch, lambda: Fds(torch, DIM, False), args.repeats)
    results["accumulate_diag_12000x2048"] = med
    med, _ = timed(lambda f: f.end_epoch(), lambda: run_epoch(Fds(torch, DIM, False)), args.repeats)
    results["end_epoch_diag_2048"] = med
    diag = run_epoch(Fds(torch, DIM, False))
    e = diag.epoch
    print(
        f"check: sum of bin means {float(e.mean.sum()):.9e}, "
        f"sum of M2 {float(e.m2.sum()):.9e}"
    )
    diag.end_epoch()
    med, _ = timed(lambda _: diag.calibrate(zc, yc), lambda: None, 20 * args.repeats)
    results["calibrate_diag_256x2048"] = med

    # Full, end_epoch at D = 256.
    z256 = torch.from_numpy(dataset(DIM_FULL_END_EPOCH)[1])
    b256 = [(z256[i : i + BATCH], y_all[i : i + BATCH]) for i in range(0, N_ROWS, BATCH)]

    def run_epoch_256(fds):
        for z, y in b256:
            fds.accumulate(z, y)
        return fds

    per_batch, buffered = Stats(torch, DIM_FULL_END_EPOCH, True), BufferedStats(torch, DIM_FULL_END_EPOCH)
    for st in (per_batch, buffered):
        for z, y in b256:
            st.add_batch(torch, z, y)
    buffered.finish(torch)
    print(
        f"check (D = {DIM_FULL_END_EPOCH}): sum of co-moments {float(per_batch.com.sum()):.9e} per batch, "
        f"{float(buffered.com.sum()):.9e} buffered"
    )
    med, _ = timed(
        lambda f: f.end_epoch(), lambda: run_epoch_256(Fds(torch, DIM_FULL_END_EPOCH, True)), args.repeats
    )
    results["end_epoch_full_256"] = med
    del z256, b256

    # Full, D = 2048. The statistics (3.1 GiB) are allocated once and zeroed between runs
    # outside the timing, as the Rust side reuses them across epochs.
    if not args.skip_full_accumulate:
        for name, make in (
            ("accumulate_full_12000x2048", lambda: Stats(torch, DIM, True)),
            ("accumulate_full_buffered_12000x2048", lambda: BufferedStats(torch, DIM)),
        ):
            st = make()

            def reset(st=st):
                for t in (st.count, st.mean, st.m2, st.com):
                    t.zero_()
                return st

            def epoch(st):
                for z, y in batches:
                    st.add_batch(torch, z, y)
                if isinstance(st, BufferedStats):
                    st.finish(torch)

            med, times = timed(epoch, reset, args.repeats_full)
            results[name] = med
            print(f"  {name} runs (ms): {[round(t) for t in times]}", file=sys.stderr)
            del st, reset
    # Full calibration maps at D = 2048 from each bin's first statistics (no decompositions).
    full = Fds(torch, DIM, False)  # means only: the maps' values do not change the cost
    full.full = True
    run_epoch(full)
    st = full.epoch
    gen = torch.Generator().manual_seed(SEED)
    mats = [
        (torch.eye(DIM) + 0.01 * torch.randn(DIM, DIM, generator=gen)) if st.count[b] > 1 else None
        for b in range(N_BINS)
    ]
    full.maps = (st.mean.float(), st.mean.float(), mats)
    med, _ = timed(lambda _: full.calibrate(zc, yc), lambda: None, 10 * args.repeats)
    results["calibrate_full_256x2048"] = med

    for k, v in results.items():
        print(f"{k:32s} {v:10.3f} ms  (torch, {args.threads} threads)")


if __name__ == "__main__":
    main()
