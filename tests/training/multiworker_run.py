"""One worker of a 2-process MultiWorkerMirroredStrategy pretraining run on 127.0.0.1.

Usage: python -m tests.training.multiworker_run PORT0 PORT1 INDEX OUTPUT_DIR
Prints JSON (loss history, a checksum of the online weights) when done.
"""

from __future__ import annotations

import json
import os
import sys

port0, port1, index, output = sys.argv[1:5]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
        "task": {"type": "worker", "index": int(index)},
    }
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siameseim_tf.data import array_source  # noqa: E402
from siameseim_tf.training.pretrain import pretrain  # noqa: E402
from tests.helpers import TINY  # noqa: E402


def main() -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(64, 40, 40, 3), dtype=np.uint8)
    model, history = pretrain(
        array_source(images),
        output,
        model_args=dict(TINY),
        epochs=2,
        global_batch_size=16,
        warmup_epochs=1,
        verbose=0,
    )
    weights = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return {
        "worker": int(index),
        "loss": history.history["loss"],
        "checksum": float(sum(np.abs(w).sum() for w in weights)),
        "replicas": int(model.distribute_strategy.num_replicas_in_sync),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
