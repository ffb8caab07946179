"""mixed_float16 on 2 logical CPU replicas: an overflow on one replica skips the step on all.

Run as a script; prints JSON. Replica 1's half of the batch overflows float16 in the online
branch only (LayerNorm decoder, so nothing couples the replicas before the gradients).
"""

from __future__ import annotations

import json
import sys

from siameseim_tf.training.strategy import split_cpu

DEVICES = split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from siameseim_tf import SiameseIM  # noqa: E402
from tests.helpers import TINY, random_batch  # noqa: E402


def main(control: str = "none") -> dict:
    if control == "local_gradients":  # what Keras alone does: decide on local gradients
        SiameseIM._global_gradients = lambda self, grads: (grads, tf.linalg.global_norm(grads))
    keras.config.set_dtype_policy("mixed_float16")
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    with strategy.scope():
        model = SiameseIM(**dict(TINY, norm="layer"))
        model.compile(optimizer=keras.optimizers.SGD(0.1))  # wrapped in LossScaleOptimizer
        model.optimizer.build(model.trainable_variables)
    batch = random_batch(8, seed=0)
    batch["view1"][4:] *= 1e6  # replica 1's samples: inf in float16
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    scale_before = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return {
        "control": control,
        "optimizer": type(model.optimizer).__name__,
        "weights_unchanged": all(np.array_equal(a, b) for a, b in zip(before, after)),
        "weights_finite": all(np.isfinite(a).all() for a in after),
        "scale_before": scale_before,
        "scale_after": float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale)),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
