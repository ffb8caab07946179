"""Attention's maths on one core: the register tiles against Eigen's GEMM, interleaved.

Builds ``driver.cc`` with the library's own maths file and flags (``-march=native`` or
``$SIAMESEIM_MARCH``) and runs it ``--rounds`` times per choice of products
(``SIAMESEIM_ATTENTION_TILES=1`` / ``0``), alternating; reports the median of each
round's best-of-7 times and the GFLOP/s they mean (forward 4 T^2 hd, backward 8 T^2 hd per
(batch, head) pair). JSON out.

    python benchmarks/attention_kernels/run.py
    SIAMESEIM_MARCH=x86-64-v3 python benchmarks/attention_kernels/run.py  # an AVX2 build
    python benchmarks/attention_kernels/run.py --bias  # with the qkv bias, as training runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NATIVE = ROOT / "siameseim_tf" / "layers" / "native"
sys.path.insert(0, str(ROOT))

PAIRS, HEAD_DIM = 96, 64  # batch 32 x 3 heads of 64 (ViT-Tiny)


def build(target: Path) -> None:
    import tensorflow as tf

    from siameseim_tf import native_build

    compiler = native_build._compiler()  # the library builder's: $CXX, g++ or c++
    library = native_build.NativeLibrary(NATIVE, "attention")
    flags = library._maths_flags(tf, compiler, native_build.march())
    sources = [HERE / "driver.cc", NATIVE / "attention_math.cc"]
    command = [compiler, *flags, f"-I{NATIVE}", *map(str, sources), "-o", str(target)]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--bias", action="store_true", help="add the qkv bias inside the kernels, as training does"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "attention_kernels"
        build(binary)
        runs = {"tiles": [], "eigen": []}
        for _ in range(args.rounds):
            for name, value in (("tiles", "1"), ("eigen", "0")):
                env = {**os.environ, "SIAMESEIM_ATTENTION_TILES": value}
                command = [str(binary), "7", "1" if args.bias else "0"]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(out.stdout))
    report = {
        "march": os.environ.get("SIAMESEIM_MARCH", "native"),
        "rounds": args.rounds,
        "qkv_bias": args.bias,
    }
    for name, rounds in runs.items():
        report[name] = {}
        for tokens in rounds[0]:
            row = {}
            for part, flops in (("forward", 4), ("forward_no_probs", 4), ("backward", 8)):
                ms = statistics.median(r[tokens][f"{part}_ms"] for r in rounds)
                gflops = flops * int(tokens) ** 2 * HEAD_DIM * PAIRS / ms / 1e6
                row[part] = {"ms": round(ms, 3), "gflops_one_core": round(gflops, 1)}
            report[name][tokens] = row
    tiles, eigen = report["tiles"], report["eigen"]
    report["tiles_speedup"] = {
        tokens: {part: round(eigen[tokens][part]["ms"] / row[part]["ms"], 2) for part in row}
        for tokens, row in tiles.items()
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
