"""Micro-batcher semantics, and the serving stack importing without TensorFlow."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from siameseim_tf.serving.runtime import MicroBatcher
from tests.export.tiny import run_without_tensorflow


def _double(batch: np.ndarray) -> dict:
    return {"y": batch * 2}


def test_concurrent_submissions_share_model_calls():
    batcher = MicroBatcher(_double, max_batch=16, timeout_ms=50)

    async def main():
        inputs = [np.full((n, 1), k, np.float32) for k, n in enumerate([1, 3, 2, 1, 4])]
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        return inputs, results

    inputs, results = asyncio.run(main())
    for x, result in zip(inputs, results):
        np.testing.assert_array_equal(result["y"], x * 2)  # each gets its own rows back
    assert sum(batcher.batch_sizes) == 11 and len(batcher.batch_sizes) < 5


def test_batches_close_at_max_batch():
    batcher = MicroBatcher(_double, max_batch=4, timeout_ms=50)

    async def main():
        return await asyncio.gather(*(batcher.submit(np.ones((1, 1))) for _ in range(10)))

    assert len(asyncio.run(main())) == 10
    assert max(batcher.batch_sizes) <= 4 and sum(batcher.batch_sizes) == 10


def test_errors_reach_every_waiting_request():
    def broken(batch):
        raise RuntimeError("model failed")

    batcher = MicroBatcher(broken, max_batch=8, timeout_ms=20)

    async def main():
        return await asyncio.gather(
            *(batcher.submit(np.ones((1, 1))) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)


@pytest.mark.parametrize(
    "module", ["siameseim_tf.serving.server", "siameseim_tf.serving.app", "siameseim_tf.cli.serve"]
)
def test_serving_imports_without_tensorflow(module):
    result = run_without_tensorflow(f"import {module}\nprint('ok')")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_serve_cli_parses_without_tensorflow(tmp_path):
    result = run_without_tensorflow(
        "from siameseim_tf.cli import main\n"
        f"raise SystemExit(main(['serve', '--model', {str(tmp_path / 'missing.onnx')!r}]))"
    )
    assert result.returncode == 2
    assert "serve: error: model" in result.stderr and "does not exist" in result.stderr
