"""AdamW's fused update under MirroredStrategy on 2 logical CPU replicas.

Run as a script (the CPU must be split before TensorFlow initialises); prints JSON with the
largest difference from the formula by hand (tests/training/test_optimizer.py) after a few
steps in which each replica holds half of every gradient.
"""

from __future__ import annotations

import json

from siameseim_tf.training.strategy import split_cpu

DEVICES = split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from siameseim_tf.training import AdamW  # noqa: E402
from tests.training.test_optimizer import B1, B2, EPS, LR, WD, _by_hand, _problem  # noqa: E402


def main() -> None:
    weights, grads = _problem(seed=1, steps=3)
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    with strategy.scope():
        variables = [keras.Variable(w) for w in weights]
        opt = AdamW(learning_rate=LR, weight_decay=WD, beta_1=B1, beta_2=B2, epsilon=EPS)
        opt.build(variables)

    @tf.function
    def step(grads):
        # The all-reduced sum of the two halves is the full gradient.
        strategy.run(lambda: opt.apply([g / 2 for g in grads], variables))

    for g in grads:
        step([tf.constant(x) for x in g])
    expected = _by_hand(weights, grads)
    diffs = [
        float(np.max(np.abs(tensor.numpy() - e)))
        for v, e in zip(variables, expected)
        for tensor in v.value.values  # every replica's copy
    ]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "max_abs_diff": max(diffs)}))


if __name__ == "__main__":
    main()
