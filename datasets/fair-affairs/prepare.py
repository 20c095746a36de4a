"""Writes fair.csv beside this file from the statsmodels package (tested with 0.15.0), byte for
byte as statsmodels ships it; refuses to overwrite a different existing file."""

import hashlib
import sys
from importlib import resources
from pathlib import Path

SHA256 = "fd5f3f094a34fc35ca346a14c359e046ed27843038d6921efcd50a7ab21f6af0"


def main() -> int:
    try:
        data = resources.files("statsmodels.datasets.fair").joinpath("fair.csv").read_bytes()
    except ModuleNotFoundError:
        print("prepare.py: statsmodels is not installed: pip install statsmodels==0.15.0",
              file=sys.stderr)
        return 2
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"prepare.py: note: this statsmodels' fair.csv has SHA-256 {digest}, not the "
              f"{SHA256} of statsmodels 0.15.0 that the README's figures come from",
              file=sys.stderr)
    out = Path(__file__).with_name("fair.csv")
    if out.exists() and out.read_bytes() != data:
        print(f"prepare.py: {out} exists and differs: move it away first", file=sys.stderr)
        return 2
    out.write_bytes(data)
    rows = data.count(b"\n") - 1
    print(f"wrote {out} ({len(data)} bytes, {rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
