"""Where the whole XLA-compiled train step's time goes, by kind of XLA operation.

The step is compiled as training does on one device (`jit_compile`, float32), its
optimised HLO is dumped, and a few steps run under the TensorFlow profiler. Every XLA
thunk event (one per HLO instruction run) is classified from the HLO:

- dense dots: the Dense layers' matmuls (no batch dimension);
- attention dots: the batched matmuls q k^T, p v and their gradients;
- tree-rewritten reductions: reductions XLA's CPU backend splits into a 32-wide
  `reduce-window` plus a short `reduce` (its TreeReductionRewriter) instead of handing
  them to YNNPACK: those whose input is a multiply, reshape, bitcast, concatenate, ...;
- YNNPACK fusions: reductions (and element-wise work) XLA hands to YNNPACK;
- element-wise fusions and the rest.

Times are thread time summed over XLA's worker threads (they run independent thunks
concurrently), so read shares; GFLOP/s of the dot kinds are their FLOPs over their thread
time. JSON out.

    ONEDNN_MAX_CPU_ISA=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 \
        python benchmarks/hlo_profile.py --output benchmarks/results_hlo_profile_avx2_capped.json
"""

from __future__ import annotations

import argparse
import collections
import glob
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.-]+) = \w+\[([\d,]*)\]\S* (\w[\w-]*)\((.*)$")


def read_hlo(path: str) -> dict:
    """name -> (shape, opcode, rest of the line) for every instruction of the dump."""
    instructions = {}
    for line in Path(path).read_text().splitlines():
        match = INSTRUCTION.match(line)
        if match:
            name, shape, opcode, rest = match.groups()
            dims = tuple(int(d) for d in shape.split(",") if d)
            instructions[name] = (dims, opcode, rest)
    return instructions


def dot_flops(instructions: dict, name: str) -> float:
    shape, _, rest = instructions[name]
    lhs = re.match(r"%([\w.-]+)", rest).group(1)
    contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest).group(1)
    lhs_shape = instructions[lhs][0]
    depth = math.prod(lhs_shape[int(d)] for d in contracting.split(",") if d)
    return 2.0 * math.prod(shape) * depth


def kind_of(instructions: dict, event: str) -> str:
    if event in instructions and instructions[event][1] == "dot":
        batched = "lhs_batch_dims" in instructions[event][2]
        return "attention dots (batched)" if batched else "dense dots"
    if "reduce-window" in event:
        return "tree-rewritten reductions (reduce-window)"
    if event.startswith("ynn_fusion"):
        return "YNNPACK fusions (reductions)"
    if event.startswith("wrapped_reduce") or event.startswith("reduce"):
        return "other reductions"
    if "fusion" in event:
        return "element-wise fusions"
    return "other (copies, transposes, gathers, scatters, waits)"


def profile(steps: int, dump: str) -> dict:
    """Times and profiles the step; ``dump`` is where XLA was told to write its HLO."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from benchmarks.train_step import keras_step, model_arguments

    step = keras_step(model_arguments("tiny", 224), 32, jit_compile=True)
    step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - start) / steps
    logdir = tempfile.mkdtemp(prefix="hlo_profile_trace_")
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        step()
    tf.profiler.experimental.stop()
    dumps = glob.glob(f"{dump}/*train_function*after_optimizations.txt") or glob.glob(
        f"{dump}/*one_step_on_data*after_optimizations.txt"
    )
    instructions = read_hlo(max(dumps, key=os.path.getsize))
    space = xplane_pb2.XSpace()
    trace = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    space.ParseFromString(Path(trace).read_bytes())
    seconds, flops = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if "Eigen" not in line.name:  # XLA's worker threads
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if name in ("ThunkExecutor::Execute", "SlinkyThreadPool::Await"):
                    continue
                kind = kind_of(instructions, name)
                seconds[kind] += event.duration_ps / 1e12 / steps
                if "dots" in kind:
                    flops[kind] += dot_flops(instructions, name) / steps
    total = sum(seconds.values())
    return {
        "wall_seconds_per_step": round(wall, 3),
        "thread_seconds_per_step": round(total, 3),
        "kinds": {
            kind: {
                "thread_seconds": round(s, 3),
                "share": round(s / total, 3),
                **({"gflops_per_second": round(flops[kind] / s / 1e9, 1)} if kind in flops else {}),
            }
            for kind, s in seconds.most_common()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    dump, user_xla_flags = tempfile.mkdtemp(prefix="hlo_profile_"), os.environ.get("XLA_FLAGS", "")
    # Before TensorFlow starts (imported by profile / matmul_peak): XLA reads its flags once.
    os.environ["XLA_FLAGS"] = f"{user_xla_flags} --xla_dump_to={dump} --xla_dump_hlo_as_text"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from benchmarks.train_step import matmul_peak, print_report, recorded_env

    env = {**recorded_env(), "XLA_FLAGS": user_xla_flags}
    report = {
        "what": "ViT-Tiny/16 SiameseIM train step, 224 px, batch 32, float32, whole-step XLA",
        "env": {k: v for k, v in env.items() if v},
        "matmul_peak_gflops_2048": round(matmul_peak(), 1),
        **profile(args.steps, dump),
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()
