"""Global-norm clipping of the all-reduced gradient, shared by every pretraining model.

TF-NOTES: Keras' ``clipnorm`` / ``global_clipnorm`` act on each replica's partial gradient
and a loss-scale optimizer decides "finite?" from replica 0's local gradients. Models
therefore all-reduce the gradients themselves, clip the *global* norm and hand the
optimizer gradients pre-divided by the replica count (the optimizer sums them again).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def global_gradients(
    grads: list, optimizer: keras.optimizers.Optimizer, clip_grad_norm: float | None = None
) -> tuple[list, tf.Tensor]:
    """All-reduces, clips the *global* norm, and pre-divides for the optimizer's sum.

    Call it in replica context (inside ``train_step``); with no strategy it only clips.
    Because every replica then holds the same gradients, a loss-scale optimizer's finite
    check is the same decision on every replica.

    Args:
        grads: per-replica gradients of ``optimizer.scale_loss(loss / replicas)``.
        optimizer: the model's optimizer; its ``dynamic_scale`` (if any) is divided out of
            the reported norm and the clipping threshold.
        clip_grad_norm: maximum global norm of the true gradient, or None (no clipping).

    Returns:
        (float32 gradients to pass to ``optimizer.apply``, unscaled global norm []).

    Example:
    >>> grads = [tf.constant([3.0]), tf.constant([4.0])]
    >>> clipped, norm = global_gradients(grads, keras.optimizers.SGD(), clip_grad_norm=1.0)
    >>> float(norm)  # clipped is [0.6], [0.8] (up to the 1e-6 of torch's formula)
    5.0
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas > 1:
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    loss_scale = getattr(optimizer, "dynamic_scale", None)
    loss_scale = 1.0 if loss_scale is None else ops.cast(loss_scale, "float32")
    grads = [ops.cast(g, "float32") for g in grads]
    norm = tf.linalg.global_norm(grads) / loss_scale  # norm of the true gradient
    if clip_grad_norm is not None:
        factor = ops.minimum(1.0, clip_grad_norm / (norm + 1e-6))  # as torch
        grads = [g * factor for g in grads]
    if replicas > 1:
        grads = [g / replicas for g in grads]
    return grads, norm


class GlobalGradientsMixin:
    """``self._global_gradients(grads)`` for a ``keras.Model`` with ``clip_grad_norm``.

    Kept as an overridable method so tests can swap in Keras' local behaviour (negative
    controls). See :func:`global_gradients`.
    """

    clip_grad_norm: float | None = None

    def _global_gradients(self, grads):
        return global_gradients(grads, self.optimizer, self.clip_grad_norm)
