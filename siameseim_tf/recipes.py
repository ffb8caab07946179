"""Recipes: small Python files in ``configs/`` holding one ``CONFIG`` dict each.

A recipe has three parts, and nothing below the entry point sees the recipe itself:
``method`` ("siameseim" or "mae"), ``model`` (a size ``preset`` plus constructor
overrides of the model) and ``train`` (keyword arguments of
:func:`siameseim_tf.training.pretrain.pretrain`). Overrides use dotted keys:
``train.epochs=10``, ``model.depth=6``.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import inspect
from pathlib import Path

TOP_LEVEL_KEYS = {"method", "model", "train"}


class RecipeError(ValueError):
    """A recipe that cannot be used: unknown file, key or value."""


def _recipe_directory() -> Path:
    import siameseim_tf.configs

    return Path(siameseim_tf.configs.__file__).parent


def available_recipes() -> list[str]:
    return sorted(p.stem for p in _recipe_directory().glob("*.py") if not p.stem.startswith("_"))


def _recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".py":
        if not path.is_file():
            raise RecipeError(f"config file not found: {path}")
        return path
    candidate = _recipe_directory() / f"{name_or_path}.py"
    if candidate.is_file() and not name_or_path.startswith("_"):
        return candidate
    raise RecipeError(
        f"unknown config {name_or_path!r}; available: "
        f"{', '.join(available_recipes())} (or a path to a .py file)"
    )


def load_recipe(name_or_path: str, overrides: list[str] | tuple = ()) -> dict:
    """The validated ``CONFIG`` of a recipe name (``vit_base_1600ep``) or ``.py`` path."""
    path = _recipe_path(name_or_path)
    spec = importlib.util.spec_from_file_location(f"siameseim_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not isinstance(getattr(module, "CONFIG", None), dict):
        raise RecipeError(f"{path} defines no CONFIG dict")
    config = copy.deepcopy(module.CONFIG)
    for item in overrides:
        apply_override(config, item)
    validate(config, str(path))
    return config


def apply_override(config: dict, item: str) -> None:
    """``section.key=value``; the value is a Python literal, else a string."""
    key, sep, raw = item.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or section not in ("model", "train"):
        raise RecipeError(f"override {item!r} must look like model.KEY=VALUE or train.KEY=VALUE")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    config.setdefault(section, {})[name] = value


def validate(config: dict, where: str) -> None:
    """Unknown keys are errors, named with the accepted ones."""
    from siameseim_tf.models.vit import VIT_PRESETS
    from siameseim_tf.training.pretrain import METHODS, pretrain

    if unknown := set(config) - TOP_LEVEL_KEYS:
        raise RecipeError(
            f"{where}: unknown top-level keys {sorted(unknown)}; allowed {sorted(TOP_LEVEL_KEYS)}"
        )
    method = config.get("method", "siameseim")
    if method == "finetune":
        return _validate_finetune(config, where)
    if method not in METHODS:
        raise RecipeError(f"{where}: method must be one of {METHODS}, got {method!r}")
    model = dict(config.get("model", {}))
    preset = model.pop("preset", None)
    if preset is not None and preset not in VIT_PRESETS:
        raise RecipeError(
            f"{where}: unknown preset {preset!r}; choose from {', '.join(VIT_PRESETS)}"
        )
    signature = inspect.signature(model_class_for(method).__init__)
    accepted = set(signature.parameters) - {"self", "kwargs"}
    if unknown := set(model) - accepted:
        raise RecipeError(
            f"{where}: unknown model keys {sorted(unknown)} for {method}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    train_accepted = set(inspect.signature(pretrain).parameters) - {
        "source",
        "output_dir",
        "method",
        "model_args",
        "strategy",
        "extra_callbacks",
    }
    if unknown := set(config.get("train", {})) - train_accepted:
        raise RecipeError(
            f"{where}: unknown train keys {sorted(unknown)}; "
            f"accepted: {', '.join(sorted(train_accepted))}"
        )


FINETUNE_DRIVER_ARGS = {"encoder", "train_source", "output_dir", "test_source", "strategy"}


def _validate_finetune(config: dict, where: str) -> None:
    """A fine-tuning recipe: ``train`` holds keyword arguments of
    :func:`siameseim_tf.evaluation.finetune.finetune`; the model is the checkpoint's."""
    from siameseim_tf.evaluation.finetune import finetune

    if config.get("model"):
        raise RecipeError(f"{where}: a finetune recipe takes its model from --checkpoint")
    accepted = set(inspect.signature(finetune).parameters) - FINETUNE_DRIVER_ARGS
    if unknown := set(config.get("train", {})) - accepted:
        raise RecipeError(
            f"{where}: unknown train keys {sorted(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )


def is_finetune(config: dict) -> bool:
    return config.get("method") == "finetune"


def model_class_for(method: str):
    from siameseim_tf.training.methods import get_method

    return get_method(method).model_class()


def model_arguments(config: dict) -> dict:
    """Constructor arguments: the preset's sizes, then the recipe's own keys."""
    from siameseim_tf.models.vit import VIT_PRESETS

    model = dict(config.get("model", {}))
    preset = model.pop("preset", None)
    return {**(VIT_PRESETS[preset] if preset else {}), **model}


def switch_method(config: dict, method: str) -> dict:
    """The same recipe trained with another method: model keys the new one lacks go.

    E.g. ``--method mae`` on a SiameseIM recipe keeps the encoder, decoder width and
    clipping, and drops UniGrad / momentum / masking-count keys.
    """
    config = copy.deepcopy(config)
    accepted = set(inspect.signature(model_class_for(method).__init__).parameters)
    config["model"] = {
        k: v for k, v in config.get("model", {}).items() if k == "preset" or k in accepted
    }
    config["method"] = method
    return config
