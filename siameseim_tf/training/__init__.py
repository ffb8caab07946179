"""Training: schedules, optimizer, callbacks, strategy selection and the fit driver."""

from siameseim_tf.models.metrics import LastValue
from siameseim_tf.models.momentum import momentum_at
from siameseim_tf.training.optimizer import AdamW, make_optimizer
from siameseim_tf.training.schedules import WarmupCosine, scaled_learning_rate

__all__ = [
    "AdamW",
    "LastValue",
    "WarmupCosine",
    "make_optimizer",
    "momentum_at",
    "scaled_learning_rate",
]
