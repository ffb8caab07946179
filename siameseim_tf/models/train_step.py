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

from siameseim_tf.layers.distributed import cross_replica_sum, num_replicas


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
    replicas = num_replicas()
    grads = cross_replica_sum(grads)
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


class DistributedTrainingMixin:
    """What a pretraining ``keras.Model`` with a custom train step needs under tf.distribute.

    - ``self._global_gradients(grads)``: see :func:`global_gradients`; a method so tests
      can swap in Keras' local behaviour (negative controls).
    - ``self._metric_logs()``: the train-step logs; under MultiWorkerMirroredStrategy with
      shape (1,), because Keras reduces them with ``axis=0`` there, which fails on scalars.
    - No symbolic build in ``fit``: these models build every weight in ``__init__`` and
      the driver builds the optimizer first, while Keras' build step calls
      ``strategy.reduce`` on the first (dict) batch, which fails under
      MultiWorkerMirroredStrategy (keras issue 20585).
    """

    clip_grad_norm: float | None = None

    def _global_gradients(self, grads):
        return global_gradients(grads, self.optimizer, self.clip_grad_norm)

    def _gradient_step(self, batch: dict, forward) -> tf.Tensor:
        """One optimizer step on ``compute_loss(batch, forward(batch))``; returns the loss.

        Updates the ``loss``, ``grad_norm`` and ``lr`` trackers the model defines.
        """
        variables = self.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=batch, y_pred=forward(batch))
            # The optimizer sums replicas' gradients: each contributes loss / replicas.
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
        grads, grad_norm = self._global_gradients(tape.gradient(scaled_loss, variables))
        self.lr_tracker.update_state(self.optimizer.learning_rate)  # the lr of this step
        self.optimizer.apply(grads, variables)
        self.loss_tracker.update_state(loss)
        self.grad_norm_tracker.update_state(grad_norm)
        return loss

    def test_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        loss = self.compute_loss(x=batch, y_pred=self(batch, training=False))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def _metric_logs(self) -> dict:
        logs = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
