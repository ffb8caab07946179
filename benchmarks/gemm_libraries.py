"""The train step's float32 matmul shapes in TensorFlow, PyTorch (MKL) and NumPy (OpenBLAS).

ViT-Tiny/16 at 224 px, batch 32: the MLP's and qkv's forward matmuls and their weight /
input gradients, each library on 2 threads, best of ``--repeats`` calls (TensorFlow's in
a tf.function, graph mode, as training runs them). JSON out.

    python benchmarks/gemm_libraries.py
    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/gemm_libraries.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.step_env import emit  # noqa: E402
from benchmarks.train_step import recorded_env  # noqa: E402

# name: (m, k, n, transpose_a, transpose_b); 6304 = 32 x 197 tokens, 2528 = 32 x 79
SHAPES = {
    "fc1 forward": (6304, 192, 768, False, False),
    "fc2 forward": (6304, 768, 192, False, False),
    "fc1 input gradient": (6304, 768, 192, False, True),
    "fc1 weight gradient": (192, 6304, 768, True, False),
    "qkv forward": (2528, 192, 576, False, False),
    "qkv weight gradient": (192, 2528, 576, True, False),
}


def best_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def operands(m: int, k: int, n: int, ta: bool, tb: bool):
    """Random float32 operands of an [m, k] x [k, n] product, stored transposed where asked."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def tensorflow_product(a, b, ta: bool, tb: bool):
    import tensorflow as tf

    x, y = tf.constant(a), tf.constant(b)
    matmul = tf.function(lambda p, q: tf.linalg.matmul(p, q, transpose_a=ta, transpose_b=tb))
    return lambda: matmul(x, y)  # eager CPU calls return when done: no copy to NumPy


def torch_product(a, b, ta: bool, tb: bool):
    import torch

    x, y = torch.from_numpy(a), torch.from_numpy(b)
    x, y = (x.T if ta else x), (y.T if tb else y)
    return lambda: x @ y


def numpy_product(a, b, ta: bool, tb: bool):
    x, y = (a.T if ta else a), (b.T if tb else b)
    return lambda: x @ y


# One library after the other, TensorFlow first: OpenBLAS' and OpenMP's worker threads
# keep spinning for a while after their last call and would slow whoever runs next.
LIBRARIES = {"tensorflow": tensorflow_product, "torch": torch_product, "numpy": numpy_product}


def measure(repeats: int) -> dict:
    import torch

    torch.set_num_threads(2)
    results = {name: {"shape": list(shape[:3])} for name, shape in SHAPES.items()}
    for library, product in LIBRARIES.items():
        for name, shape in SHAPES.items():
            m, k, n, ta, tb = shape
            fn = product(*operands(*shape), ta, tb)
            results[name][f"{library}_gflops"] = 2 * m * k * n / 1e9 / best_seconds(fn, repeats)
        time.sleep(2)  # let this library's worker threads go to sleep
    for name, row in results.items():
        print(
            f"{name:20s} tensorflow {row['tensorflow_gflops']:5.0f}  torch "
            f"{row['torch_gflops']:5.0f}  numpy {row['numpy_gflops']:5.0f} GFLOP/s",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    emit({"env": recorded_env(), "shapes": measure(args.repeats)}, args.output)


if __name__ == "__main__":
    main()
