"""The pretraining methods in one table: which model class and which input pipeline each
uses, and what only it supports. Everything that switches on ``method`` asks here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A pretraining method; classes and builders are named, imported when used."""

    name: str
    model: str  # "module:Class"
    dataset: str  # "module:function" building the (per-pipeline) training stream
    color_option: bool  # the views have colour augmentations that color=False turns off
    warn_below_steps: int  # fewer steps than this stay at random-init quality here

    @staticmethod
    def _load(target: str):
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)

    def model_class(self):
        return self._load(self.model)

    def dataset_builder(self):
        return self._load(self.dataset)


METHODS: dict[str, Method] = {
    "siameseim": Method(
        "siameseim",
        "siameseim_tf.models.siameseim:SiameseIM",
        "siameseim_tf.data.pipeline:build_pretraining_dataset",
        color_option=True,
        warn_below_steps=500,  # docs/small_scale.md
    ),
    "mae": Method(
        "mae",
        "siameseim_tf.models.mae:MAE",
        "siameseim_tf.training.mae_data:build_mae_dataset",
        color_option=False,
        warn_below_steps=0,
    ),
}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; ValueError naming the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {name!r}")
    return METHODS[name]
