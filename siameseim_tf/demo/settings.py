"""Demo settings: a pretraining recipe (``CONFIG``) plus the demo's own ``DEMO`` dict, both
in ``configs/cpu_demo.py`` (``configs/cpu_demo_quick.py`` for ``--quick``)."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

FULL_RECIPE = "cpu_demo"
QUICK_RECIPE = "cpu_demo_quick"


@dataclass
class DemoSettings:
    """Everything the demo does besides pretraining.

    Attributes:
        pretrain_limit: pretrain on the first N training images (None: all).
        eval_train_limit, eval_test_limit: seeded random subsets for evaluation (None: all).
        linear_epochs, linear_batch_size: linear probe (method: 90 epochs; fewer here).
        budget_minutes: wall-clock cap on pretraining (a safety net; the recipe's epochs
            are sized to finish before it).
        embedding_points: test points drawn in the 2-D projection.
        projection: "tsne" or "pca".
        retrieval_queries, retrieval_neighbours: rows and columns of the retrieval grid.
        export: write SavedModel + ONNX (with their parity checks).
    """

    pretrain_limit: int | None = None
    eval_train_limit: int | None = None
    eval_test_limit: int | None = None
    linear_epochs: int = 30
    linear_batch_size: int = 1024
    budget_minutes: float | None = None
    embedding_points: int = 2000
    projection: str = "tsne"
    retrieval_queries: int = 8
    retrieval_neighbours: int = 8
    export: bool = True


def _recipe_module(name: str):
    from siameseim_tf.recipes import _recipe_path

    path = _recipe_path(name)
    spec = importlib.util.spec_from_file_location(f"siameseim_demo_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_demo_recipe(
    name: str | None = None, quick: bool = False, overrides: list[str] | tuple = ()
) -> tuple[dict, DemoSettings]:
    """(validated pretraining recipe, DemoSettings) of ``name`` (default by ``quick``).

    Raises:
        siameseim_tf.recipes.RecipeError: unknown recipe, key or demo setting.
    """
    from siameseim_tf.recipes import RecipeError, load_recipe

    name = name or (QUICK_RECIPE if quick else FULL_RECIPE)
    config = load_recipe(name, overrides)
    demo = dict(getattr(_recipe_module(name), "DEMO", {}))
    known = {f.name for f in dataclasses.fields(DemoSettings)}
    if unknown := set(demo) - known:
        raise RecipeError(
            f"{name}: unknown DEMO keys {sorted(unknown)}; accepted: {', '.join(sorted(known))}"
        )
    return config, DemoSettings(**demo)
