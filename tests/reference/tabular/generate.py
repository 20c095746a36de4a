"""Reference vectors for dirkit's relevance function, SERA and utility-based F1.

Run from the repository root with the pinned packages:

    python3 -m venv /tmp/tabvenv
    /tmp/tabvenv/bin/pip install numpy==2.3.5 pandas==2.2.3 scipy imbreg==0.1.3 smogn==0.1.2
    /tmp/tabvenv/bin/python tests/reference/tabular/generate.py

Writes tests/reference/tabular/phi.json and metrics.json. Every number comes from the packages;
nothing is typed by hand. smogn 0.1.2 needs numpy < 2.4.
"""

import json
import math
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import smogn
from imbreg import stratification as st
from imbreg import metrics as im

OUT = Path(__file__).resolve().parent
ROOT = OUT.parents[2]


def targets():
    rng = np.random.default_rng(20261204)
    cases = {}
    wine = pd.read_csv(ROOT / "datasets/wine-quality/winequality-red.csv")
    cases["wine_quality"] = wine["quality"].to_numpy(float)
    diab = pd.read_csv(ROOT / "datasets/diabetes/diabetes.csv")
    cases["diabetes_progression"] = diab["progression"].to_numpy(float)
    # Right-skewed (high extremes only), rounded to create ties.
    cases["lognormal_ties"] = np.round(rng.lognormal(2.0, 0.6, 402), 1)
    # Left-skewed: only low extremes.
    cases["low_only"] = 100.0 - np.round(rng.lognormal(1.0, 0.7, 302), 2)
    # Heavy tails on both sides, negative values.
    cases["both_negative"] = np.round(rng.standard_t(2.5, 506) * 3.0 - 10.0, 3)
    # Uniform: the box plot finds no extremes.
    cases["uniform_none"] = np.round(rng.uniform(-5.0, 5.0, 200), 4)
    # A constant run: half the values equal, plus a tail.
    run = np.full(150, 7.0)
    tail = np.round(7.0 + rng.exponential(2.0, 150), 2)
    cases["constant_run"] = np.concatenate([run, tail])
    # Even length, small n (hinge index arithmetic).
    cases["small_even"] = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 30.0])
    cases["small_odd"] = np.array([-40.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0])
    # The two box-plot conventions disagree for n = 2 mod 4; the first seed whose control points
    # differ between the packages (found by running both) is kept.
    for seed in range(1000):
        y = np.round(np.random.default_rng(seed).lognormal(3.0, 0.5, 102), 1)
        a = st.phi_control(y, method="extremes")["control_pts"]
        b = smogn.phi_ctrl_pts(y=pd.Series(y), method="auto")["ctrl_pts"]
        if np.asarray(a).ravel().tolist() != [float(v) for v in b]:
            cases[f"conventions_differ_seed{seed}"] = y
            break
    return cases


def ctrl_rows(ctrl):
    return [[float(v) for v in row] for row in np.asarray(ctrl).reshape(-1, 3)]


def smogn_case(y):
    try:
        pc = smogn.phi_ctrl_pts(y=pd.Series(y), method="auto", xtrm_type="both", coef=1.5)
        vals = smogn.phi(y=pd.Series(y), ctrl_pts=pc)
        return {"control_points": ctrl_rows(pc["ctrl_pts"]), "phi": [float(v) for v in vals]}
    except Exception as e:  # recorded, not hidden
        return {"error": f"{type(e).__name__}: {e}"}


def phi_cases():
    out = []
    for name, y in targets().items():
        case = {"name": name, "y": [float(v) for v in y], "imbreg": {}}
        for extr in ["both", "high", "low"]:
            for coef in [1.5, 3.0]:
                pc = st.phi_control(y, method="extremes", extr_type=extr, coef=coef)
                # Outside the training range too (constant extrapolation).
                lo, hi = float(np.min(y)), float(np.max(y))
                span = hi - lo
                probe = np.linspace(lo - 0.25 * span, hi + 0.25 * span, 41)
                case["imbreg"][f"{extr}_{coef}"] = {
                    "extremes": extr,
                    "coef": coef,
                    "control_points": ctrl_rows(pc["control_pts"]),
                    "phi": [float(v) for v in st.phi(y, pc)],
                    "probe": [float(v) for v in probe],
                    "phi_probe": [float(v) for v in st.phi(probe, pc)],
                }
        case["smogn"] = smogn_case(y)
        out.append(case)
    # Manual control points with slopes (imbreg 'range'), including a non-monotone slope that
    # the Fritsch-Carlson step changes.
    manual = []
    for pts in (
        [[0.0, 0.0, 0.0], [10.0, 1.0, 0.0]],
        [[0.0, 1.0, 0.0], [5.0, 0.0, 0.0], [12.0, 0.6, 0.0], [20.0, 1.0, 0.0]],
        [[-3.0, 0.2, 0.5], [0.0, 0.0, -0.1], [4.0, 1.0, 2.0]],
        [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [3.0, 1.0, 3.0]],
    ):
        probe = np.linspace(pts[0][0] - 2.0, pts[-1][0] + 2.0, 61)
        pc = st.phi_control(None, method="range", control_pts=pts)
        manual.append(
            {
                "control_points": pts,
                "probe": [float(v) for v in probe],
                "phi": [float(v) for v in st.phi(probe, pc)],
            }
        )
    return out, manual


def metric_cases():
    rng = np.random.default_rng(7)
    out = []
    for name, n, noise in (("skewed_small", 60, 2.0), ("skewed", 400, 4.0), ("exact", 50, 0.0)):
        y_train = np.round(rng.lognormal(2.0, 0.5, 5 * n), 2)
        y = np.round(rng.lognormal(2.0, 0.5, n), 2)
        yhat = y + noise * rng.standard_normal(n) - 0.1 * noise * (y - y.mean())
        pc = st.phi_control(y_train, method="extremes")
        phi_true = st.phi(y, pc)
        case = {
            "name": name,
            "y_train": [float(v) for v in y_train],
            "y": [float(v) for v in y],
            "y_pred": [float(v) for v in yhat],
            "control_points": ctrl_rows(pc["control_pts"]),
            "sera": {},
            "utility": {},
        }
        for step in (0.001, 0.01, 0.1):
            case["sera"][str(step)] = float(im.sera_score(y, yhat, phi_true, tloss=step))
        for thr in (0.5, 0.8):
            r = im.utility_f1_score(y, yhat, pc, thr_rel=thr)
            case["utility"][str(thr)] = {
                "precision": r["precision"],
                "recall": r["recall"],
                "f1": r["f1_score"],
            }
        out.append(case)
    return out


def main():
    versions = {p: version(p) for p in ("numpy", "pandas", "scipy", "imbreg", "smogn")}
    versions["python"] = sys.version.split()[0]
    cases, manual = phi_cases()
    (OUT / "phi.json").write_text(
        json.dumps(
            {
                "description": "phi relevance: imbreg 0.1.3 phi_control(method='extremes') + phi "
                "(UBL's Tukey-hinge box plot, Fritsch-Carlson Hermite spline, constant "
                "extrapolation, clip to [0,1]) for each extremes/coef; smogn 0.1.2 "
                "phi(y, phi_ctrl_pts(y)) at coef 1.5, both extremes, evaluated on the training "
                "targets only; manual control points through imbreg method='range'.",
                "tolerance": {"atol": 1e-9},
                "versions": versions,
                "cases": cases,
                "manual": manual,
            },
            indent=1,
        )
    )
    (OUT / "metrics.json").write_text(
        json.dumps(
            {
                "description": "SERA (imbreg sera_score: thresholds arange(0, 1+step, step), "
                "trapezoid) and utility-based precision/recall/F1 (imbreg utility_f1_score, "
                "beta 1, p 0.5), control points from y_train by imbreg phi_control.",
                "tolerance": {"rtol": 1e-9},
                "versions": versions,
                "cases": metric_cases(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
