"""dirkit's side of a side-by-side benchmark, for the PyTorch scripts in this directory: the
median that criterion recorded for a benchmark in the last `cargo bench` run
(`<target>/criterion/<group>/<id>/new/estimates.json`; `<target>` is `CARGO_TARGET_DIR` or the
workspace's `target/`), and the line that puts it next to PyTorch's time with their ratio.

Run the Rust bench first with the same thread count, e.g.

    RAYON_NUM_THREADS=2 cargo bench -p dirkit-compute --bench resnet
    python3 crates/dirkit-compute/benches/resnet_torch.py --threads 2
"""

import json
import os
import pathlib


def criterion_dir() -> pathlib.Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    root = pathlib.Path(__file__).resolve().parents[3]
    return (pathlib.Path(target) if target else root / "target") / "criterion"


def dirkit_median_s(group: str, bench_id: str):
    """Seconds per iteration (criterion's median) of `group/bench_id`, or None if not run."""
    path = criterion_dir() / group / bench_id.replace("/", "_") / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["median"]["point_estimate"] * 1e-9
    except (OSError, KeyError, TypeError, ValueError):
        return None


def versus(group: str, bench_id: str, torch_s: float, unit: str = "ms") -> str:
    """`  | dirkit <time> <unit>, PyTorch / dirkit <ratio>` from the last `cargo bench` run
    (empty when it has no figure for the benchmark). A ratio above 1: dirkit is faster."""
    dirkit_s = dirkit_median_s(group, bench_id)
    if dirkit_s is None:
        return "  | dirkit: no `cargo bench` figure"
    scale = {"ms": 1e3, "us": 1e6}[unit]
    return f"  | dirkit {dirkit_s * scale:8.1f} {unit}, PyTorch / dirkit {torch_s / dirkit_s:5.2f}"
