"""The target branch's momentum schedule of method §6, a pure function."""

from __future__ import annotations

import math

from keras import ops


def momentum_at(progress, base_momentum: float = 0.995):
    """m(t) = 1 - (1 - m0) * (1 + cos(pi * t / T)) / 2; ``progress`` = t / T in [0, 1].

    Works on Python floats, numpy arrays and tensors.
    """
    if isinstance(progress, (int, float)):
        return 1.0 - (1.0 - base_momentum) * (1.0 + math.cos(math.pi * progress)) / 2.0
    return 1.0 - (1.0 - base_momentum) * (1.0 + ops.cos(math.pi * progress)) / 2.0


def update_ema(pairs, momentum) -> None:
    """target <- m * target + (1 - m) * online for every (target, online) variable pair
    (lightly's ``update_momentum``): m = 1 keeps the target, m = 0 copies the online."""
    for target, online in pairs:
        target.assign(momentum * target + (1.0 - momentum) * online)
