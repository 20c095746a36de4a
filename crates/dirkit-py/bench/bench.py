"""Speed of the `dirkit` Python package against what people use today, on one machine.

- LDS weights of 10 million labels: the official LDS code's `_prepare_weights` (per-label Python
  loops, as published with Yang et al. 2021), the same arithmetic vectorised with numpy/scipy,
  and `dirkit.lds_weights`; the three agree to float32 precision.
- φ and SMOGN against the `smogn` package (0.1.2), DenseWeight against the `denseweight`
  package (0.1.2), on the same data.

Run with a release wheel installed next to numpy 2.3, pandas 2.2, scipy, smogn 0.1.2 and
denseweight 0.1.2 (see BENCHMARKS.md for the exact commands):
    python crates/dirkit-py/bench/bench.py
"""

import os
import time
import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd
from scipy.ndimage import convolve1d, gaussian_filter1d

import dirkit

warnings.filterwarnings("ignore")
os.environ.setdefault("TQDM_DISABLE", "1")  # smogn's progress bars


def best_of(f, repeat=3):
    """Best wall time of `repeat` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def lds_window(ks=5, sigma=2.0):
    """The official code's gaussian window: a filtered impulse, peak-normalised."""
    half = (ks - 1) // 2
    base = [0.0] * half + [1.0] + [0.0] * half
    w = gaussian_filter1d(base, sigma=sigma)
    return w / max(w)


def official_lds(labels, max_target=121):
    """`_prepare_weights(reweight='sqrt_inv', lds=True)` of the official LDS code: dict counts
    and per-label list comprehensions."""
    value_dict = {x: 0 for x in range(max_target)}
    for label in labels:
        value_dict[min(max_target - 1, int(label))] += 1
    value_dict = {k: np.sqrt(v) for k, v in value_dict.items()}
    smoothed = convolve1d(np.asarray([v for _, v in value_dict.items()]),
                          weights=lds_window(), mode="constant")
    num_per_label = [smoothed[min(max_target - 1, int(label))] for label in labels]
    weights = [np.float32(1 / x) for x in num_per_label]
    scaling = len(weights) / np.sum(weights)
    return [scaling * x for x in weights]


def numpy_lds(labels, max_target=121):
    """The same arithmetic, vectorised."""
    bins = np.minimum(labels.astype(np.int64), max_target - 1)
    counts = np.bincount(bins, minlength=max_target)
    smoothed = convolve1d(np.sqrt(counts), weights=lds_window(), mode="constant")
    w = 1.0 / smoothed[bins]
    return w * (len(w) / w.sum())


def main():
    print(f"numpy {np.__version__}, pandas {pd.__version__}, smogn {version('smogn')}, "
          f"denseweight {version('denseweight')}, dirkit {dirkit.__version__}")
    rng = np.random.default_rng(0)
    rows = []

    # LDS on 10M ages with the AgeDB-DIR shape (0..120, long right tail).
    n = 10_000_000
    ages = np.minimum(rng.gamma(4.0, 9.0, n), 120.0).round()
    t_dirkit, w = best_of(lambda: dirkit.lds_weights(ages, range=(0, 121)))
    t_numpy, w_np = best_of(lambda: numpy_lds(ages))
    t_official, w_off = best_of(lambda: official_lds(ages), repeat=1)
    assert np.allclose(w, w_np, rtol=1e-12)
    assert np.allclose(w, np.asarray(w_off, dtype=np.float64), rtol=1e-6)
    rows.append(("LDS weights, 10M labels", "official code (Python loops)", t_official, t_dirkit))
    rows.append(("LDS weights, 10M labels", "numpy/scipy vectorised", t_numpy, t_dirkit))

    # φ and SMOGN against smogn on a 2,000-row table with a long-tailed target.
    import smogn
    m = 2000
    X = pd.DataFrame({f"x{j}": rng.normal(size=m) for j in range(6)})
    X["y"] = rng.gamma(2.0, 10.0, m)
    y = X["y"].to_numpy()
    t_dk, phi_dk = best_of(lambda: dirkit.relevance(y, box_plot="smogn"))

    def smogn_phi():
        pts = smogn.phi_ctrl_pts(y=X["y"], method="auto", xtrm_type="both", coef=1.5)
        return np.asarray(smogn.phi(y=X["y"], ctrl_pts=pts))
    t_sm, phi_sm = best_of(smogn_phi)
    assert np.allclose(phi_dk, phi_sm, atol=1e-9)
    rows.append(("φ, 2,000 targets", "smogn.phi", t_sm, t_dk))

    t_dk, (_, y_dk) = best_of(
        lambda: dirkit.SMOGN(seed=0).fit_resample(X.drop(columns="y"), X["y"]))
    t_sm, out_sm = best_of(lambda: smogn.smoter(data=X.copy(), y="y", samp_method="balance"),
                           repeat=1)
    rows.append((f"SMOGN, 2,000 rows × 6 features (out: {len(out_sm):,} rows smogn, "
                 f"{len(y_dk):,} dirkit)", "smogn.smoter", t_sm, t_dk))

    # DenseWeight against the denseweight package.
    from denseweight import DenseWeight
    for size in (10_000, 1_000_000):
        labels = rng.gamma(2.0, 10.0, size)
        t_dk, _ = best_of(lambda: dirkit.denseweight(labels, 1.0))

        def package():
            return DenseWeight(alpha=1.0).fit(labels)
        t_pk, _ = best_of(package)
        rows.append((f"DenseWeight, {size:,} labels", "denseweight.DenseWeight.fit", t_pk, t_dk))

    print()
    print("| task | against | their time | dirkit | ratio |")
    print("|---|---|---:|---:|---:|")
    for task, other, t_other, t_dk in rows:
        ratio = t_other / t_dk
        ratio = f"{ratio:,.1f}×" if ratio < 10 else f"{ratio:,.0f}×"
        print(f"| {task} | {other} | {t_other:.3f} s | {t_dk:.4f} s | {ratio} |")


if __name__ == "__main__":
    main()
