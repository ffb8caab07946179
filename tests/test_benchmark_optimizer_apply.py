"""benchmarks/optimizer_apply.py compares like with like: both optimizers give the same
weights (the fused kernel against Keras' element-wise Adam ops)."""

import keras
import numpy as np
import tensorflow as tf

from benchmarks.optimizer_apply import KerasOpsAdamW, _compiled_apply
from siameseim_tf.training import AdamW


def test_fused_and_keras_ops_give_the_same_weights():
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (5,), (2, 3, 4)]
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [tf.constant(rng.normal(size=s).astype("float32")) for s in shapes]
    results = []
    for cls in (AdamW, KerasOpsAdamW):
        variables = [keras.Variable(w) for w in start]
        optimizer = cls(learning_rate=0.01, weight_decay=0.05, beta_2=0.95)
        optimizer.build(variables)
        apply = _compiled_apply(optimizer, grads, variables)
        for _ in range(3):
            apply()
        results.append([v.numpy() for v in variables])
    for fused, keras_ops, w in zip(*results, start):
        assert np.max(np.abs(fused - w)) > 1e-3  # the weights moved
        np.testing.assert_allclose(fused, keras_ops, rtol=1e-5, atol=1e-7)
