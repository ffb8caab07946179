"""The one home of the cross-replica reductions (lightly's ``utils/dist.py`` idea): sync
BatchNorm statistics, UniGrad's correlation matrix and the gradients all use these."""

from __future__ import annotations

import tensorflow as tf


def num_replicas() -> int:
    """Replicas of the current replica context (1 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def cross_replica_sum(values):
    """Sums a tensor (or a list of tensors) over the replicas; a no-op with one replica or
    outside replica context. Gradients flow through the all-reduce."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def cross_replica_mean(x):
    """Mean of ``x`` over the replicas (``x`` itself with one replica)."""
    return cross_replica_sum(x) / num_replicas() if num_replicas() > 1 else x
