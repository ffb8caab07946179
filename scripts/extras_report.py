"""What each install extra resolves to: one TensorFlow distribution, and which one.

Asks pip to resolve ``.[extras]`` for each combination below without installing anything
(``pip install --dry-run --ignore-installed --report``, so the packages already in the
environment do not hide what a fresh machine would get) and prints, per combination, the
TensorFlow distribution, Keras, the number of ``nvidia-*`` (CUDA / cuDNN) wheels and the
number of packages. Exits 1 when a combination resolves to no TensorFlow or to more than
one distribution of it (two in one environment overwrite each other's files). Needs PyPI.

    python scripts/extras_report.py                       # the default combinations
    python scripts/extras_report.py gpu,export,serving    # chosen ones
    python scripts/extras_report.py --output extras.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from siameseim_tf.install import TENSORFLOW_DISTRIBUTIONS, canonical  # noqa: E402

DEFAULT = ["tf", "gpu", "cpu", "dev", "tf,export", "gpu,export,serving", "cpu,export,serving"]


def resolve(extras: str) -> dict[str, str]:
    """{distribution: version} that pip would install for `.[extras]` on a fresh machine."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--quiet", "--report", str(report), f"{ROOT}[{extras}]",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"pip could not resolve .[{extras}]: {done.stderr.strip()[-400:]}")
        installs = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def summary(extras: str, packages: dict[str, str]) -> dict:
    tensorflow = {n: v for n, v in packages.items() if n in TENSORFLOW_DISTRIBUTIONS}
    return {
        "extras": extras,
        "tensorflow": tensorflow,
        "keras": packages.get("keras"),
        "nvidia_wheels": sum(n.startswith("nvidia-") for n in packages),
        "packages": len(packages),
        "ok": len(tensorflow) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("combinations", nargs="*", default=DEFAULT, help="e.g. gpu,export")
    parser.add_argument("--output", default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    for extras in args.combinations:
        row = summary(extras, resolve(extras))
        rows.append(row)
        tensorflow = ", ".join(f"{n} {v}" for n, v in row["tensorflow"].items()) or "none"
        print(
            f"{extras:<22} {tensorflow:<24} keras {row['keras']}  "
            f"nvidia wheels {row['nvidia_wheels']:>2}  packages {row['packages']:>3}  "
            f"{'ok' if row['ok'] else 'NOT ONE TENSORFLOW'}",
            flush=True,
        )
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")
    if not all(row["ok"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
