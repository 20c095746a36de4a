"""Writes the benchmark tables of dirkit-tabular: N rows × C numeric columns, a right-skewed
target (log-normal, so the box plot finds high extremes) that depends on the features.

    python3 crates/dirkit-tabular/benches/make_table.py ROWS COLS OUT.csv [SEED]
"""

import sys

import numpy as np


def main():
    rows, cols, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols - 1))
    w = rng.standard_normal(cols - 1) / np.sqrt(cols - 1)
    y = np.exp(0.6 * (x @ w) + 0.4 * rng.standard_normal(rows)) * 10.0
    header = ",".join([f"x{i}" for i in range(cols - 1)] + ["y"])
    np.savetxt(out, np.column_stack([np.round(x, 4), np.round(y, 3)]), delimiter=",",
               header=header, comments="", fmt="%.6g")


if __name__ == "__main__":
    main()
