"""Trains the same tiny SiameseIM on one device and on 2 logical CPU replicas.

Run as a script (the CPU must be split before TensorFlow initialises); prints JSON with
the largest absolute differences of online weights, target weights and BatchNorm
statistics after a few SGD steps on the same global batches.
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
from siameseim_tf.layers.transformer import configure_blocks  # noqa: E402
from siameseim_tf.training.callbacks import MomentumSchedule  # noqa: E402
from tests.helpers import TINY, random_batch  # noqa: E402

STEPS, GLOBAL_BATCH = 3, 8


def train(strategy, initial_weights, policy, xla_blocks=False, fused=False):
    """``fused``: graph mode with the fused kernels (the bf16-on-CPU path)."""
    keras.config.set_dtype_policy(policy)
    with strategy.scope():
        model = SiameseIM(**TINY, base_momentum=0.9, clip_grad_norm=0.5)
        configure_blocks(model, xla_per_replica=xla_blocks, fused_kernels=fused)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        compile_options = {"jit_compile": False} if fused else {}
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), **compile_options)
        model.optimizer.build(model.trainable_variables)
    start = [np.array(w) for w in model.get_weights()]
    batches = [random_batch(GLOBAL_BATCH, seed=s) for s in range(STEPS)]
    dataset = tf.data.Dataset.from_tensor_slices(
        {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    ).batch(GLOBAL_BATCH)
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=[MomentumSchedule(STEPS * 2)])
    return start, model, history.history


def groups(model):
    """Named groups of weights whose agreement the test reports."""
    online = [v for v in model.trainable_variables]
    target = [t for t, _ in model.momentum_pairs()]
    stats = [v for v in model.weights if v.name in ("moving_mean", "moving_variance")]
    return {"online": online, "target": target, "batchnorm_statistics": stats}


def apply_control(control: str) -> None:
    """Negative controls: break one cross-replica statistic to show the check can fail."""
    from siameseim_tf.layers import norms
    from siameseim_tf.models import siameseim

    if control == "local_correlation":
        loss = siameseim.unigrad_loss
        siameseim.unigrad_loss = lambda p, t, w: loss(p, t, w, cross_replica=False)
    elif control == "local_batchnorm":
        norms.cross_replica_sum = lambda values: values
    elif control != "none":
        raise ValueError(f"unknown control {control!r}")


def main(policy: str = "float32", control: str = "none", mode: str = "graph") -> dict:
    """``mode`` "xla_blocks": the 2-replica run XLA-compiles its transformer blocks;
    "fused": both runs in graph mode with the fused kernels."""
    apply_control(control)
    fused = mode == "fused"
    start, single, single_history = train(tf.distribute.get_strategy(), None, policy, fused=fused)
    mirrored_strategy = tf.distribute.MirroredStrategy(DEVICES)
    _, mirrored, mirrored_history = train(
        mirrored_strategy, start, policy, xla_blocks=mode == "xla_blocks", fused=fused
    )
    report = {"replicas": 2, "steps": STEPS, "policy": policy, "control": control, "mode": mode}
    initial = dict(zip([w.path for w in single.weights], start))
    mirrored_groups = groups(mirrored)
    for name, variables in groups(single).items():
        values = [_numpy(v) for v in variables]
        others = [_numpy(v) for v in mirrored_groups[name]]
        report[f"{name}_max_abs_diff"] = _max_abs(values, others)
        report[f"{name}_max_abs_change"] = _max_abs(values, [initial[v.path] for v in variables])
    report["loss_single"] = single_history["loss"][-1]
    report["loss_mirrored"] = mirrored_history["loss"][-1]
    return report


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def _max_abs(first, second) -> float:
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second))


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
