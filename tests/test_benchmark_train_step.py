"""benchmarks/train_step.py's "keras_auto" variant is what training picks on this machine."""

from __future__ import annotations

import ctypes
import re
import shutil

import pytest

from benchmarks.intel_mkl import baseline_vendor, mkl_code_path, torch_env
from benchmarks.train_step import TORCH_BASELINES, VARIANTS, peak_dtype, resolve_variant
from siameseim_tf.hardware import resolve_precision, xla_suits


def test_auto_variant_resolves_as_training_does():
    framework, precision, xla = resolve_variant("keras_auto")
    assert framework == "keras" and precision == resolve_precision("auto")[0]
    assert xla == xla_suits(precision)
    assert peak_dtype("keras_auto") == ("bfloat16" if "bfloat16" in precision else "float32")


def test_fixed_variants_resolve_to_themselves():
    for name in ("keras", "keras_xla", "keras_bf16", "torch"):
        assert resolve_variant(name) == VARIANTS[name]


@pytest.mark.parametrize("name, vendor", [("torch_intel_mkl", "intel"), ("torch_amd_mkl", "amd")])
def test_mkl_vendor_variants_are_float32_torch_baselines(name, vendor):
    assert VARIANTS[name] == ("torch", "float32", False)
    assert name in TORCH_BASELINES
    assert baseline_vendor(name) == vendor
    assert baseline_vendor("torch") == baseline_vendor("torch_lean") == "stock"


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no cc")
@pytest.mark.parametrize("vendor, answer", [("intel", 1), ("amd", 0)])
def test_mkl_vendor_shim_is_preloaded_and_answers(vendor, answer, tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESEIM_CACHE", str(tmp_path))
    env = torch_env(vendor, {"LD_PRELOAD": "/already/there.so"})
    shim = env["LD_PRELOAD"].split()[0]
    assert env["LD_PRELOAD"].split()[1:] == ["/already/there.so"]  # kept, after the shim
    library = ctypes.CDLL(shim)
    assert library.mkl_serv_intel_cpu_true() == answer and library.mkl_serv_intel_cpu() == answer
    assert "LD_PRELOAD" not in torch_env("stock", {})


def test_unknown_mkl_vendor_is_refused():
    with pytest.raises(ValueError, match="vendor must be one of"):
        torch_env("arm", {})


@pytest.mark.slow
def test_mkl_takes_a_vector_path_with_the_shim():
    """On any x86-64 that PyTorch's MKL knows, the shim gives a named ISA path, not the
    generic one; on Intel CPUs it is the path MKL takes anyway. (The path names the widest
    instructions MKL has kernels for: AVX-512 or AVX2, and SSE4.2 on an AVX-only CPU, for
    which this MKL has no path of its own.)"""
    pytest.importorskip("torch")
    stock, shimmed = mkl_code_path(torch_env("stock")), mkl_code_path(torch_env("intel"))
    if stock == "unknown":
        pytest.skip("this PyTorch build does not report an MKL code path")
    assert shimmed != "Intel(R) Architecture processors"  # the generic path
    assert re.match(r"Intel\(R\) [\w .]+ \(Intel\(R\) (AVX|SSE)[-\w.]*\)", shimmed), shimmed
    if "GenuineIntel" in open("/proc/cpuinfo").read():
        assert stock == shimmed


@pytest.mark.slow
def test_mkl_takes_the_generic_path_when_told_not_intel():
    """The "amd" shim gives any CPU the generic path MKL takes on AMD CPUs."""
    pytest.importorskip("torch")
    if mkl_code_path(torch_env("stock")) == "unknown":
        pytest.skip("this PyTorch build does not report an MKL code path")
    assert mkl_code_path(torch_env("amd")) == "Intel(R) Architecture processors"


@pytest.mark.parametrize("lean", [False, True])
def test_torch_step_does_the_authors_momentum_update(lean):
    torch = pytest.importorskip("torch")
    from benchmarks.train_step import TORCH_MOMENTUM, torch_step
    from tests.helpers import TINY

    step = torch_step(TINY, 4, lean=lean)
    model = step.model
    assert all(b.attn.subtract_max == (not lean) for b in model.blocks)
    with torch.no_grad():  # make the branches differ, as after some training
        model.blocks[0].attn.qkv.weight.add_(1.0)
    online = model.blocks[0].attn.qkv.weight.detach().clone()
    target = model.mm_blocks[0].attn.qkv.weight.detach().clone()
    step()
    expected = TORCH_MOMENTUM * target + (1 - TORCH_MOMENTUM) * online
    assert torch.allclose(model.mm_blocks[0].attn.qkv.weight, expected, atol=1e-6)
    assert not torch.allclose(model.blocks[0].attn.qkv.weight, online)  # the optimizer ran


def test_lean_variant_is_a_float32_torch_baseline():
    assert VARIANTS["torch_lean"] == ("torch", "float32", False)
    assert "torch_lean" in TORCH_BASELINES
