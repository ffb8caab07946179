"""Optimisation helpers for the trained protocols: LARS and AdamW with per-variable
learning-rate factors (layer-wise lr decay). The warmup + cosine schedule is the
pretraining one (:class:`siameseim_tf.training.schedules.WarmupCosine`): one class under
one registered name, so that a saved schedule always loads as what was saved."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops


class LARS(keras.optimizers.Optimizer):
    """LARS as in MAE's ``util/lars.py`` (method §7 linear probe).

    For variables with ndim > 1: d = g + wd * w, d *= trust * ||w|| / ||d|| (when both norms
    are > 0); 1-D variables (biases, norms) use d = g. Then mu = momentum * mu + d and
    w -= lr * mu.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
        lars_weight_decay: float = 0.0,
        name: str = "lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.trust_coefficient = momentum, trust_coefficient
        self.lars_weight_decay = lars_weight_decay

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momenta = [self.add_variable_from_reference(v, "momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        d = ops.cast(gradient, variable.dtype)
        if len(variable.shape) > 1:
            d = d + self.lars_weight_decay * variable
            w_norm, d_norm = ops.norm(ops.reshape(variable, (-1,))), ops.norm(ops.reshape(d, (-1,)))
            ratio = ops.where(
                (w_norm > 0) & (d_norm > 0),
                self.trust_coefficient * w_norm / ops.maximum(d_norm, 1e-12),
                1.0,
            )
            d = d * ratio
        mu = self._momenta[self._get_variable_index(variable)]
        self.assign(mu, self.momentum * mu + d)
        self.assign_sub(variable, lr * mu)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            trust_coefficient=self.trust_coefficient,
            lars_weight_decay=self.lars_weight_decay,
        )
        return config


class ScaledAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is multiplied per variable by ``lr_factor(variable)``.

    Used for layer-wise lr decay: Adam's step is invariant to the gradient's scale, so the
    factor must act on the learning rate — both on the Adam step and on the decoupled weight
    decay (PyTorch param groups with a scaled lr decay by lr_group * wd). The factors are
    looked up once in :meth:`build`; :meth:`lr_factor_of` exposes them for tests.
    Single-device only (no distribution-strategy merge of the weight decay).
    """

    def __init__(self, lr_factor: Callable[[keras.Variable], float], **kwargs):
        super().__init__(**kwargs)
        self._lr_factor_fn = lr_factor

    def build(self, variables):
        if self.built:
            return
        self._lr_factors = [float(self._lr_factor_fn(v)) for v in variables]
        super().build(variables)

    def lr_factor_of(self, variable) -> float:
        return self._lr_factors[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        factor = ops.cast(self.lr_factor_of(variable), variable.dtype)
        super().update_step(gradient, variable, ops.cast(learning_rate, variable.dtype) * factor)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype) * self.lr_factor_of(variable)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)
