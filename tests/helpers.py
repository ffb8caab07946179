"""Shared test helpers: tiny configurations and synthetic batches."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from siameseim_tf.configs.tiny import CONFIG as TINY_CONFIG
from siameseim_tf.configs.tiny import MAE_MODEL

from siameseim_tf.hardware import onednn_capped_below_native_bf16

# The one tiny configuration (configs/tiny.py); tests choose clipping themselves.
TINY = {k: v for k, v in TINY_CONFIG["model"].items() if k != "clip_grad_norm"}
TINY_MAE = dict(MAE_MODEL)

# For tests that run TensorFlow's bfloat16 kernels: with oneDNN capped below the bf16 level
# of a CPU that has it (ONEDNN_MAX_CPU_ISA=AVX2, to emulate an older CPU) TensorFlow still
# asks oneDNN for bf16 primitives and aborts the process or fails to create them. An
# artefact of the cap: CPUs without bf16 emulate those kernels, and run these tests.
NEEDS_TF_BF16_KERNELS = pytest.mark.skipif(
    onednn_capped_below_native_bf16(),
    reason="oneDNN capped below this CPU's native bf16: TensorFlow's bf16 kernels abort or "
    "fail there (an artefact of the cap; real CPUs without bf16 run them)",
)


def random_batch(
    batch_size: int = 4,
    image_size: int = 32,
    patch_size: int = 8,
    num_masked: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A batch dict with exactly ``num_masked`` ones per mask row and plausible rel_pos."""
    rng = np.random.default_rng(seed)
    num_patches = (image_size // patch_size) ** 2
    mask = np.zeros((batch_size, num_patches), "float32")
    for row in mask:
        row[rng.choice(num_patches, num_masked, replace=False)] = 1.0
    b = batch_size
    rel_pos = np.stack(
        [
            rng.uniform(-0.3, 0.3, b),
            rng.uniform(-0.3, 0.3, b),
            rng.uniform(0.5, 1.5, b),
            rng.uniform(0.5, 1.5, b),
            rng.integers(0, 2, b),
            rng.uniform(0.0, 2.0, b),
        ],
        axis=1,
    )
    shape = (batch_size, image_size, image_size, 3)
    return {
        "view1": rng.normal(size=shape).astype("float32"),
        "view2": rng.normal(size=shape).astype("float32"),
        "rel_pos": rel_pos.astype("float32"),
        "mask": mask,
    }


def run_layer_test(layer_cls, init_kwargs: dict, input_shape: tuple, expected_shape: tuple):
    """The shared layer check (keras-hub's ``run_layer_test`` pattern): build and call
    ``layer_cls(**init_kwargs)`` on seeded inputs, check the output shape, that training
    and inference calls run, then ``get_config`` -> ``from_config`` and a ``.keras`` round
    trip inside a functional model give the same outputs with the same weights."""
    import tempfile

    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)
    # training first: it may update statistics that the inference outputs then use
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(layer(x, training=True))))
    y = keras.ops.convert_to_numpy(layer(x, training=False))
    assert y.shape == expected_shape, (y.shape, expected_shape)
    clone = layer_cls.from_config(layer.get_config())
    clone.build(input_shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y, atol=1e-6)
    inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
    model = keras.Model(inputs, layer(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/layer.keras")
        loaded = keras.saving.load_model(f"{tmp}/layer.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), y, atol=1e-6)
    return layer


def run_module(module: str, *args: str) -> dict:
    """Runs ``python -m module args`` from the repository root (a fresh interpreter, e.g. to
    split the CPU before TensorFlow starts); returns the JSON of its last output line."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_ports(count: int) -> list[str]:
    """Distinct free loopback ports (all held open while picking, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [str(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def loopback_tf_config(ports: list[str], index: int) -> str:
    """TF_CONFIG of worker ``index`` in a cluster of workers on 127.0.0.1 ``ports``."""
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def native_skip_reason() -> str | None:
    """Why the C++ kernels cannot be expected to build here (no compiler, or switched off
    with ``SIAMESEIM_NATIVE=0``), or None: the builder's own answer."""
    from siameseim_tf.native_build import unavailable_reason

    return unavailable_reason()
