"""The Keras-reuse example and the snippet of docs/keras_reuse.md run as written."""

from __future__ import annotations

import os
import re
import runpy

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_example_frozen_and_trainable():
    example = runpy.run_path(os.path.join(ROOT, "examples", "keras_reuse.py"))
    frozen = example["main"](trainable=False)
    assert frozen["head_changed"] and not frozen["encoder_changed"]
    trainable = example["main"](trainable=True)
    assert trainable["head_changed"] and trainable["encoder_changed"]
    assert np.isfinite(frozen["loss"]) and np.isfinite(trainable["loss"])


def test_docs_snippet(tiny_encoder, tmp_path, monkeypatch):
    with open(os.path.join(ROOT, "docs", "keras_reuse.md"), encoding="utf-8") as handle:
        snippet = re.search(r"```python\n(.*?)```", handle.read(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    tiny_encoder.save("encoder.keras")
    namespace: dict = {}
    exec(compile(snippet, "docs/keras_reuse.md", "exec"), namespace)  # noqa: S102
    model = namespace["model"]
    logits = model(np.zeros((2, 32, 32, 3), np.float32))
    assert tuple(logits.shape) == (2, 10)
    assert not namespace["encoder"].trainable
