"""Metrics for the custom train step."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="siameseim_tf")
class LastValue(keras.metrics.Metric):
    """Reports the most recent value (learning rate, momentum), not an epoch average.

    The value is identical on every replica, so the cross-replica aggregation is a mean.
    """

    def __init__(self, name: str = "last_value", dtype: str = "float32"):
        super().__init__(name=name, dtype=dtype)
        self.value = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="value", aggregation="mean"
        )

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.dtype))

    def result(self):
        return ops.convert_to_tensor(self.value)

    def reset_state(self):
        self.value.assign(0.0)
