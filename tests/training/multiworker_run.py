"""One worker of a 2-process MultiWorkerMirroredStrategy pretraining run on 127.0.0.1.

Usage: python -m tests.training.multiworker_run PORT0 PORT1 INDEX OUTPUT_DIR [kill-test]
Prints JSON (loss history, a checksum of the online weights, steps) when done.
``kill-test``: 4 epochs, a checkpoint every step, steps slowed to ~0.3 s (kills land
inside training).
"""

from __future__ import annotations

import json
import os
import sys

from tests.helpers import loopback_tf_config

port0, port1, index, output = sys.argv[1:5]
KILL_TEST = sys.argv[5:] == ["kill-test"]
os.environ["TF_CONFIG"] = loopback_tf_config([port0, port1], int(index))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siameseim_tf.data import array_source  # noqa: E402
from siameseim_tf.training.pretrain import pretrain  # noqa: E402
from tests.helpers import TINY  # noqa: E402


class SlowSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        __import__("time").sleep(0.3)


def main() -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(64, 40, 40, 3), dtype=np.uint8)
    model, history = pretrain(
        array_source(images),
        output,
        model_args=dict(TINY),
        epochs=4 if KILL_TEST else 2,
        global_batch_size=16,
        warmup_epochs=1,
        verbose=0,
        seed=0,
        backup_every_steps=1 if KILL_TEST else 0,
        extra_callbacks=[SlowSteps()] if KILL_TEST else None,
    )
    weights = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return {
        "worker": int(index),
        "loss": history.history["loss"],
        "checksum": float(sum(np.abs(w).sum() for w in weights)),
        "replicas": int(model.distribute_strategy.num_replicas_in_sync),
        "steps": int(model.optimizer.iterations.numpy()),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
