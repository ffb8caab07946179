"""benchmarks/cpu_emulation: a masked process sees the older CPU's features, nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cpu_emulation.run import emulated_env

ROOT = Path(__file__).resolve().parents[1]
# avx2, fma, avx512f, avx512_vnni, avx straight from CPUID (leaf 1 ECX 12 / 28, leaf 7 EBX 5 /
# 16, ECX 11)
PROBE = r"""
#include <cpuid.h>
#include <stdio.h>
const char *features(void) {
  static char text[24];
  unsigned a, b, c, d, ecx1;
  __cpuid(1, a, b, ecx1, d);
  __cpuid_count(7, 0, a, b, c, d);
  snprintf(text, sizeof text, "%u %u %u %u %u", (b >> 5) & 1, (ecx1 >> 12) & 1, (b >> 16) & 1,
           (c >> 11) & 1, (ecx1 >> 28) & 1);
  return text;
}
int main(void) { puts(features()); return 0; }
"""


def _has_cpuid_faulting() -> bool:
    try:
        return "cpuid_fault" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(not _has_cpuid_faulting(), reason="no CPUID faulting on this CPU"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler"),
]


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.c").write_text(PROBE)
    subprocess.run(["cc", "-o", str(folder / "probe"), str(folder / "probe.c")], check=True)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(folder / "probe.so"), str(folder / "probe.c")],
        check=True,
    )
    return folder / "probe"


def _features(command: list[str], level: str | None) -> list[int]:
    env = emulated_env(level, os.environ) if level else dict(os.environ)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [int(v) for v in done.stdout.split()]


def test_avx2_mask_hides_avx512_and_keeps_avx2(probe):
    assert _features([str(probe)], "avx2") == [1, 1, 0, 0, 1]


def test_avx_mask_hides_avx2_and_fma(probe):
    assert _features([str(probe)], "avx") == [0, 0, 0, 0, 1]


def test_avx512_mask_keeps_avx512f_and_hides_vnni(probe):
    native = _features([str(probe)], None)
    if not native[2]:
        pytest.skip("this CPU has no AVX-512 to keep")
    assert _features([str(probe)], "avx512") == [1, 1, 1, 0, 1]


def test_python_faulthandler_is_chained_not_replacing_the_mask(probe):
    # faulthandler installs its own SIGSEGV handler (as pytest does); CPUID in the same
    # process must still be masked, and a real crash still reported by faulthandler
    code = (
        "import ctypes, faulthandler; faulthandler.enable(); "
        f"lib = ctypes.CDLL({str(probe) + '.so'!r}); lib.features.restype = ctypes.c_char_p; "
        "print(lib.features().decode())"
    )
    assert _features([sys.executable, "-c", code], "avx2") == [1, 1, 0, 0, 1]
    crash = "import ctypes, faulthandler; faulthandler.enable(); ctypes.string_at(0)"
    env = emulated_env("avx2", os.environ)
    done = subprocess.run([sys.executable, "-c", crash], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "Fatal Python error" in done.stderr
