"""The Fashion-MNIST demo: pretrain a small ViT with SiameseIM on CPU, evaluate it against
its random-init self and raw pixels, export it and draw a report (``siameseim demo``).

Names are imported lazily so that importing this package does not load TensorFlow.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_demo": "runner",
    "DemoSettings": "settings",
    "load_demo_recipe": "settings",
    "TimeBudget": "callbacks",
    "LossRecorder": "callbacks",
    "evaluate_features": "compare",
    "results_table": "compare",
    "draw_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
