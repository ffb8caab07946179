"""A tiny pretraining run for the kill tests: ``python -m tests.training.kill_driver RUN
[--replicas 2]``. Steps are slowed to ~0.2 s so that kills land inside epochs; when the run
finishes, its weights go to RUN/weights.npz.
"""

from __future__ import annotations

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--replicas", type=int, default=1)
parser.add_argument("--step-seconds", type=float, default=0.2)
args = parser.parse_args()

devices = None
if args.replicas > 1:
    from siameseim_tf.training.strategy import split_cpu

    devices = split_cpu(args.replicas)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siameseim_tf.data import array_source  # noqa: E402
from siameseim_tf.training.pretrain import pretrain  # noqa: E402
from siameseim_tf.training.strategy import select_strategy  # noqa: E402
from tests.helpers import TINY  # noqa: E402

EPOCHS, STEPS_PER_EPOCH, BATCH = 5, 3, 8


class SlowSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(args.step_seconds)


images = np.random.default_rng(0).integers(0, 255, (BATCH * STEPS_PER_EPOCH, 36, 36, 3))
model, history = pretrain(
    array_source(images.astype(np.uint8)),
    args.run,
    model_args=dict(TINY),
    epochs=EPOCHS,
    global_batch_size=BATCH,
    warmup_epochs=1,
    backup_every_steps=2,
    seed=0,
    monitors=False,
    strategy=select_strategy(devices=devices) if devices else None,
    # 2 replicas: graph mode (the resume logic is the same in every XLA mode; this keeps
    # each restart's compile short).
    jit_compile=False if devices else None,
    extra_callbacks=[SlowSteps()],
)
if history is not None and (__import__("pathlib").Path(args.run) / "finished.json").exists():
    weights = {f"w{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights)}
    np.savez(f"{args.run}/weights.npz", steps=int(model.optimizer.iterations.numpy()), **weights)
sys.exit(0)
