"""AdamW of method §6: betas (0.9, 0.95), weight decay only on weights of rank >= 2."""

from __future__ import annotations

import keras

from siameseim_tf.training.schedules import WarmupCosine, scaled_learning_rate


@keras.saving.register_keras_serializable(package="siameseim_tf")
class AdamW(keras.optimizers.AdamW):
    """Keras AdamW that never decays biases or 1-D weights (norm scales and offsets).

    The rule is structural, so it survives saving and reloading (unlike a variable list).
    Decay is decoupled as in PyTorch: ``w -= lr * weight_decay * w``.
    """

    def _use_weight_decay(self, variable):
        if len(variable.shape) <= 1:
            return False
        return super()._use_weight_decay(variable)


def make_optimizer(
    base_lr: float,
    global_batch_size: int,
    steps_per_epoch: int,
    epochs: float,
    warmup_epochs: float,
    weight_decay: float = 0.05,
    beta_2: float = 0.95,
    min_lr: float = 0.0,
) -> AdamW:
    """AdamW with lr = base_lr * global_batch / 256, linear warmup then per-step cosine."""
    total_steps = max(int(round(epochs * steps_per_epoch)), 1)
    warmup_steps = min(int(round(warmup_epochs * steps_per_epoch)), total_steps)
    schedule = WarmupCosine(
        scaled_learning_rate(base_lr, global_batch_size), warmup_steps, total_steps, min_lr
    )
    return AdamW(
        learning_rate=schedule, weight_decay=weight_decay, beta_1=0.9, beta_2=beta_2, epsilon=1e-8
    )
