"""Optimisation helpers for the trained protocols: LARS and AdamW with per-variable
learning-rate factors (layer-wise lr decay). The warmup + cosine schedule is the
pretraining one (:class:`siameseim_tf.training.schedules.WarmupCosine`): one class under
one registered name, so that a saved schedule always loads as what was saved."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from siameseim_tf.models.classifier import relative_path


@keras.saving.register_keras_serializable(package="siameseim_tf")
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


@keras.saving.register_keras_serializable(package="siameseim_tf")
class ScaledAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is multiplied per variable by ``lr_factor(variable)``.

    Used for layer-wise lr decay: Adam's step is invariant to the gradient's scale, so the
    factor must act on the learning rate — both on the Adam step and on the decoupled weight
    decay (PyTorch param groups with a scaled lr decay by lr_group * wd). The factors (and
    whether a variable is decayed) are looked up once in :meth:`build`; :meth:`lr_factor_of`
    exposes them for tests. The decay is applied inside :meth:`update_step`, the per-device
    update that distribution strategies run on every copy of a variable (Keras' own
    ``_apply_weight_decay`` would apply the unscaled lr).
    """

    def __init__(
        self,
        lr_factor: Callable[[keras.Variable], float] | None = None,
        lr_factors: list[float] | None = None,
        decayed: list[bool] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (lr_factor is None) == (lr_factors is None):
            raise ValueError("pass lr_factor (a function) or lr_factors (one per variable)")
        self._lr_factor_fn, self._lr_factors, self._decayed = lr_factor, lr_factors, decayed

    def build(self, variables):
        if self.built:
            return
        if self._lr_factor_fn is not None:
            self._lr_factors = [float(self._lr_factor_fn(v)) for v in variables]
        elif len(self._lr_factors) != len(variables):
            raise ValueError(f"{len(self._lr_factors)} lr factors for {len(variables)} variables")
        if self._decayed is None:
            self._decayed = [self._use_weight_decay(v) for v in variables]
        super().build(variables)

    def lr_factor_of(self, variable) -> float:
        return self._lr_factors[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype) * ops.cast(
            self._lr_factors[index], variable.dtype
        )
        if self.weight_decay and self._decayed[index]:
            # Decoupled decay with the current lr, before the Adam step (as AdamW.apply)
            variable.assign(variable - variable * ops.cast(self.weight_decay, variable.dtype) * lr)
        super().update_step(gradient, variable, lr)

    def _apply_weight_decay(self, variables):
        return  # applied per variable in update_step

    def get_config(self):
        # The factors in trainable-variable order: a loaded optimizer needs no function.
        config = super().get_config()
        return {**config, "lr_factors": self._lr_factors, "decayed": self._decayed}


# Layer-wise lr decay of fine-tuning (method §7) and the linear probe's LARS.


def layer_id(path: str, depth: int) -> int:
    """Layer of an encoder weight (relative path): 0 for the patch embedding / CLS / position
    embedding, k + 1 for block k, depth + 1 for everything else (norms, head)."""
    if path.startswith(("patch_embed/", "cls_token", "pos_embed")):
        return 0
    if path.startswith("blocks_"):
        return int(path.split("/", 1)[0].split("_")[1]) + 1
    return depth + 1


def layer_decay_factors(model, decay: float) -> dict[int, float]:
    """lr scale per trainable variable, keyed by ``id(variable)``: decay^(L + 1 - layer)."""
    depth = model.encoder.depth
    encoder_ids = {id(v): relative_path(v) for v in model.encoder.weights}
    return {
        id(v): decay ** (depth + 1 - layer_id(encoder_ids[id(v)], depth))
        if id(v) in encoder_ids
        else 1.0
        for v in model.trainable_variables
    }


def make_optimizer(
    model, schedule, weight_decay: float = 0.05, layer_decay: float = 0.65
) -> ScaledAdamW:
    """AdamW with layer-wise lr decay; no weight decay on 1-D weights and the CLS token."""
    factors = layer_decay_factors(model, layer_decay)
    optimizer = ScaledAdamW(
        lambda v: factors[id(v)],
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
    )
    cls_token = model.encoder.cls_token
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) <= 1 or v is cls_token]
    )
    return optimizer


def make_probe_optimizer(schedule, weight_decay: float, accumulation_steps: int):
    """LARS (method §7 linear probe: momentum 0.9, wd 0), optionally accumulating the
    gradients of ``accumulation_steps`` batches per update (a large effective batch)."""
    accumulate = accumulation_steps if accumulation_steps > 1 else None
    return LARS(schedule, lars_weight_decay=weight_decay, gradient_accumulation_steps=accumulate)
