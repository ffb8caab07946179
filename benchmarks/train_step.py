"""Training-step speed of SiameseIM on this machine: images/s and model FLOPs utilisation.

MFU = model FLOPs per step (siameseim_tf.models.flops) / step time / measured matmul peak
(tf.matmul of the variant's precision, float32 or bfloat16, on the same cores, measured in
the same round; a bf16 peak is only meaningful on CPUs with native bf16). Variants run round-robin
so background load hits them alike; medians over rounds; JSON out.

    python benchmarks/train_step.py --presets tiny small --output train_step.json
    python benchmarks/train_step.py --baseline-torch   # + the PyTorch reference forward/backward

The PyTorch baseline is tests/convert/torch_reference.py (the official module layout,
written from the method as docs/method.md states it, doing the work of the authors' step:
their attention's row-maximum subtraction, the momentum update in the forward) trained with
the same AdamW step (betas (0.9, 0.95), weight decay 0.05 on matrices only, clipping at
global norm 1), on the same threads: a stand-in for the authors' code, whose exact training
loop needs CUDA and distributed setup. "torch_lean" drops the authors' redundant row-maximum
subtraction (the stand-in before 2026-12): a leaner PyTorch of the same method.
"torch_intel_mkl" is the float32 step with MKL's Intel code path on a non-Intel CPU
(benchmarks/intel_mkl.py): what the authors' code gets on an Intel CPU with this instruction
set. "torch_amd_mkl" is the other way round: MKL's vendor check answered "not Intel", the
code path the authors' code takes on an AMD CPU with this instruction set.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import tensorflow as tf  # noqa: E402

from benchmarks import host_speed  # noqa: E402
from benchmarks.intel_mkl import baseline_vendor, mkl_code_path, torch_env  # noqa: E402
from benchmarks.step_env import emit as print_report  # noqa: E402
from siameseim_tf import SiameseIM  # noqa: E402
from siameseim_tf.hardware import resolve_precision, xla_suits  # noqa: E402
from siameseim_tf.models.flops import siameseim_step_flops  # noqa: E402
from siameseim_tf.models.vit import preset_arguments  # noqa: E402
from siameseim_tf.training import AdamW  # noqa: E402
from siameseim_tf.training.machine import cpu_model, relevant_cpu_flags  # noqa: E402
from siameseim_tf.training.run import apply_xla  # noqa: E402
from tests.helpers import random_batch  # noqa: E402

# Settings that change what is measured (ISA caps emulating an older CPU, thread pools),
# recorded with the figures.
RECORDED_ENV = (
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
    "XLA_FLAGS",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)


def recorded_env() -> dict:
    return {k: os.environ[k] for k in RECORDED_ENV if k in os.environ}


def model_arguments(preset: str, image_size: int) -> dict:
    """Encoder preset + a decoder as wide as the encoder (heads as the encoder's)."""
    encoder = preset_arguments(preset, image_size=image_size)
    n = (image_size // encoder["patch_size"]) ** 2
    return dict(
        encoder,
        decoder_dim=encoder["embed_dim"],
        decoder_num_heads=encoder["num_heads"],
        projector_depth=2,
        predictor_depth=4,
        num_masked_patches=round(0.6 * n),
        mlp_ratio=4.0,
        clip_grad_norm=1.0,
    )


def matmul_peak(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """Median matmul GFLOP/s on all threads (graph mode: oneDNN), float32 or bfloat16."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            out = matmul(a)
        out.numpy()
        times.append((time.perf_counter() - start) / 4)
    return 2 * size**3 / statistics.median(times) / 1e9


def time_steps(step, steps: int, repeats: int, warm_up: bool = True) -> list[float]:
    """Seconds per step, one figure per repeat (after one warm-up step by default)."""
    if warm_up:
        step()
    per_repeat = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_repeat.append((time.perf_counter() - start) / steps)
    return per_repeat


# name -> (framework, precision, XLA): every variant the benchmark knows. "keras_auto" is
# what a user gets by default: the precision and XLA mode the library picks on this machine.
VARIANTS = {
    "keras_auto": ("keras", "auto", None),
    "keras": ("keras", "float32", False),
    "keras_xla": ("keras", "float32", True),
    "keras_bf16": ("keras", "mixed_bfloat16", False),
    "keras_bf16_xla": ("keras", "mixed_bfloat16", True),
    "torch": ("torch", "float32", False),
    "torch_bf16": ("torch", "bfloat16", False),
    "torch_intel_mkl": ("torch", "float32", False),  # + MKL's Intel code path
    "torch_amd_mkl": ("torch", "float32", False),  # + MKL's code path on AMD CPUs
    "torch_lean": ("torch", "float32", False),  # without the authors' row-max subtraction
}
TORCH_BASELINES = tuple(name for name, (framework, *_) in VARIANTS.items() if framework == "torch")
# The momentum the PyTorch step updates its target with (any value costs the same).
TORCH_MOMENTUM = 0.996
# Untimed steps before the rounds: after one, a graph-mode step still ran 1.6x slow in an
# AVX2-capped run (2.57 against 1.54-1.60 s/step).
WARM_UP_STEPS = 2


@functools.cache
def resolve_variant(variant: str) -> tuple[str, str, bool]:
    """(framework, precision, XLA) of ``variant``, with "auto" decided as training does."""
    framework, precision, xla = VARIANTS[variant]
    if precision == "auto":
        precision, why = resolve_precision("auto")
        xla = xla_suits(precision)
        print(f"keras_auto: {precision} ({why}), XLA {'on' if xla else 'off'}", flush=True)
    return framework, precision, xla


def peak_dtype(variant: str) -> str:
    """The matmul peak a variant's MFU is measured against."""
    return "bfloat16" if "bfloat16" in resolve_variant(variant)[1] else "float32"


def keras_step(arguments: dict, batch_size: int, jit_compile: bool, precision: str = "float32"):
    model = SiameseIM(**arguments, dtype=precision)
    # As training/run.py sets a model up for one device: whole step or graph mode.
    jit_compile = apply_xla(model, "step" if jit_compile else "off")
    # The optimizer pretrain uses (method §6: betas (0.9, 0.95), decay on matrices only).
    optimizer = AdamW(learning_rate=1e-4, weight_decay=0.05, beta_2=0.95)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    batch = random_batch(
        batch_size,
        arguments["image_size"],
        arguments["patch_size"],
        arguments["num_masked_patches"],
    )
    data = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(data)
    model.make_train_function()
    model.optimizer.build(model.trainable_variables)
    return lambda: model.train_function(iterator)["loss"].numpy()


def keras_seconds_per_step(step, steps: int) -> float:
    """Seconds per step over ``steps`` steps (already warm), as TorchWorker reports them."""
    return time_steps(step, steps, 1, warm_up=False)[0]


def torch_step(arguments: dict, batch_size: int, precision: str = "float32", lean: bool = False):
    """The reference step; ``precision="bfloat16"`` runs forward and loss under CPU
    autocast (torch.autocast("cpu", torch.bfloat16)), the CPU counterpart of the authors'
    CUDA autocast (which does nothing on a CPU); ``lean`` drops the authors' row-maximum
    subtraction in attention."""
    import contextlib

    import torch

    from tests.convert.torch_reference import SiameseIMReference, to_torch_inputs, unigrad

    torch.set_num_threads(os.cpu_count())  # same cores as TensorFlow
    keys = (
        "image_size",
        "patch_size",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_ratio",
        "decoder_dim",
        "decoder_num_heads",
        "projector_depth",
        "predictor_depth",
    )
    model = SiameseIMReference(
        **{k: arguments[k] for k in keys}, norm="batch", subtract_max=not lean
    )
    params = [
        p
        for name, p in model.named_parameters()
        if not name.startswith("mm_") and not name.startswith("patch_embed")
    ]
    # The authors' optimizer: AdamW, betas (0.9, 0.95), weight decay 0.05 on matrices only
    # (timm's add_weight_decay: no decay on biases and 1-D weights).
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.05},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95))
    inputs = to_torch_inputs(
        random_batch(
            batch_size,
            arguments["image_size"],
            arguments["patch_size"],
            arguments["num_masked_patches"],
        )
    )

    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if precision == "bfloat16"
        else contextlib.nullcontext
    )

    def step():
        with autocast():
            pred, target = model(*inputs, momentum=TORCH_MOMENTUM)
        loss = unigrad(pred.float(), target.float())  # the authors' loss runs in float32
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    step.model = model
    return step


def torch_worker_env(variant: str, base_env: dict | None = None) -> dict:
    """The environment of the PyTorch baseline ``variant``: ``base_env`` (default: this
    process's) as the authors' code would run in it, plus the MKL vendor shim where the
    variant asks for one. No OpenMP wait policy is added: ``OMP_WAIT_POLICY=PASSIVE``,
    which this benchmark set until 2026-12-07, slowed their step 1.35x at 64 px, batch 4
    (benchmarks/torch_wait_policy.py; 1.01x at 224 px, batch 32)."""
    return torch_env(baseline_vendor(variant), base_env)


class TorchWorker:
    """The PyTorch step in its own process (thread pools of two frameworks in one process
    starve each other), driven line by line: "STEPS" in, seconds per step out; its
    environment is torch_worker_env(variant, base_env)."""

    def __init__(self, preset: str, args, variant: str = "torch", base_env: dict | None = None):
        import subprocess

        precision = resolve_variant(variant)[1]
        lean = variant == "torch_lean"

        command = [
            sys.executable,
            __file__,
            "--torch-worker",
            preset,
            "--torch-precision",
            precision,
            "--image-size",
            str(args.image_size),
            "--batch-size",
            str(args.batch_size),
        ] + (["--torch-lean"] if lean else [])
        env = torch_worker_env(variant, base_env)
        self.mkl_code_path = mkl_code_path(env)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        # Wait for its warm-up step: a worker still warming up would share the cores with
        # the first timed round of the other variants (measured: that round ~2x slower).
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the PyTorch worker failed to start ({self.process.wait()})")

    def __call__(self, steps: int = 1) -> float:
        """Runs ``steps`` steps in the worker; seconds per step."""
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def torch_worker_loop(preset: str, args) -> None:
    arguments = model_arguments(preset, args.image_size)
    step = torch_step(arguments, args.batch_size, args.torch_precision, args.torch_lean)
    for _ in range(WARM_UP_STEPS):
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        print(time_steps(step, int(line), 1)[0], flush=True)


def measure_preset(preset: str, args, variants: list[str]) -> list[dict]:
    """Times every variant in round-robin (each repeat: peak, then each variant), so a
    changing background load hits all of them alike; ratios are taken per round."""
    arguments = model_arguments(preset, args.image_size)
    flops = siameseim_step_flops(args.batch_size, **arguments)
    steps = {}
    for name in variants:
        framework, precision, xla = resolve_variant(name)
        if framework == "torch":
            steps[name] = TorchWorker(preset, args, name)  # warms up in its process
        else:
            keras_fn = keras_step(arguments, args.batch_size, xla, precision)
            for _ in range(WARM_UP_STEPS):  # compile, then warm up
                keras_fn()
            steps[name] = partial(keras_seconds_per_step, keras_fn)
    dtypes = sorted({peak_dtype(name) for name in variants})
    rounds = []
    for _ in range(args.repeats):
        peak = {dtype: matmul_peak(repeats=1, dtype=dtype) for dtype in dtypes}
        seconds = {name: step(args.steps) for name, step in steps.items()}
        rounds.append((peak, seconds))
    for step in steps.values():
        if isinstance(step, TorchWorker):
            step.close()
    runs = []
    for name in variants:
        seconds = [r[1][name] for r in rounds]
        median = statistics.median(seconds)
        dtype = peak_dtype(name)
        run = {
            "preset": preset,
            "implementation": name,
            "step_seconds": seconds,
            "median_step_seconds": median,
            "images_per_second": args.batch_size / median,
            "model_gflops_per_step": flops / 1e9,
            "mfu": statistics.median(flops / r[1][name] / (r[0][dtype] * 1e9) for r in rounds),
            "mfu_against": f"{dtype} matmul peak",
            "matmul_peak_gflops": statistics.median(r[0][dtype] for r in rounds),
        }
        if isinstance(steps[name], TorchWorker):
            run["torch_mkl_code_path"] = steps[name].mkl_code_path
        if name == "keras_auto":
            run["auto_chose"] = dict(zip(("precision", "xla"), resolve_variant(name)[1:]))
        for baseline in TORCH_BASELINES:
            if baseline in variants and not name.startswith("torch"):
                run[f"speedup_vs_{baseline}"] = statistics.median(
                    r[1][baseline] / r[1][name] for r in rounds
                )
        runs.append(run)
        ratios = "".join(
            f"  x {b} {run[f'speedup_vs_{b}']:.2f}"
            for b in TORCH_BASELINES
            if f"speedup_vs_{b}" in run
        )
        print(
            f"{preset:6s} {name:14s} {run['images_per_second']:7.1f} img/s  "
            f"MFU {run['mfu']:.1%}{ratios}",
            flush=True,
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-torch", action="store_true", help="+ torch, torch_bf16")
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=None, help="overrides"
    )
    parser.add_argument("--torch-precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--torch-lean", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None)
    parser.add_argument("--torch-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker_loop(args.torch_worker, args)
    variants = args.variants or (
        ["keras_auto", "keras", "keras_xla", "keras_bf16"]
        + (["torch", "torch_bf16"] if args.baseline_torch else [])
    )
    report = {
        "machine": {
            "cpu": cpu_model(),
            "cpu_flags": relevant_cpu_flags(),
            "cpus": os.cpu_count(),
            "load_average_start": os.getloadavg(),
            # whether the host let this machine run at full speed (docs/speed.md)
            "fma_loop_gflops_per_core_start": host_speed.readings(),
        },
        "env": recorded_env(),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "steps_per_timing": args.steps,
        "repeats": args.repeats,
        "runs": [],
    }
    for preset in args.presets:
        report["runs"] += measure_preset(preset, args, variants)
    report["machine"]["load_average_end"] = os.getloadavg()
    report["machine"]["fma_loop_gflops_per_core_end"] = host_speed.readings()
    print_report(report, args.output)


if __name__ == "__main__":
    main()
