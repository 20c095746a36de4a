"""Method selection for any scikit-learn regressor: a relevance-stratified K-fold splitter and
``select``, which cross-validates plain, LDS and DenseWeight weights at several strengths, the
resamplers and blends, and chooses by an objective under a constraint on overall MAE.

The figures (``dirkit_core::selection::Scores``), the folds and the choice rule are dirkit's
Rust core, the same as ``dirkit select``; this module only fits the user's estimator.
"""

from __future__ import annotations

import inspect
import json
import numbers
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _native

_OBJECTIVES = ("few-mae", "sera", "f1", "balanced-mae")
_FAMILIES = ("plain", "lds", "denseweight", "ro", "ru", "gn", "smoter", "smogn", "wercs", "blend")
_SCORES = ("mae_all", "mae_many", "mae_medium", "mae_few", "rmse_all", "rmse_many",
           "rmse_medium", "rmse_few", "balanced_mae", "sera", "f1")


def _seed(random_state: Any) -> int:
    """An integer seed from scikit-learn's ``random_state`` conventions: None (a fresh draw from
    numpy's global generator), an int, a ``RandomState`` or a ``Generator``."""
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, (bool, np.bool_)):
        raise ValueError(f"random_state={random_state!r}: expected None, an int, a RandomState "
                         "or a Generator")
    if isinstance(random_state, numbers.Integral):
        if random_state < 0:
            raise ValueError(f"random_state={random_state}: expected an int >= 0")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(f"random_state={random_state!r}: expected None, an int, a RandomState or a "
                     "Generator")


def _target(y: Any, name: str = "y") -> np.ndarray:
    if hasattr(y, "to_numpy"):
        if getattr(y, "ndim", 1) == 2:
            if y.shape[1] != 1:
                raise ValueError(f"{name} has {y.shape[1]} columns: expected one target")
            y = y.iloc[:, 0]
        y = y.to_numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}: expected one target per row")
    try:
        out = np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected numbers ({e})") from None
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] is {out[bad[0]]}: expected finite numbers")
    return out


class RelevanceStratifiedKFold:
    """K-fold cross-validation stratified on a continuous target and on the rare bumps of its
    relevance phi (scikit-learn's splitter protocol: ``split(X, y, groups=None)``,
    ``get_n_splits``), so that every fold holds its share of every rare region of ``y`` within
    one row.

    Rows are sorted by ``y`` (ties in a seeded random order) and cut into bumps on either side of
    ``threshold`` (default 0.8) of phi, built from ``y``'s box plot (``extremes``, ``coef``,
    ``box_plot``) or from ``control`` points; in each bump every group of ``n_splits``
    consecutive rows sends one row to each fold. ``n_repeats`` (default 1) repeats the
    partition with fresh shuffles. ``random_state``: None, an int, a ``RandomState`` or a
    ``Generator``; with None the folds differ between calls, as scikit-learn's.
    """

    def __init__(self, n_splits: int = 5, n_repeats: int = 1, threshold: float = 0.8,
                 random_state: Any = None, *, extremes: str = "both", coef: float = 1.5,
                 box_plot: str = "ubl", control: Optional[Sequence[Sequence[float]]] = None):
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.threshold = threshold
        self.random_state = random_state
        self.extremes = extremes
        self.coef = coef
        self.box_plot = box_plot
        self.control = control

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Folds per ``split``: ``n_splits * n_repeats``."""
        return int(self.n_splits) * int(self.n_repeats)

    def __repr__(self) -> str:
        return (f"RelevanceStratifiedKFold(n_splits={self.n_splits}, n_repeats={self.n_repeats}, "
                f"threshold={self.threshold}, random_state={self.random_state!r})")

    def _check(self) -> None:
        for name, value, least in (("n_splits", self.n_splits, 2), ("n_repeats", self.n_repeats, 1)):
            if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                    or value < least):
                raise ValueError(f"{name}={value!r}: expected an int >= {least}")
        if not (0.0 < float(self.threshold) <= 1.0):
            raise ValueError(f"threshold={self.threshold!r}: expected a relevance in (0, 1]")

    def split(self, X: Any, y: Any = None, groups: Any = None
              ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yields ``(train, test)`` row positions for each fold, repeat by repeat."""
        self._check()
        if y is None:
            raise ValueError("y is None: the folds are stratified on the target, pass y")
        yy = _target(y)
        if X is not None and hasattr(X, "__len__") and len(X) != len(yy):
            raise ValueError(f"X has {len(X)} rows and y {len(yy)}: expected the same number")
        if int(self.n_splits) > len(yy):
            raise ValueError(f"n_splits={self.n_splits} is more than the {len(yy)} rows of y")
        points = None if self.control is None else [
            (float(p[0]), float(p[1]), float(p[2]) if len(p) > 2 else 0.0) for p in self.control]
        try:
            ids = _native.relevance_folds(
                yy, int(self.n_splits), int(self.n_repeats), float(self.threshold),
                _seed(self.random_state), self.extremes, float(self.coef), self.box_plot, points)
        except ValueError as e:
            raise ValueError(str(e).replace("invalid n_splits", "n_splits")) from None
        rows = np.arange(len(yy))
        for rep in ids:
            fold = np.asarray(rep, dtype=np.int64)
            for f in range(int(self.n_splits)):
                mask = fold == f
                yield rows[~mask], rows[mask]


def _take(X: Any, idx: np.ndarray) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    return np.asarray(X)[idx]


def _accepts_weights(estimator: Any) -> bool:
    fit = getattr(estimator, "fit", None)
    if fit is None:
        return False
    try:
        return "sample_weight" in inspect.signature(fit).parameters
    except (TypeError, ValueError):
        return False


try:  # scikit-learn's estimator machinery (tags, clone, scoring) where it is installed
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import RegressorMixin as _RegressorMixin

    _BASES: Tuple[type, ...] = (_RegressorMixin, _BaseEstimator)
except ImportError:
    _BASES = (object,)


class DIRRegressor(*_BASES):  # type: ignore[misc]
    """A regressor fitted with one imbalanced-regression treatment of its training set: plain,
    LDS weights of strength ``alpha`` (``method="lds"``), DenseWeight (``"denseweight"``), or a
    resampler (``"ro"``, ``"ru"``, ``"gn"``, ``"smoter"``, ``"smogn"``, ``"wercs"`` at
    relevance ``threshold``). ``blend`` = (lambda, other) predicts
    lambda * this + (1 - lambda) * other, both fitted on the same rows. Everything is fitted on
    the rows given to ``fit`` only, so it is safe inside cross-validation and pipelines.
    ``random_state`` seeds the resampler (None: seed 0, so that refits repeat).
    """

    def __init__(self, estimator: Any, method: str = "plain", *, alpha: Optional[float] = None,
                 threshold: float = 0.8, blend: Optional[Tuple[float, "DIRRegressor"]] = None,
                 random_state: Any = None):
        self.estimator = estimator
        self.method = method
        self.alpha = alpha
        self.threshold = threshold
        self.blend = blend
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("estimator", "method", "alpha", "threshold", "blend", "random_state")}

    def set_params(self, **params: Any) -> "DIRRegressor":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"DIRRegressor has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        extra = "" if self.alpha is None else f", alpha={self.alpha}"
        if self.method in _RESAMPLERS:
            extra += f", threshold={self.threshold}"
        if self.blend is not None:
            extra += f", blend=({self.blend[0]}, {self.blend[1]!r})"
        return f"DIRRegressor({self.estimator!r}, method={self.method!r}{extra})"

    def fit(self, X: Any, y: Any) -> "DIRRegressor":
        from sklearn.base import clone

        yy = _target(y)
        X_fit, y_fit, w = _prepare(self.method, self.alpha, self.threshold, X, yy,
                                   _seed(self.random_state) if self.random_state is not None
                                   else 0)
        self.estimator_ = clone(self.estimator)
        if w is None:
            self.estimator_.fit(X_fit, y_fit)
        else:
            self.estimator_.fit(X_fit, y_fit, sample_weight=w)
        if self.blend is not None:
            self.other_ = clone(self.blend[1]).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        p = np.asarray(self.estimator_.predict(X), dtype=np.float64)
        if self.blend is not None:
            lam = float(self.blend[0])
            p = lam * p + (1.0 - lam) * np.asarray(self.other_.predict(X), dtype=np.float64)
        return p


_RESAMPLERS = ("ro", "ru", "gn", "smoter", "smogn", "wercs")


def _prepare(method: str, alpha: Optional[float], threshold: float, X: Any, y: np.ndarray,
             seed: int):
    """The rows, targets and per-sample weights a fit sees under ``method``."""
    from . import GaussianNoise, RandomOver, RandomUnder, SMOGN, SMOTER, WERCS, denseweight, \
        lds_weights

    if method == "plain":
        return X, y, None
    if method == "lds":
        w = lds_weights(y, bin_width=_native.training_bin_width(y), reweight="power",
                        alpha=0.5 if alpha is None else float(alpha))
        return X, y, w
    if method == "denseweight":
        w = denseweight(y, 1.0 if alpha is None else float(alpha))
        return X, y, w / w.mean()
    classes = {"ro": RandomOver, "ru": RandomUnder, "gn": GaussianNoise, "smoter": SMOTER,
               "smogn": SMOGN, "wercs": WERCS}
    if method not in classes:
        raise ValueError(f"method={method!r}: expected plain, lds, denseweight or one of "
                         f"{', '.join(_RESAMPLERS)}")
    kwargs = {"seed": seed}
    if method != "wercs":
        kwargs["threshold"] = float(threshold)
    X_res, y_res = classes[method](**kwargs).fit_resample(X, y)
    return X_res, _target(y_res), None


class SelectResult:
    """What ``select`` found: ``results`` (a DataFrame, one row per candidate: mean and std of
    every figure, ``feasible``, ``clear_gain`` (ahead of plain by more than one standard
    error of the paired fold differences), ``pareto``, ``chosen``; a dict of columns without pandas),
    ``best_`` (the chosen configuration as an unfitted ``DIRRegressor``), ``chosen_`` (its name),
    ``beats_plain_``, ``verdict_`` and ``folds_`` (per candidate, the per-fold figures)."""

    def __init__(self, results: Any, best: DIRRegressor, chosen: str, beats_plain: bool,
                 verdict: str, folds: Dict[str, List[Dict[str, Optional[float]]]]):
        self.results = results
        self.best_ = best
        self.chosen_ = chosen
        self.beats_plain_ = beats_plain
        self.verdict_ = verdict
        self.folds_ = folds

    def __repr__(self) -> str:
        return f"SelectResult(chosen_={self.chosen_!r}, verdict_={self.verdict_!r})"


def select(estimator: Any, X: Any, y: Any, *, cv: Any = None, objective: str = "few-mae",
           max_all_loss: float = 0.02, methods: Optional[Sequence[str]] = None,
           random_state: Any = None, threshold: float = 0.8,
           lds_alphas: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
           denseweight_alphas: Sequence[float] = (0.5, 1.0, 1.5, 2.0),
           resample_thresholds: Sequence[float] = (0.5, 0.8),
           blend_lambdas: Sequence[float] = (0.25, 0.5, 0.75)) -> SelectResult:
    """Chooses the imbalanced-regression treatment of ``X, y`` for ``estimator`` (any
    scikit-learn regressor) by cross-validation.

    Candidates: plain; LDS weights of strength ``lds_alphas`` and DenseWeight of strength
    ``denseweight_alphas`` when ``estimator.fit`` takes ``sample_weight``; the resamplers RO, RU,
    GN, SMOTER, SMOGN at ``resample_thresholds`` and WERCS; blends of plain with the best
    re-weighted candidate (``blend_lambdas``, plus the largest lambda in steps of 0.05 within the
    constraint). ``methods`` limits the families (names as ``dirkit select --methods``).
    Weights, resampling and phi are fitted on each training part only; rows with phi >=
    ``threshold`` (default 0.8) are rare for the folds and F1. ``cv``: None (a
    ``RelevanceStratifiedKFold(5)``), an int (that many such folds), any splitter with
    ``split(X, y)`` or an iterable of (train, test) row positions. ``objective``: "few-mae",
    "sera", "f1" or "balanced-mae"; the winner is the best on it among candidates whose mean
    overall MAE is at most ``max_all_loss`` (0.02 = 2 %) above plain's and whose gain over plain
    exceeds one standard error of the paired per-fold differences; if none does, plain is chosen
    and ``verdict_`` says so.
    """
    from sklearn.base import clone

    if objective not in _OBJECTIVES:
        raise ValueError(f"objective={objective!r}: expected one of {', '.join(_OBJECTIVES)}")
    if not (np.isfinite(max_all_loss) and max_all_loss >= 0):
        raise ValueError(f"max_all_loss={max_all_loss!r}: expected a fraction >= 0 "
                         "(0.02 = at most 2 % worse overall MAE)")
    families = list(_FAMILIES) if methods is None else [m.lower() for m in methods]
    for m in families:
        if m not in _FAMILIES:
            raise ValueError(f"methods: unknown method {m!r}: expected some of "
                             f"{', '.join(_FAMILIES)}")
    yy = _target(y)
    if len(X) != len(yy):
        raise ValueError(f"X has {len(X)} rows and y {len(yy)}: expected the same number")
    if hasattr(X, "index") and hasattr(y, "index") and not X.index.equals(y.index):
        raise ValueError("X and y have different indexes: align them (y = y.loc[X.index]) "
                         "or pass arrays")
    if np.all(yy == yy[0]):
        raise ValueError(f"y is constant (every value is {yy[0]}): there is nothing to predict")
    seed = _seed(random_state)
    if cv is None or isinstance(cv, numbers.Integral):
        cv = RelevanceStratifiedKFold(5 if cv is None else int(cv), threshold=threshold,
                                      random_state=seed)
    folds = list(cv.split(X, yy) if hasattr(cv, "split") else cv)
    weights = _accepts_weights(estimator)
    cands: List[Tuple[str, str, Optional[float], float]] = [("plain", "plain", None, threshold)]
    if "lds" in families and weights:
        cands += [(f"lds-a{a:g}", "lds", float(a), threshold) for a in lds_alphas]
    if "denseweight" in families and weights:
        cands += [(f"denseweight-a{a:g}", "denseweight", float(a), threshold)
                  for a in denseweight_alphas]
    for r in _RESAMPLERS:
        if r in families:
            ts = resample_thresholds[:1] if r == "wercs" else resample_thresholds
            cands += [(r if r == "wercs" else f"{r}-t{t:g}", r, None, float(t)) for t in ts]

    scores: Dict[str, Optional[List[Dict[str, Optional[float]]]]] = {}
    preds: Dict[str, List[np.ndarray]] = {}
    errors: Dict[str, str] = {}
    for name, method, alpha, t in cands:
        fold_scores, fold_preds = [], []
        try:
            for f, (tr, va) in enumerate(folds):
                X_tr, y_tr = _take(X, tr), yy[tr]
                X_fit, y_fit, w = _prepare(method, alpha, t, X_tr, y_tr, seed + 7919 * f)
                est = clone(estimator)
                if w is None:
                    est.fit(X_fit, y_fit)
                else:
                    est.fit(X_fit, y_fit, sample_weight=w)
                p = np.ascontiguousarray(est.predict(_take(X, va)), dtype=np.float64).ravel()
                fold_preds.append(p)
                fold_scores.append(json.loads(_native.fold_scores(
                    yy[va], p, y_tr, float(threshold), "both", 1.5, "ubl", None)))
        except ValueError as e:
            errors[name] = f"fold {len(fold_scores) + 1}: {e}"
            scores[name] = None
            continue
        scores[name] = fold_scores
        preds[name] = fold_preds

    def summarise(names: List[str]) -> Dict[str, Any]:
        entries = [{"name": n, "plain": n == "plain", "folds": scores[n]} for n in names]
        return json.loads(_native.choose(json.dumps(entries), objective, float(max_all_loss)))

    names = [c[0] for c in cands]
    blend_of: Dict[str, str] = {}
    if "blend" in families and "plain" in preds:
        first = summarise(names)
        loss = (lambda v: -v) if objective == "f1" else (lambda v: v)
        key = {"few-mae": "mae_few", "sera": "sera", "f1": "f1",
               "balanced-mae": "balanced_mae"}[objective]
        ranked = [(loss(s[key]["mean"]), n) for n, s in zip(names, first["summaries"])
                  if n != "plain" and s is not None and s.get(key) is not None]
        if ranked:
            partner = min(ranked)[1]
            plain_mae = first["summaries"][0]["mae_all"]["mean"]

            def blended(lam: float) -> List[Dict[str, Optional[float]]]:
                out = []
                for f, (tr, va) in enumerate(folds):
                    p = (1 - lam) * preds["plain"][f] + lam * preds[partner][f]
                    out.append(json.loads(_native.fold_scores(
                        yy[va], np.ascontiguousarray(p), yy[tr], float(threshold), "both", 1.5,
                        "ubl", None)))
                return out

            lambdas = [float(v) for v in blend_lambdas]
            for k in range(19, 0, -1):
                lam = round(0.05 * k, 2)
                s = blended(lam)
                if np.mean([x["mae_all"] for x in s]) <= plain_mae * (1 + max_all_loss):
                    if lam not in lambdas:
                        lambdas.append(lam)
                    break
            for lam in lambdas:
                n = f"blend-{lam:g}({partner})"
                scores[n] = blended(lam)
                names.append(n)
                blend_of[n] = partner
    out = summarise(names)
    choice = out["choice"]
    rows: Dict[str, List[Any]] = {"name": [], "family": [], "folds": []}
    for k in _SCORES:
        rows[k] = []
        rows[k + "_std"] = []
    rows.update({"feasible": [], "clear_gain": [], "pareto": [], "chosen": [], "error": []})
    for i, (n, s) in enumerate(zip(names, out["summaries"])):
        rows["name"].append(n)
        rows["family"].append("blend" if n in blend_of else n.split("-t")[0].split("-a")[0])
        rows["folds"].append(0 if scores[n] is None else len(scores[n]))
        for k in _SCORES:
            st = None if s is None else s.get(k)
            rows[k].append(np.nan if st is None else st["mean"])
            rows[k + "_std"].append(np.nan if st is None else st["std"])
        rows["feasible"].append(bool(choice["feasible"][i]))
        rows["clear_gain"].append(bool(choice["clear_gain"][i]))
        rows["pareto"].append(bool(choice["pareto"][i]))
        rows["chosen"].append(i == choice["chosen"])
        rows["error"].append(errors.get(n))
    try:
        import pandas as pd

        results: Any = pd.DataFrame(rows)
    except ImportError:
        results = rows
    chosen = names[choice["chosen"]]
    spec = {c[0]: c for c in cands}

    def regressor(n: str) -> DIRRegressor:
        if n in blend_of:
            lam = float(n.split("(")[0][len("blend-"):])
            return DIRRegressor(estimator, spec[blend_of[n]][1], alpha=spec[blend_of[n]][2],
                                threshold=spec[blend_of[n]][3],
                                blend=(lam, DIRRegressor(estimator)), random_state=seed)
        _, method, alpha, t = spec[n]
        return DIRRegressor(estimator, method, alpha=alpha, threshold=t, random_state=seed)

    return SelectResult(results, regressor(chosen), chosen, bool(choice["beats_plain"]),
                        choice["verdict"], {n: scores[n] for n in names if scores[n] is not None})
