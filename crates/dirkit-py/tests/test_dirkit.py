"""Tests of the built `dirkit` wheel: the numbers against the `dirkit` CLI and the reference
vectors of the Python packages (tests/reference), determinism and dtypes of the resamplers, and
ValueError on bad input.

Run from the repository root after installing the wheel:
    DIRKIT_BIN=target/debug/dirkit pytest crates/dirkit-py/tests
"""

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dirkit

ROOT = Path(__file__).resolve().parents[3]
REF = ROOT / "tests" / "reference"
AGEDB = ROOT / "datasets" / "agedb-dir" / "train_age_counts.csv"


def agedb_ages():
    ages, counts = np.loadtxt(AGEDB, delimiter=",", skiprows=1, unpack=True)
    return np.repeat(ages, counts.astype(np.int64)), ages, counts


def dirkit_bin():
    path = Path(os.environ.get("DIRKIT_BIN", ROOT / "target" / "debug" / "dirkit"))
    if not path.exists():
        pytest.fail(f"{path}: build the CLI first (cargo build -p dirkit-cli) or set DIRKIT_BIN")
    return path


def test_lds_weights_equal_the_cli_on_the_agedb_histogram():
    labels, _, _ = agedb_ages()
    out = subprocess.run(
        [str(dirkit_bin()), "weights", str(AGEDB), "--count-column", "count", "--range", "0:121",
         "--format", "csv"],
        check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 121
    table = dirkit.effective_density(labels, range=(0, 121), as_frame=False)
    cli_density = np.array([float(r["effective_density"]) for r in rows])
    cli_weight = np.array([float(r["weight"]) if r["weight"] else np.nan for r in rows])
    np.testing.assert_array_equal(table["count"], [int(r["count"]) for r in rows])
    np.testing.assert_allclose(table["effective_density"], cli_density, rtol=1e-15)
    np.testing.assert_allclose(table["weight"], cli_weight, rtol=1e-15)
    # Per-sample weights: each label's bin weight, averaging 1.
    w = dirkit.lds_weights(labels, range=(0, 121))
    np.testing.assert_allclose(w, cli_weight[labels.astype(np.int64)], rtol=1e-15)
    assert abs(w.mean() - 1.0) < 1e-12


def test_lds_matches_the_reference_vectors():
    ref = json.loads((REF / "lds.json").read_text())
    checked = 0
    for name in ["integer_case", "continuous_case"]:
        case = ref[name]
        b = case["binning"]
        end = b["start"] + b["width"] * b["n_bins"]
        for cfg in case["configs"]:
            lds = cfg["lds"]
            kwargs = dict(
                bin_width=b["width"], range=(b["start"], end),
                reweight=cfg["reweight"].replace("-", "_"),
                kernel=None if lds is None else lds["kernel"].replace("-", "_"),
                ks=5 if lds is None else lds["ks"],
                sigma=2.0 if lds is None else lds.get("sigma") or 2.0,
            )
            if cfg.get("beta") is not None:
                kwargs["beta"] = cfg["beta"]
            w = dirkit.lds_weights(case["labels"], **kwargs)
            np.testing.assert_allclose(w, cfg["sample_weights"], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} {cfg['name']}")
            table = dirkit.effective_density(case["labels"], as_frame=False, **kwargs)
            np.testing.assert_allclose(table["effective_density"], cfg["effective_density"],
                                       rtol=1e-9, err_msg=cfg["name"])
            np.testing.assert_array_equal(table["count"], case["counts"])
            checked += 1
    assert checked >= 4, checked


def test_relevance_equals_the_smogn_package():
    ref = json.loads((REF / "tabular" / "phi.json").read_text())
    checked = 0
    for case in ref["cases"]:
        expected = case.get("smogn")
        if not expected:
            continue
        y = np.array(case["y"], dtype=np.float64)
        phi, points = dirkit.relevance(y, box_plot="smogn", return_control_points=True)
        np.testing.assert_allclose(points, expected["control_points"], atol=1e-9)
        np.testing.assert_allclose(phi, expected["phi"], atol=ref["tolerance"]["atol"])
        checked += 1
    assert checked >= 5, checked


@pytest.mark.parametrize("seed", range(6))
def test_relevance_equals_the_installed_smogn_package_on_fresh_data(seed):
    """Live: the same targets through `smogn.phi` (skipped when smogn is not installed; CI
    installs it)."""
    smogn = pytest.importorskip("smogn")
    import pandas as pd
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = [rng.gamma(2.0, 10.0, n), rng.normal(0, 1, n) ** 3, -rng.lognormal(0, 1, n),
         rng.integers(0, 30, n).astype(np.float64), rng.exponential(5.0, n) + 1e6,
         np.r_[rng.normal(0, 1, n - 5), rng.normal(40, 1, 5)]][seed]
    series = pd.Series(y)
    points = smogn.phi_ctrl_pts(y=series, method="auto", xtrm_type="both", coef=1.5)
    expected = np.asarray(smogn.phi(y=series, ctrl_pts=points))
    got, ours = dirkit.relevance(y, box_plot="smogn", return_control_points=True)
    np.testing.assert_allclose(ours, np.asarray(points["ctrl_pts"]).reshape(-1, 3), atol=1e-9)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_denseweight_matches_the_exact_kde_and_the_package_within_its_documented_gap():
    ref = json.loads((REF / "denseweight.json").read_text())
    labels = np.array(ref["labels"], dtype=np.float64)
    for case in ref["cases"]:
        bw = None if case["bandwidth"] == "silverman" else case["bandwidth"]
        w = dirkit.denseweight(labels, case["alpha"], eps=case["eps"], bandwidth=bw)
        np.testing.assert_allclose(w, case["weights"], rtol=1e-9, atol=1e-12)
    # The PyPI package evaluates an FFT grid and min-max scales over it; the gap per alpha is
    # the one measured when the vectors were generated.
    for out in ref["package_outputs"]["alphas"]:
        w = dirkit.denseweight(labels, out["alpha"])
        gap = ref["cross_check"][f"alpha_{out['alpha']}"][
            "max_abs_weights_package_vs_exact_minmax_over_labels"]
        assert np.abs(w - np.array(out["weights"])).max() <= gap * 1.01 + 1e-9


def test_shot_report_and_sera():
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(30, 5, 3000), rng.normal(70, 5, 60)]).round()
    y = np.arange(0, 100, dtype=np.float64)
    pred = y + rng.normal(0, 2, y.size)
    r = dirkit.shot_report(y, pred, train)
    err = np.abs(pred - y)
    assert r["all"]["n"] == 100
    assert r["all"]["mae"] == pytest.approx(err.mean(), rel=1e-12)
    assert r["all"]["mse"] == pytest.approx((err ** 2).mean(), rel=1e-12)
    assert r["many"]["n"] + r["medium"]["n"] + r["few"]["n"] == 100
    assert r["all"]["sera"] == pytest.approx(dirkit.sera(y, pred, train), rel=1e-12)
    # SERA of a perfect prediction is 0; of a worse one, larger.
    assert dirkit.sera(y, y, train) == 0.0
    assert dirkit.sera(y, pred + 1, train) > dirkit.sera(y, pred, train)
    assert r["few"]["sera"] is not None
    assert dirkit.shot_report(y, pred, train, sera_step=None)["few"]["sera"] is None


pd = pytest.importorskip("pandas")


def table(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "area": rng.normal(100, 20, n),
        "rooms": rng.integers(1, 6, n),
        "district": pd.Categorical(rng.choice(["north", "south", "east"], n)),
        "street": rng.choice(["a", "b"], n).astype(object),
        "garden": rng.random(n) > 0.5,
    })
    y = pd.Series(np.r_[rng.normal(200, 10, n - 12), rng.normal(400, 30, 12)], name="price")
    return X, y


RESAMPLERS = [dirkit.RandomOver, dirkit.RandomUnder, dirkit.GaussianNoise, dirkit.SMOTER,
              dirkit.SMOGN, dirkit.WERCS]


@pytest.mark.parametrize("cls", RESAMPLERS)
def test_resamplers_are_deterministic_and_keep_columns_and_dtypes(cls):
    X, y = table()
    a = cls(seed=3).fit_resample(X, y)
    b = cls(seed=3).fit_resample(X, y)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_series_equal(a[1], b[1])
    Xr, yr = a
    assert list(Xr.columns) == list(X.columns)
    assert list(Xr.dtypes) == list(X.dtypes)
    assert yr.name == "price" and yr.dtype == y.dtype and len(yr) == len(Xr)
    assert set(Xr["district"].cat.categories) == set(X["district"].cat.categories)
    assert set(Xr["street"]) <= {"a", "b"}
    assert np.isfinite(Xr["area"]).all() and np.isfinite(yr).all()
    # The rare share (price above the box-plot fence) grows, except when under-sampling
    # keeps it by dropping normal rows.
    rare = lambda v: (dirkit.relevance(y.to_numpy(), v.to_numpy()) >= 0.5).mean()
    assert rare(yr) >= rare(y)
    # Another seed gives another draw.
    if cls is not dirkit.RandomUnder or len(Xr) < len(X):
        c = cls(seed=4).fit_resample(X, y)
        assert not (len(c[0]) == len(Xr) and c[0].equals(Xr) and c[1].equals(yr))


def test_long_calls_release_the_gil():
    """While a long `lds_weights` runs in a thread, the main thread keeps running Python: the
    longest pause it sees is far shorter than the call (a held GIL would stall it throughout)."""
    import threading
    import time

    n = 1 << 20
    while True:
        labels = np.random.default_rng(0).gamma(4.0, 9.0, n).round()
        t = time.perf_counter()
        dirkit.lds_weights(labels)
        call = time.perf_counter() - t
        if call >= 0.2 or n >= 1 << 25:
            break
        n *= 2
    assert call >= 0.05, f"the call took only {call:.3f} s on {n} labels"
    done = threading.Event()
    worker = threading.Thread(target=lambda: (dirkit.lds_weights(labels), done.set()))
    ticks = [time.perf_counter()]
    worker.start()
    while True:
        ticks.append(time.perf_counter())  # before the check, so a stall ends in a gap
        if done.is_set():
            break
    worker.join()
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([call])
    assert gaps.max() < call / 2, (gaps.max(), call, len(ticks))


def test_resamplers_follow_the_scikit_learn_estimator_protocol():
    s = dirkit.SMOGN(k=3, seed=7)
    assert s.get_params()["k"] == 3 and s.get_params()["seed"] == 7
    assert "over" not in s.get_params()
    copy = type(s)(**s.get_params())
    assert copy.get_params() == s.get_params()
    assert repr(s) == "SMOGN(k=3, seed=7)"
    assert repr(dirkit.WERCS(control=np.array([[0.0, 0.0, 0.0], [5.0, 1.0, 0.0]]))).startswith(
        "WERCS(control=array(")
    assert s.set_params(k=4) is s and s.k == 4
    with pytest.raises(ValueError, match="SMOGN has no setting 'over'"):
        s.set_params(over=1.0)


def test_resamplers_in_an_imbalanced_learn_pipeline():
    """Where scikit-learn and imbalanced-learn are installed (CI's newest environment): SMOGN
    as a pipeline step, cloned per fold by cross-validation."""
    pytest.importorskip("imblearn")
    from imblearn.pipeline import make_pipeline
    from sklearn.base import clone
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    X, y = table(n=120)
    X = X[["area", "rooms"]]
    assert clone(dirkit.SMOGN(seed=2)).get_params() == dirkit.SMOGN(seed=2).get_params()
    scores = cross_val_score(make_pipeline(dirkit.SMOGN(seed=2), Ridge()), X, y, cv=3,
                             scoring="neg_mean_absolute_error")
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_numpy_in_numpy_out():
    X, y = table()
    Xn = X[["area", "rooms"]].to_numpy(dtype=np.float64)
    Xr, yr = dirkit.SMOGN(seed=1).fit_resample(Xn, y.to_numpy())
    assert isinstance(Xr, np.ndarray) and Xr.dtype == np.float64 and Xr.shape[1] == 2
    assert isinstance(yr, np.ndarray) and yr.shape == (Xr.shape[0],)
    # An object array mixing numbers and text: the numeric columns are interpolated, the text
    # column drawn, and the array comes back as objects.
    Xo = X[["area", "street"]].to_numpy(dtype=object)
    Xr, yr = dirkit.SMOGN(seed=1).fit_resample(Xo, y.to_numpy())
    assert Xr.dtype == object and set(Xr[:, 1]) <= {"a", "b"}
    new_area = np.setdiff1d(Xr[:, 0].astype(np.float64), X["area"].to_numpy())
    assert new_area.size > 0  # interpolated values, not only drawn ones
    frame = pd.DataFrame({"n": pd.Series(X["rooms"].tolist(), dtype=object), "s": X["street"]})
    Fr, _ = dirkit.SMOGN(seed=1).fit_resample(frame, y)
    assert list(Fr.dtypes) == [np.dtype(object), frame["s"].dtype]
    assert np.setdiff1d(Fr["n"].astype(np.float64), frame["n"].astype(np.float64)).size > 0
    Xi = X[["rooms"]].to_numpy()
    Xr, _ = dirkit.GaussianNoise(seed=1).fit_resample(Xi, y.to_numpy())
    assert Xr.dtype == Xi.dtype  # integers rounded back


def test_bad_input_raises_value_error_with_the_cli_message():
    with pytest.raises(ValueError, match=r"labels\[1\] is NaN: expected finite numbers"):
        dirkit.lds_weights([1.0, float("nan"), 3.0])
    with pytest.raises(ValueError, match="empty"):
        dirkit.lds_weights([])
    with pytest.raises(ValueError, match="invalid ks = 4: an odd window size >= 1"):
        dirkit.lds_weights([1.0, 2.0], ks=4)
    with pytest.raises(ValueError, match="length mismatch"):
        dirkit.shot_report([1.0, 2.0], [1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="length mismatch"):
        dirkit.sera([1.0, 2.0], [1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="y_train is empty: expected at least one value"):
        dirkit.shot_report([1.0, 2.0], [1.0, 2.0], [])
    with pytest.raises(ValueError, match="y_train is empty"):
        dirkit.sera([1.0, 2.0], [1.0, 2.0], [])
    with pytest.raises(ValueError, match="expected a 1-D array"):
        dirkit.denseweight([[1.0, 2.0]])
    with pytest.raises(ValueError, match="expected numbers"):
        dirkit.relevance(["a", "b"])
    X, y = table()
    with pytest.raises(ValueError, match="rows but y has"):
        dirkit.SMOGN().fit_resample(X.iloc[:10], y)
    Xm = X.copy()
    Xm.loc[3, "area"] = np.nan
    with pytest.raises(ValueError, match="column 'area' row 3"):
        dirkit.SMOGN().fit_resample(Xm, y)
    with pytest.raises(ValueError, match="column 'when' has dtype datetime64"):
        dirkit.SMOGN().fit_resample(X.assign(when=pd.Timestamp("2020-01-01")), y)
    with pytest.raises(ValueError, match=r"seed=-1: expected an integer in \[0, "):
        dirkit.SMOGN(seed=-1).fit_resample(X, y)
    with pytest.raises(ValueError, match="k=2.5: expected an integer"):
        dirkit.SMOTER(k=2.5).fit_resample(X, y)
    # Each resampler takes only its own settings.
    with pytest.raises(TypeError, match="over"):
        dirkit.SMOGN(over=1.0)
    with pytest.raises(TypeError, match="k"):
        dirkit.WERCS(k=3)
    with pytest.raises(ValueError, match="nothing is rare"):
        dirkit.RandomOver().fit_resample(X, pd.Series(np.linspace(0, 1, len(X))), )


def readme_snippets():
    """The ```python blocks of README.md's "From Python" section, as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_readme_snippets_run_as_written(index, monkeypatch):
    snippets = readme_snippets()
    assert len(snippets) == 3
    code = snippets[index]
    if "import torch" in code or "torch" in code.split("\n", 1)[0]:
        pytest.importorskip("torch")
    if "sklearn" in code:
        pytest.importorskip("sklearn")
    monkeypatch.chdir(ROOT)
    exec(compile(code, f"README.md snippet {index}", "exec"), {})
