"""Python twin of dirkit's tabular benchmarks: the `smogn` package (0.1.2) on the same tables,
and imbreg's / smogn's φ and SERA on 10 million values.

    /tmp/tabvenv/bin/pip install numpy==2.3.5 pandas==2.2.3 smogn==0.1.2 imbreg==0.1.3
    python3 crates/dirkit-tabular/benches/make_table.py 2000 10 /tmp/t2k.csv
    /tmp/tabvenv/bin/python crates/dirkit-tabular/benches/twin.py smogn /tmp/t2k.csv
    /tmp/tabvenv/bin/python crates/dirkit-tabular/benches/twin.py phi

Prints one line per measurement: what, size, seconds.
"""

import sys
import time

import numpy as np
import pandas as pd


def bench_smogn(path):
    import smogn

    data = pd.read_csv(path)
    for name, kwargs in (("smoter", {"samp_method": "balance"}),):
        t = time.perf_counter()
        # smogn.smoter is the package's SMOGN (SMOTER with Gaussian noise); k = 5, pert 0.02;
        # it takes no seed (it draws from numpy's global generator).
        smogn.smoter(data=data, y="y", k=5, pert=0.02, samp_method="balance")
        print(f"smogn.smoter {len(data)} rows x {data.shape[1]} cols: {time.perf_counter() - t:.2f} s",
              flush=True)


def bench_phi(n=10_000_000):
    import smogn
    from imbreg import metrics, stratification as st

    rng = np.random.default_rng(1)
    y = np.exp(0.6 * rng.standard_normal(n)) * 10.0
    p = y + rng.standard_normal(n)
    pc = st.phi_control(y[:100_000], method="extremes")
    t = time.perf_counter()
    phi = st.phi(y, pc)
    print(f"imbreg phi {n}: {time.perf_counter() - t:.2f} s", flush=True)
    t = time.perf_counter()
    metrics.sera_score(y, p, phi, tloss=0.001)
    print(f"imbreg sera_score step 0.001 {n}: {time.perf_counter() - t:.2f} s", flush=True)
    m = 1_000_000
    spc = smogn.phi_ctrl_pts(y=pd.Series(y[:100_000]))
    t = time.perf_counter()
    smogn.phi(y=pd.Series(y[:m]), ctrl_pts=spc)
    print(f"smogn phi {m}: {time.perf_counter() - t:.2f} s", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "smogn":
        bench_smogn(sys.argv[2])
    else:
        bench_phi()
