"""A tiny fine-tuning run for the distribution and kill tests.

``python -m tests.evaluation.finetune_run RUN [--replicas N] [--step-seconds S]``: fine-tunes
a seeded tiny encoder on seeded random labelled images (RandAugment and random erasing on,
mixup / cutmix and drop path off: their per-replica randomness is not meant to match one
device) and prints JSON with a checksum of the classifier's weights; with ``--dump`` the
weights go to RUN/weights.npz.
"""

from __future__ import annotations

import argparse
import json
import time

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--replicas", type=int, default=1)
parser.add_argument("--step-seconds", type=float, default=0.0)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()

devices = None
if args.replicas > 1:
    from siameseim_tf.training.strategy import split_cpu

    devices = split_cpu(args.replicas)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siameseim_tf.data import array_source  # noqa: E402
from siameseim_tf.evaluation.finetune import finetune  # noqa: E402
from siameseim_tf.models import ViTEncoder  # noqa: E402
from siameseim_tf.training.strategy import select_strategy  # noqa: E402

BATCH, IMAGES = 8, 24


class SlowSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(args.step_seconds)


rng = np.random.default_rng(0)
images = rng.integers(0, 255, (IMAGES, 40, 36, 3)).astype(np.uint8)
labels = rng.integers(0, 4, IMAGES)
keras.utils.set_random_seed(1)
encoder = ViTEncoder(
    image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, trainable_patch_embed=False
)
model, metrics = finetune(
    encoder,
    array_source(images, "random", labels, ("a", "b", "c", "d")),
    args.run,
    test_source=array_source(images[:10], "random-test", labels[:10], ("a", "b", "c", "d")),
    total_steps=args.steps,
    global_batch_size=BATCH,
    base_lr=0.05,
    drop_path_rate=0.0,
    augmentation=dict(mixup_alpha=0.0, cutmix_alpha=0.0, crop_min=0.3),
    backup_every_steps=2,
    jit_compile=False,  # the same graph-mode step on 1 and 2 replicas
    strategy=select_strategy(devices=devices),
    verbose=1,
    extra_callbacks=[SlowSteps()] if args.step_seconds else None,
)
weights = [np.asarray(w, np.float64) for w in model.get_weights()]
np.savez(f"{args.run}/weights.npz", *weights)
print(
    json.dumps(
        dict(
            steps=int(model.optimizer.iterations.numpy()) if metrics else None,
            checksum=float(sum(np.abs(w).sum() for w in weights)),
            top1=metrics.get("top1"),
        )
    )
)
