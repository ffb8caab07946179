"""The precision rule: decided from CPU flags and GPU compute capability, never silently."""

from __future__ import annotations

import pytest

from siameseim_tf import hardware
from siameseim_tf.training.run import xla_mode


@pytest.fixture
def machine(monkeypatch):
    """Sets the CPU flags, GPU capabilities and C++ kernels' availability the rule sees."""

    def set_machine(flags=(), gpus=(), bf16_speedup=None, kernels=True):
        monkeypatch.setenv("SIAMESEIM_NATIVE", "1" if kernels else "0")
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
        monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(hardware, "gpu_compute_capabilities", lambda: list(gpus))

        def measured_speedup():  # the calibration, only where the rule needs it
            assert bf16_speedup is not None, "bf16_matmul_speedup() measured where not needed"
            return bf16_speedup

        monkeypatch.setattr(hardware, "bf16_matmul_speedup", measured_speedup)

    return set_machine


@pytest.mark.parametrize(
    "flags, gpus, bf16_speedup, policy",
    [
        (("avx2", "fma"), (), None, "float32"),
        (("avx2", "avx512f", "avx512_vnni"), (), None, "float32"),
        (("avx2", "avx512f", "avx512_bf16"), (), 2.0, "mixed_bfloat16"),  # Zen 5: 1.9-2.1
        (("avx2", "avx512f", "avx512_bf16"), (), 1.5, "mixed_bfloat16"),
        (("avx2", "avx512f", "avx512_bf16"), (), 1.3, "float32"),
        (("avx2", "avx512f", "avx512_bf16"), (), 0.65, "float32"),  # Xeon capped below AMX
        (("avx2", "amx_tile", "amx_bf16"), (), None, "mixed_bfloat16"),
        (("avx2",), ((8, 0), (9, 0)), None, "mixed_bfloat16"),
        (("amx_bf16",), ((7, 5), (8, 6)), None, "mixed_float16"),
    ],
)
def test_auto_precision_follows_the_hardware(machine, flags, gpus, bf16_speedup, policy):
    machine(flags, gpus, bf16_speedup)
    chosen, why = hardware.resolve_precision("auto")
    assert chosen == policy and why.startswith("auto: ")


def test_explicit_precision_is_kept_and_a_wrong_one_refused(machine):
    machine(("amx_bf16",))
    assert hardware.resolve_precision("float32") == ("float32", "asked for")
    with pytest.raises(ValueError, match="bfloat16"):
        hardware.resolve_precision("bfloat16")


def test_bfloat16_on_a_cpu_trains_in_graph_mode(machine):
    class OneReplica:
        num_replicas_in_sync = 1

    machine(("amx_bf16",))
    assert xla_mode(None, OneReplica(), "mixed_bfloat16") == "off"
    assert xla_mode(True, OneReplica(), "mixed_bfloat16") == "step"  # asked for: kept
    assert xla_mode(None, OneReplica(), "float32") == "off"  # float32 on a CPU: graph too
    machine(("avx2",), ((8, 0),))
    assert xla_mode(None, OneReplica(), "mixed_bfloat16") == "step"


class Replicas:
    def __init__(self, count: int):
        self.num_replicas_in_sync = count


@pytest.mark.parametrize(
    "flags, cap, gpus, kernels, replicas, mode",
    [
        (("avx2", "fma"), None, (), True, 1, "off"),  # AVX2 masked: graph 1.20x XLA step
        (("avx2", "fma"), None, (), True, 2, "off"),  # XLA blocks 0.86x graph
        (("avx2", "fma"), None, (), False, 1, "off"),  # no C++ kernels: graph 1.09x XLA
        (("avx2", "avx512f", "amx_bf16"), None, (), True, 1, "off"),  # AVX-512: graph faster
        (("avx2", "avx512f"), None, (), False, 2, "off"),
        (("avx2", "avx512f"), "AVX2", (), False, 1, "off"),  # oneDNN capped at AVX2
        (("avx2", "avx512f"), None, ((8, 0),), True, 1, "step"),  # a GPU: XLA
        (("avx2", "avx512f"), None, ((8, 0),), True, 2, "blocks"),
    ],
)
def test_float32_uses_xla_where_it_measured_faster(
    machine, monkeypatch, flags, cap, gpus, kernels, replicas, mode
):
    machine(flags, gpus, kernels=kernels)
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert xla_mode(None, Replicas(replicas), "float32") == mode
    assert xla_mode(True, Replicas(replicas), "float32") != "off"  # asked for: kept
    assert xla_mode(False, Replicas(replicas), "float32") == "off"


@pytest.mark.parametrize(
    "cap, policy",
    [
        ("AVX2", "float32"),
        ("AVX512_CORE_VNNI", "float32"),
        ("avx512_core_bf16", "float32"),  # measured: 0.65x float32 on the capped Xeon
        ("AVX512_CORE_AMX", "mixed_bfloat16"),
        ("ALL", "mixed_bfloat16"),
    ],
)
def test_a_onednn_isa_cap_below_amx_means_measuring_or_float32(machine, monkeypatch, cap, policy):
    machine(("avx2", "avx512f", "avx512_bf16", "amx_bf16"), bf16_speedup=0.65)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    chosen, why = hardware.resolve_precision("auto")
    assert chosen == policy
    assert (cap.upper() in why) == (cap.upper() in ("AVX2", "AVX512_CORE_VNNI"))


def test_avx512_bf16_without_amx_says_what_it_measured(machine):
    machine(("avx2", "avx512f", "avx512_bf16"), bf16_speedup=1.234)
    chosen, why = hardware.resolve_precision("auto")
    assert chosen == "float32" and "1.23x" in why and "below 1.5x" in why
    assert not hardware.cpu_has_fast_bf16()


def test_the_bf16_calibration_measures_this_machine():
    # Both dtypes run on every x86-64 (bfloat16 emulated where it is not native); only the
    # ratio's sign of sanity is checked here, its value is this CPU's.
    if hardware.onednn_capped_below_native_bf16():  # e.g. ONEDNN_MAX_CPU_ISA=AVX2
        # TF would abort in a bf16 matmul there: the check refuses instead.
        with pytest.raises(RuntimeError, match="ONEDNN_MAX_CPU_ISA"):
            hardware.bf16_matmul_speedup.__wrapped__()
        return
    speedup = hardware.bf16_matmul_speedup.__wrapped__(shape=(256, 128, 256), rounds=2)
    assert 0.0 < speedup < 100.0


def test_cpu_flags_are_read_from_this_machine(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    hardware.cpu_flags.cache_clear()
    flags = hardware.cpu_flags()
    assert isinstance(flags, frozenset)
    assert hardware.cpu_has_fast_bf16() == ("amx_bf16" in flags)
