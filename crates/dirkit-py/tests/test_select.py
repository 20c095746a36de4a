"""The relevance-stratified splitter and ``dirkit.select`` for scikit-learn regressors."""

from pathlib import Path

import numpy as np
import pytest

import dirkit

ROOT = Path(__file__).resolve().parents[3]


def skewed(n, seed):
    rng = np.random.default_rng(seed)
    y = np.round(10 + 2 * rng.standard_normal(n))
    tail = rng.random(n) < 0.1
    y[tail] = 30 + np.round(np.abs(8 * rng.standard_normal(tail.sum())))
    return y


def bumps(y, phi, threshold):
    """Row sets of the runs of rows on one side of the threshold, in target order."""
    order = np.lexsort((np.arange(len(y)), y))
    out, last = [], None
    for i in order:
        rare = phi[i] >= threshold
        if rare != last:
            out.append([])
            last = rare
        out[-1].append(i)
    return [set(b) for b in out]


@pytest.mark.parametrize("n,k,seed", [(1000, 5, 0), (333, 4, 1), (41, 3, 2)])
def test_splitter_partitions_and_shares_every_bump(n, k, seed):
    y = skewed(n, seed)
    cv = dirkit.RelevanceStratifiedKFold(n_splits=k, n_repeats=2, random_state=seed)
    assert cv.get_n_splits() == 2 * k
    folds = list(cv.split(np.zeros((n, 1)), y))
    assert len(folds) == 2 * k
    phi = dirkit.relevance(y)
    groups = bumps(y, phi, 0.8)
    assert any(phi[list(g)[0]] >= 0.8 for g in groups)
    for rep in (folds[:k], folds[k:]):
        seen = np.zeros(n, dtype=int)
        for train, test in rep:
            assert len(np.intersect1d(train, test)) == 0
            assert len(train) + len(test) == n
            seen[test] += 1
            for g in groups:
                c = len(g.intersection(test.tolist()))
                assert len(g) // k <= c <= -(-len(g) // k)
        assert (seen == 1).all()
        sizes = [len(t) for _, t in rep]
        assert max(sizes) - min(sizes) <= 1
    again = list(dirkit.RelevanceStratifiedKFold(k, 2, random_state=seed).split(None, y))
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_splitter_random_state_conventions_and_errors():
    y = skewed(200, 3)
    first = lambda rs: next(dirkit.RelevanceStratifiedKFold(random_state=rs).split(None, y))[1]
    assert (first(np.random.RandomState(1)) == first(np.random.RandomState(1))).all()
    assert (first(np.random.default_rng(1)) == first(np.random.default_rng(1))).all()
    draws = {tuple(first(None)) for _ in range(4)}
    assert len(draws) > 1, "random_state=None should give fresh folds"
    with pytest.raises(ValueError, match="n_splits=1"):
        list(dirkit.RelevanceStratifiedKFold(n_splits=1).split(None, y))
    with pytest.raises(ValueError, match="threshold=1.5"):
        list(dirkit.RelevanceStratifiedKFold(threshold=1.5).split(None, y))
    with pytest.raises(ValueError, match="random_state=-1"):
        list(dirkit.RelevanceStratifiedKFold(random_state=-1).split(None, y))
    with pytest.raises(ValueError, match="y is None"):
        list(dirkit.RelevanceStratifiedKFold().split(np.zeros((5, 1))))
    with pytest.raises(ValueError, match="n_splits=300"):
        list(dirkit.RelevanceStratifiedKFold(n_splits=300).split(None, y))


sklearn = pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.base import BaseEstimator, RegressorMixin  # noqa: E402


def abalone():
    df = pd.read_csv(ROOT / "datasets" / "abalone" / "abalone.csv")
    X = pd.get_dummies(df.drop(columns="rings"), dtype=float)
    return X, df["rings"]


def test_splitter_drops_into_scikit_learn():
    X, y = abalone()
    cv = dirkit.RelevanceStratifiedKFold(n_splits=4, random_state=0)
    scores = cross_val_score(Ridge(), X, y, cv=cv, scoring="neg_mean_absolute_error")
    assert scores.shape == (4,) and (scores < 0).all()
    grid = GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, cv=cv).fit(X, y)
    assert grid.best_params_["alpha"] in (0.1, 10.0)


def check_choice(r, max_all_loss):
    res = r.results
    plain = res[res.name == "plain"].iloc[0]
    chosen = res[res.chosen].iloc[0]
    assert chosen["name"] == r.chosen_
    assert chosen.mae_all <= plain.mae_all * (1 + max_all_loss) + 1e-12
    assert chosen.mae_few <= plain.mae_few
    assert r.beats_plain_ == (r.chosen_ != "plain")
    assert res.pareto.any()


def test_select_with_ridge_and_gradient_boosting():
    X, y = abalone()
    r = dirkit.select(Ridge(), X, y, random_state=0)
    assert len(r.results) >= 20
    assert {"lds-a0.5", "denseweight-a1", "smogn-t0.8", "wercs"} <= set(r.results.name)
    check_choice(r, 0.02)
    # The same random_state gives the same table.
    again = dirkit.select(Ridge(), X, y, random_state=0)
    pd.testing.assert_frame_equal(r.results, again.results)
    # best_ is an estimator that fits and predicts like the chosen candidate.
    model = sklearn.base.clone(r.best_).fit(X, y)
    assert model.predict(X.iloc[:5]).shape == (5,)
    hgb = dirkit.select(HistGradientBoostingRegressor(max_iter=30), X, y, random_state=1,
                        methods=["lds", "ru", "blend"])
    assert set(hgb.results.family) <= {"plain", "lds", "ru", "blend"}
    check_choice(hgb, 0.02)


class Spy(BaseEstimator, RegressorMixin):
    """Records the `id` column of every row it is fitted on."""

    calls = []

    def fit(self, X, y, sample_weight=None):
        Spy.calls.append(np.asarray(X["id"]))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_) + 1e-3 * np.asarray(X["x"])


def test_select_fits_only_on_training_parts():
    rng = np.random.default_rng(5)
    n = 300
    y = skewed(n, 5)
    X = pd.DataFrame({"id": np.arange(n, dtype=float), "x": y + rng.standard_normal(n)})
    folds = list(dirkit.RelevanceStratifiedKFold(3, random_state=0).split(X, y))
    Spy.calls = []
    dirkit.select(Spy(), X, y, cv=folds, random_state=0,
                  methods=["lds", "ro", "smoter", "wercs"])
    assert len(Spy.calls) % 3 == 0 and len(Spy.calls) >= 15
    for i, ids in enumerate(Spy.calls):
        train, test = folds[i % 3]
        whole = ids[ids == np.round(ids)].astype(int)
        assert not np.isin(whole, test).any(), f"fit {i} saw validation rows"
        assert np.isin(whole, train).all()


def test_select_errors_name_python_parameters():
    X, y = abalone()
    with pytest.raises(ValueError, match="objective='mae'"):
        dirkit.select(Ridge(), X, y, objective="mae")
    with pytest.raises(ValueError, match="max_all_loss=-1"):
        dirkit.select(Ridge(), X, y, max_all_loss=-1)
    with pytest.raises(ValueError, match="methods: unknown method 'smote'"):
        dirkit.select(Ridge(), X, y, methods=["smote"])
    with pytest.raises(ValueError, match="different indexes"):
        dirkit.select(Ridge(), X, y.set_axis(y.index + 1))
    with pytest.raises(ValueError, match="constant"):
        dirkit.select(Ridge(), X, np.full(len(X), 3.0))
