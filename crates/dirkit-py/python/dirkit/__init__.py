"""dirkit: deep imbalanced regression numbers for Python, computed by dirkit's Rust core.

Label distribution smoothing (LDS) weights and the per-bin effective density (Yang et al.,
"Delving into Deep Imbalanced Regression", ICML 2021), DenseWeight (Steininger et al., Machine
Learning 2021), the relevance function phi and SERA of utility-based regression (Ribeiro 2011;
Ribeiro & Moniz 2020), the DIR report by shot, and the relevance-based resamplers RO, RU,
Gaussian noise, SMOTER, SMOGN and WERCS (Torgo et al. 2013; Branco et al. 2016, 2017, 2019) with
scikit-learn / imbalanced-learn style ``fit_resample``.

Arrays go in as anything numpy reads (lists, numpy arrays, pandas Series) and are used without a
copy when they are already contiguous float64; the computations release the GIL. Every refusal
is a ``ValueError`` with the message the ``dirkit`` command line prints.
"""

from __future__ import annotations

import inspect
import json
import operator
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native

__all__ = [
    "lds_weights",
    "effective_density",
    "denseweight",
    "relevance",
    "sera",
    "shot_report",
    "RandomOver",
    "RandomUnder",
    "GaussianNoise",
    "SMOTER",
    "SMOGN",
    "WERCS",
    "RelevanceStratifiedKFold",
    "select",
    "SelectResult",
    "DIRRegressor",
]

__version__ = "0.1.0"

ArrayLike = Any
ControlPoints = Optional[Sequence[Sequence[float]]]


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    """A contiguous float64 1-D view of ``values`` (no copy when it already is one)."""
    try:
        a = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected numbers ({e})") from None
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    return a


def _points(control: ControlPoints) -> Optional[list]:
    """Control points as (value, relevance, slope) triples; the slope defaults to 0."""
    if control is None:
        return None
    out = []
    for p in control:
        p = tuple(float(v) for v in p)
        if len(p) == 2:
            p = (p[0], p[1], 0.0)
        if len(p) != 3:
            raise ValueError(f"control point {p}: expected (value, relevance[, slope])")
        out.append(p)
    return out


def _lds(labels, bin_width, range, reweight, kernel, ks, sigma, compat, out_of_range, beta,
         inverse_clip, alpha=0.5):
    y = _vector(labels, "labels")
    return _native.lds(
        y, float(bin_width), None if range is None else (float(range[0]), float(range[1])),
        reweight, kernel, int(ks), float(sigma), compat, out_of_range, float(beta),
        (float(inverse_clip[0]), float(inverse_clip[1])), float(alpha),
    )


def lds_weights(
    labels: ArrayLike,
    *,
    bin_width: float = 1.0,
    range: Optional[Tuple[float, float]] = None,
    reweight: str = "sqrt_inv",
    kernel: Optional[str] = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
    compat: Optional[str] = None,
    out_of_range: str = "clip",
    beta: float = 0.9999,
    inverse_clip: Tuple[float, float] = (5.0, 1000.0),
    alpha: float = 0.5,
) -> np.ndarray:
    """Per-sample LDS weights of ``labels`` (Yang et al. 2021), mean 1 over the samples.

    Multiply a per-sample loss by them. The labels are binned with width ``bin_width`` (label
    units; default 1) over ``range`` = (start, end), end exclusive (default: smallest to largest
    label). The counts go through ``reweight`` ("sqrt_inv", the paper's default; "inverse" with
    ``inverse_clip``; "power", counts to the power ``alpha`` in (0, 4], a continuous strength that
    equals "sqrt_inv" at 0.5; "effective_number" with ``beta``; "none") and are smoothed by ``kernel``
    ("gaussian" with the official code's folded window, "gaussian_exact", "triangular",
    "laplace", "epanechnikov", or None) of ``ks`` bins (odd, default 5) and ``sigma`` bins
    (default 2). ``compat="reference"`` reproduces the official code's arithmetic (integer-
    truncated density, float32 weights). Labels outside ``range`` are clipped to the edge bins,
    or with ``out_of_range="drop"`` get weight 0, or with "error" raise.
    """
    return _lds(labels, bin_width, range, reweight, kernel, ks, sigma, compat, out_of_range,
                beta, inverse_clip, alpha)[0]


def effective_density(
    labels: ArrayLike,
    *,
    bin_width: float = 1.0,
    range: Optional[Tuple[float, float]] = None,
    reweight: str = "sqrt_inv",
    kernel: Optional[str] = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
    compat: Optional[str] = None,
    out_of_range: str = "clip",
    beta: float = 0.9999,
    inverse_clip: Tuple[float, float] = (5.0, 1000.0),
    as_frame: Optional[bool] = None,
):
    """The per-bin LDS table of ``labels``: bin_start, bin_end, count, transformed (the count
    after ``reweight``), effective_density (after smoothing) and weight (NaN for empty bins).

    Same parameters as :func:`lds_weights`. Returns a pandas DataFrame when pandas is installed
    (``as_frame=None``) or asked for (``as_frame=True``), else a dict of numpy arrays.
    """
    _, start, width, counts, transformed, density, weight, _ = _lds(
        labels, bin_width, range, reweight, kernel, ks, sigma, compat, out_of_range, beta,
        inverse_clip)
    edges = start + width * np.arange(len(counts) + 1, dtype=np.float64)
    table = {
        "bin_start": edges[:-1],
        "bin_end": edges[1:],
        "count": counts,
        "transformed": transformed,
        "effective_density": density,
        "weight": weight,
    }
    return _maybe_frame(table, as_frame)


def _maybe_frame(table: Dict[str, np.ndarray], as_frame: Optional[bool]):
    if as_frame is False:
        return table
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise
        return table
    return pd.DataFrame(table)


def denseweight(
    labels: ArrayLike,
    alpha: float = 1.0,
    *,
    eps: float = 1e-6,
    bandwidth: Optional[float] = None,
) -> np.ndarray:
    """DenseWeight per-sample weights (Steininger et al. 2021), mean 1.

    ``alpha`` >= 0 (default 1; 0 gives uniform weights) sets how hard dense regions are pushed
    down; ``eps`` (default 1e-6) floors each weight before normalising. The density is the
    Gaussian KDE at the labels with Silverman's bandwidth (or ``bandwidth`` in label units),
    summed term by term up to 2,048 distinct labels and by Hermite expansions above (1e-16
    relative; a million continuous labels take about 0.6 s). The ``denseweight`` package evaluates
    an FFT grid instead, so its weights differ slightly (see the README).
    """
    return _native.denseweight(_vector(labels, "labels"), float(alpha), float(eps),
                               None if bandwidth is None else float(bandwidth))


def _phi_args(extremes, coef, box_plot, control):
    return extremes, float(coef), box_plot, _points(control)


def relevance(
    y: ArrayLike,
    values: Optional[ArrayLike] = None,
    *,
    extremes: str = "both",
    coef: float = 1.5,
    box_plot: str = "ubl",
    control: ControlPoints = None,
    return_control_points: bool = False,
):
    """The relevance phi of utility-based regression (Ribeiro 2011) at ``values`` (default:
    ``y`` itself), in [0, 1].

    phi is a monotone cubic (Fritsch-Carlson) through control points taken from the box plot
    of ``y``: the median at 0 and the adjacent values at 1 on the ``extremes`` sides ("both",
    "high", "low"), fences at ``coef`` (default 1.5) inter-quartile ranges, quartiles as R's
    boxplot.stats ("ubl", the methods' reference), numpy midpoint ("smogn", as the smogn package)
    or the medcouple-adjusted box plot ("adjusted"). ``control`` gives the points instead, as
    (value, relevance[, slope]) triples. With ``return_control_points`` the points used come back
    too.
    """
    yy = _vector(y, "y")
    vv = yy if values is None else _vector(values, "values")
    phi, points = _native.relevance(yy, vv, *_phi_args(extremes, coef, box_plot, control))
    return (phi, points) if return_control_points else phi


def sera(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_train: ArrayLike,
    *,
    step: float = 0.001,
    extremes: str = "both",
    coef: float = 1.5,
    box_plot: str = "ubl",
    control: ControlPoints = None,
) -> float:
    """SERA, the squared error-relevance area (Ribeiro & Moniz 2020), of ``y_pred``: the
    squared errors of the samples with phi(y_true) >= t, integrated over t in [0, 1] with the
    trapezoid rule at ``step`` (default 0.001). phi comes from ``y_train`` as in
    :func:`relevance`.
    """
    return _native.sera(_vector(y_true, "y_true"), _vector(y_pred, "y_pred"),
                        _vector(y_train, "y_train"), float(step),
                        *_phi_args(extremes, coef, box_plot, control))


def shot_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_train: ArrayLike,
    *,
    bin_width: float = 1.0,
    range: Optional[Tuple[float, float]] = None,
    many: int = 100,
    few: int = 20,
    sera_step: Optional[float] = 0.001,
    extremes: str = "both",
    coef: float = 1.5,
    box_plot: str = "ubl",
    control: ControlPoints = None,
) -> Dict[str, Any]:
    """The DIR evaluation by shot: for "all", "many", "medium" and "few" a dict of n, MAE, MSE,
    RMSE, G-mean and SERA (None for an empty group), plus balanced_mae, balanced_mse and
    pearson_r.

    A bin is many-shot with more than ``many`` (default 100) training samples and few-shot with
    fewer than ``few`` (default 20), bins of ``bin_width`` over ``range`` (default: the span of
    the training and test targets), as the DIR benchmarks. SERA (phi from ``y_train``, see
    :func:`relevance`) is left out with ``sera_step=None``.
    """
    text = _native.shot_report(
        _vector(y_true, "y_true"), _vector(y_pred, "y_pred"), _vector(y_train, "y_train"),
        float(bin_width), None if range is None else (float(range[0]), float(range[1])),
        int(many), int(few), None if sera_step is None else float(sera_step),
        *_phi_args(extremes, coef, box_plot, control))
    report = json.loads(text)
    report.pop("utility", None)
    report.pop("thresholds", None)
    for group in ("all", "many", "medium", "few"):
        for key in ("n", "n_test_bins", "mae", "mse", "rmse", "gmean", "sera"):
            report[group].setdefault(key, None)
    return report


def _is_nominal(dtype) -> bool:
    """Whether a column of ``dtype`` holds categories: anything but (non-bool) numbers, pandas'
    nullable numbers included."""
    dtype = getattr(dtype, "numpy_dtype", dtype)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return True  # category, string and other pandas extension types
    return not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)


def _same(a: Any, b: Any) -> bool:
    """``a == b`` for settings, False where the comparison is not a plain truth value."""
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):
        return False


def _numbers_in_objects(col, dtype) -> bool:
    """Whether an object column holds only real numbers (not bools), as a numpy object array
    mixing numeric and text columns does: such a column is numeric, not a category."""
    if str(dtype) != "object":
        return False
    values = np.asarray(col, dtype=object)
    return len(values) > 0 and all(
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, (bool, np.bool_)) for v in values)


class _Resampler:
    """Shared ``fit_resample`` of the relevance-based resamplers.

    Parameters every resampler takes: ``threshold`` (default 0.5): rows with φ(y) >= threshold
    are rare; ``seed`` (default 0): every random draw; ``extremes`` ("both", "high", "low"),
    ``coef`` (default 1.5) and ``box_plot`` ("ubl", "smogn", "adjusted"): φ from the box plot of
    y, or ``control`` points (value, relevance[, slope]) instead; ``nominal``: column names or
    positions to treat as categories besides the detected ones."""

    _method = ""

    # Settings a method does not take keep these values (each subclass names its own).
    k = 5
    pert = None
    distance = None
    over = 0.5
    under = 0.5
    strategy: Union[str, Sequence[float]] = "balance"

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's settings, by name (scikit-learn's estimator protocol, so that
        ``sklearn.base.clone`` and imbalanced-learn pipelines and searches can copy it)."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def set_params(self, **params: Any) -> "_Resampler":
        """Changes settings by name; an unknown name raises ValueError."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no setting {name!r}: expected one "
                                 f"of {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _common(self, threshold, seed, extremes, coef, box_plot, control, nominal):
        self.threshold = threshold
        self.seed = seed
        self.extremes = extremes
        self.coef = coef
        self.box_plot = box_plot
        self.control = control
        self.nominal = nominal

    def _strategy(self) -> list:
        s = self.strategy
        if isinstance(s, str):
            if s == "balance":
                return []
            if s == "extreme":
                return [float("nan")]
            raise ValueError(f"strategy={s!r}: expected 'balance', 'extreme' or factors")
        factors = [float(v) for v in s]
        if not factors or any(not np.isfinite(v) for v in factors):
            raise ValueError(f"strategy={s!r}: expected finite factors")
        return factors

    def fit_resample(self, X, y):
        """Resamples ``(X, y)`` by the relevance of ``y``; returns ``(X_res, y_res)`` of the
        same kinds (numpy arrays, or a pandas DataFrame and Series), dtypes and column order.
        Original rows that are kept come first in input order, then new rows; a DataFrame's
        index is not kept (the result has a fresh RangeIndex). Nominal columns
        (category, string and bool columns, object columns that hold anything but numbers, and
        those named in ``nominal``) are drawn, never interpolated; integer columns are rounded
        back. An object column of numbers, as in a numpy object array mixing numbers and text,
        is numeric."""
        try:
            import pandas as pd
        except ImportError:
            pd = None
        frame_in = pd is not None and isinstance(X, pd.DataFrame)
        series_in = pd is not None and isinstance(y, pd.Series)
        if frame_in:
            names = [str(c) for c in X.columns]
            cols = [X[c] for c in X.columns]
            dtypes = [X[c].dtype for c in X.columns]
        else:
            Xa = np.asarray(X)
            if Xa.ndim != 2:
                raise ValueError(f"X: expected a 2-D array, got shape {Xa.shape}")
            names = [f"x{i}" for i in range(Xa.shape[1])]
            cols = [Xa[:, i] for i in range(Xa.shape[1])]
            dtypes = [Xa.dtype] * Xa.shape[1]
        yv = np.asarray(y)
        if yv.ndim != 1:
            raise ValueError(f"y: expected a 1-D array, got shape {yv.shape}")
        if len(yv) != len(cols[0] if cols else yv):
            raise ValueError(f"X has {len(cols[0])} rows but y has {len(yv)}: expected the same")
        nominal = set()
        for spec in self.nominal or []:
            idx = spec if isinstance(spec, int) else (names.index(str(spec))
                                                     if str(spec) in names else None)
            if idx is None or not 0 <= idx < len(names):
                raise ValueError(f"nominal column {spec!r}: no such column")
            nominal.add(idx)
        columns_in = []
        decoders = []
        for i, (col, dt) in enumerate(zip(cols, dtypes)):
            if i not in nominal and getattr(dt, "kind", "") in ("M", "m"):
                raise ValueError(f"column '{names[i]}' has dtype {dt}: the resamplers take numbers "
                                 "and categories; convert it to numbers (e.g. days since a date) "
                                 "or name it in nominal=[...] to draw it as a category")
            if i in nominal or (_is_nominal(dt) and not _numbers_in_objects(col, dt)):
                if pd is not None:
                    codes, uniques = pd.factorize(pd.Series(col), use_na_sentinel=True)
                    if (codes < 0).any():
                        row = int(np.argmax(codes < 0))
                        raise ValueError(f"column '{names[i]}' row {row}: missing value: the "
                                         "resamplers need complete rows (drop or impute it first)")
                    levels = list(uniques)
                else:
                    levels, codes = np.unique(np.asarray(col, dtype=object), return_inverse=True)
                    levels = list(levels)
                columns_in.append((np.ascontiguousarray(codes, dtype=np.float64),
                                   [str(v) for v in levels]))
                decoders.append(("nominal", levels))
            else:
                columns_in.append((_vector(col, names[i]), None))
                decoders.append(("numeric", None))
        target_name = str(y.name) if series_in and y.name is not None else "target"
        while target_name in names:
            target_name += "_"
        columns_in.append((_vector(yv, "y"), None))
        all_names = names + [target_name]
        out, notes = _native.resample(
            columns_in, all_names, len(names), self._method, float(self.threshold),
            self._strategy(), _count("k", self.k, 1 << 32),
            None if self.pert is None else float(self.pert),
            self.distance, _count("seed", self.seed, 1 << 64), float(self.over), float(self.under),
            *_phi_args(self.extremes, self.coef, self.box_plot, self.control))
        self.notes_ = list(notes)
        y_out = _restore(out[-1], np.asarray(y).dtype)
        restored = []
        for values, (kind, levels), dt in zip(out[:-1], decoders, dtypes):
            if kind == "nominal":
                lv = np.empty(len(levels), dtype=object)
                lv[:] = levels
                restored.append(lv[values.astype(np.int64)])
            else:
                restored.append(_restore(values, dt))
        if frame_in:
            data = {}
            for c, values, dt in zip(X.columns, restored, dtypes):
                data[c] = (pd.Series(values).astype(dt) if str(dt) != "object"
                           else pd.Series(np.asarray(values, dtype=object), dtype=object))
            X_res = pd.DataFrame(data, columns=X.columns)
        else:
            X_res = (np.column_stack(restored).astype(dtypes[0]) if restored
                     else np.empty((len(y_out), 0)))
        if series_in:
            y_res = pd.Series(y_out, name=y.name).astype(y.dtype)
        else:
            y_res = y_out
        return X_res, y_res


def _count(name: str, value: Any, limit: int) -> int:
    """``value`` as an int in [0, limit), or a ValueError naming the parameter."""
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}={value!r}: expected an integer") from None
    if not 0 <= v < limit:
        raise ValueError(f"{name}={v}: expected an integer in [0, {limit})")
    return v


def _restore(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` back in ``dtype``: integers rounded, floats as they are."""
    dtype = np.dtype(dtype) if not hasattr(dtype, "numpy_dtype") else dtype.numpy_dtype
    if np.issubdtype(dtype, np.integer):
        return np.rint(values).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    return values


class RandomOver(_Resampler):
    """Random over-sampling (RO; Branco et al. 2019): copies of rare rows added, drawn with
    replacement; every original row kept. ``strategy``: "balance" (default), "extreme" or one
    factor per rare bump (copies added = factor x bump size)."""

    _method = "ro"

    def __init__(self, *, strategy: Union[str, Sequence[float]] = "balance",
                 threshold: float = 0.5, seed: int = 0, extremes: str = "both", coef: float = 1.5,
                 box_plot: str = "ubl", control: ControlPoints = None,
                 nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.strategy = strategy


class RandomUnder(_Resampler):
    """Random under-sampling (RU; Torgo et al. 2013): every rare row kept, normal rows drawn
    without replacement. ``strategy``: "balance", "extreme" or one factor <= 1 per normal bump."""

    _method = "ru"

    def __init__(self, *, strategy: Union[str, Sequence[float]] = "balance",
                 threshold: float = 0.5, seed: int = 0, extremes: str = "both", coef: float = 1.5,
                 box_plot: str = "ubl", control: ControlPoints = None,
                 nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.strategy = strategy


class GaussianNoise(_Resampler):
    """Gaussian noise (GN; Branco et al. 2016): new rare rows are copies plus N(0, (pert x sd)^2)
    noise on every numeric column, target included (``pert`` default 0.1); normal bumps
    under-sampled."""

    _method = "gn"

    def __init__(self, *, strategy: Union[str, Sequence[float]] = "balance",
                 pert: Optional[float] = None, threshold: float = 0.5, seed: int = 0,
                 extremes: str = "both", coef: float = 1.5, box_plot: str = "ubl",
                 control: ControlPoints = None, nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.strategy = strategy
        self.pert = pert


class SMOTER(_Resampler):
    """SMOTER (Torgo et al. 2013): new rows on the segment between a rare row and one of its
    ``k`` (default 5) nearest neighbours in its bump, the target a distance-weighted mix;
    normal bumps under-sampled. ``distance``: "euclidean" (numeric tables) or "heom"."""

    _method = "smoter"

    def __init__(self, *, strategy: Union[str, Sequence[float]] = "balance", k: int = 5,
                 distance: Optional[str] = None, threshold: float = 0.5, seed: int = 0,
                 extremes: str = "both", coef: float = 1.5, box_plot: str = "ubl",
                 control: ControlPoints = None, nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.strategy = strategy
        self.k = k
        self.distance = distance


class SMOGN(_Resampler):
    """SMOGN (Branco et al. 2017): SMOTER towards neighbours closer than half the median
    distance, Gaussian noise (``pert`` default 0.01) otherwise; normal bumps under-sampled."""

    _method = "smogn"

    def __init__(self, *, strategy: Union[str, Sequence[float]] = "balance", k: int = 5,
                 pert: Optional[float] = None, distance: Optional[str] = None,
                 threshold: float = 0.5, seed: int = 0, extremes: str = "both", coef: float = 1.5,
                 box_plot: str = "ubl", control: ControlPoints = None,
                 nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.strategy = strategy
        self.k = k
        self.pert = pert
        self.distance = distance


class WERCS(_Resampler):
    """WERCS (Branco et al. 2019): ``over`` x n copies drawn with probability phi added and
    ``under`` x n rows drawn with probability 1 - phi removed (defaults 0.5 and 0.5)."""

    _method = "wercs"

    def __init__(self, *, over: float = 0.5, under: float = 0.5, threshold: float = 0.5,
                 seed: int = 0, extremes: str = "both", coef: float = 1.5, box_plot: str = "ubl",
                 control: ControlPoints = None, nominal: Optional[Sequence[Any]] = None):
        self._common(threshold, seed, extremes, coef, box_plot, control, nominal)
        self.over = over
        self.under = under


from ._select import DIRRegressor, RelevanceStratifiedKFold, SelectResult, select  # noqa: E402
