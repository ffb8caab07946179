"""Which TensorFlow distributions are installed, and whether two of them collide.

``tensorflow``, ``tensorflow-cpu`` (and others) all install the same ``tensorflow/``
package directory; with two in one environment the last one installed overwrites the
other's files one by one, and what imports is a mix of both (the situation a GPU user
lands in after adding a package that declares ``tensorflow`` to an environment made with
``tensorflow-cpu``). The install extras ``tf``, ``gpu`` and ``cpu`` pick exactly one
(``scripts/extras_report.py`` checks what each resolves to); this module tells, at
start-up (``siameseim pretrain``, ``siameseim doctor``), when an environment holds two
anyway. Imports nothing of TensorFlow or of the rest of the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

# Distributions known to ship the `tensorflow/` package directory (a meta-package of the
# same name, e.g. `tensorflow` on Windows depending on `tensorflow-intel`, ships none of
# it and does not count: see :func:`colliding_tensorflows`).
TENSORFLOW_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tf-nightly",
    "tf-nightly-cpu",
)


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (``tensorflow_cpu`` -> ``tensorflow-cpu``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _installed() -> list[tuple[str, list[str]]]:
    """(name, files) of the installed TensorFlow distributions when there are two or more
    ([] otherwise: one cannot collide, and its record, 15 000 lines for TensorFlow, is not
    read)."""
    names = ((canonical(d.metadata["Name"] or ""), d) for d in metadata.distributions())
    found = [(name, d) for name, d in names if name in TENSORFLOW_DISTRIBUTIONS]
    if len(found) < 2:
        return []
    return [(name, [str(f) for f in d.files or []]) for name, d in found]


def colliding_tensorflows(installed: Iterable[tuple[str, list[str]]] | None = None) -> list[str]:
    """The distributions (sorted) that each put files into ``tensorflow/``, when there are
    two or more of them; [] when there is one or none. ``installed``: (name, files) pairs,
    by default this environment's."""
    shipping = set()
    for name, files in _installed() if installed is None else installed:
        if any(f.replace("\\", "/").startswith("tensorflow/") for f in files):
            shipping.add(canonical(name))
    return sorted(shipping) if len(shipping) > 1 else []


def tensorflow_collision_hint(
    installed: Iterable[tuple[str, list[str]]] | None = None,
) -> str | None:
    """A one-line warning with the fix when two TensorFlow distributions share this
    environment (:func:`colliding_tensorflows`), else None."""
    found = colliding_tensorflows(installed)
    if not found:
        return None
    return (
        f"{' and '.join(found)} are installed together and overwrite each other's files: "
        f"pip uninstall -y {' '.join(found)}, then install one: pip install "
        "'siameseim-tf[gpu]' (CUDA from pip), '[tf]' (your own CUDA) or '[cpu]'"
    )
