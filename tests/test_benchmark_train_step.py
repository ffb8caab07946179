"""benchmarks/train_step.py's "keras_auto" variant is what training picks on this machine."""

from __future__ import annotations

from benchmarks.train_step import VARIANTS, peak_dtype, resolve_variant
from siameseim_tf.hardware import resolve_precision, xla_suits


def test_auto_variant_resolves_as_training_does():
    framework, precision, xla = resolve_variant("keras_auto")
    assert framework == "keras" and precision == resolve_precision("auto")[0]
    assert xla == xla_suits(precision)
    assert peak_dtype("keras_auto") == ("bfloat16" if "bfloat16" in precision else "float32")


def test_fixed_variants_resolve_to_themselves():
    for name in ("keras", "keras_xla", "keras_bf16", "torch"):
        assert resolve_variant(name) == VARIANTS[name]
