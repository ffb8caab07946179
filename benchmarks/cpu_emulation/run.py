"""Runs a command as if on an older x86-64 CPU: every library sees the older CPU's features.

    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/train_step.py ...
    python benchmarks/cpu_emulation/run.py avx512 -- python -m pytest -q -m "not slow"

``avx``: an AVX CPU without AVX2, FMA, F16C or BMI (Sandy Bridge; TensorFlow 2.21's wheel
still runs there). ``avx2``: an AVX2 + FMA CPU without AVX-512, VNNI, bf16 or AMX (Haswell
to Alder Lake clients, AMD Zen 1-3). ``avx512``: a Skylake-SP / Cascade Lake server's
float32 features (AVX-512 F/CD/BW/DQ/VL; no bf16, AMX, VBMI or VNNI).

Two layers, both needed:
- the libraries' own caps (oneDNN, MKL, PyTorch's ATen, XLA's code generator, and this
  package's C++ kernels through ``SIAMESEIM_MARCH``), as earlier emulated runs used;
- ``cpuid_mask.c`` (LD_PRELOAD) for the libraries that ignore them and read CPUID
  themselves: XLA's dots run in YNNPACK, whose AVX-512 kernels ran under
  ``--xla_cpu_max_isa=AVX2`` (310 GFLOP/s on a [6304, 192] x [192, 768] dot, two cores of
  an Intel Xeon with AVX-512; 169 with the mask, oneDNN capped at AVX2 198).

Needs Linux CPUID faulting (the ``cpuid_fault`` flag in /proc/cpuinfo: Intel CPUs since
Ivy Bridge, and KVM guests on them) and a C compiler. The C++ kernels are cached apart
(``SIAMESEIM_CACHE``), as their cache key reads /proc/cpuinfo, which the mask does not
change. Timings are the newer CPU's cores running the older instruction set: clocks,
caches and memory stay the newer machine's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CAPS = {
    "avx": {
        "ONEDNN_MAX_CPU_ISA": "AVX",
        "MKL_ENABLE_INSTRUCTIONS": "AVX",
        "ATEN_CPU_CAPABILITY": "default",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX",
        "SIAMESEIM_MARCH": "sandybridge",
    },
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "SIAMESEIM_MARCH": "x86-64-v3",
    },
    "avx512": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ATEN_CPU_CAPABILITY": "avx512",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX512",
        "SIAMESEIM_MARCH": "skylake-avx512",
    },
}


def build_mask() -> Path:
    """Compiles cpuid_mask.c once per source version; returns the shared library."""
    source = HERE / "cpuid_mask.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    library = Path(tempfile.gettempdir()) / f"siameseim_cpuid_mask_{digest}.so"
    if not library.exists():
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        cc = os.environ.get("CC", "cc")
        subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(partial), str(source), "-ldl"], check=True
        )
        partial.replace(library)
    return library


def emulated_env(level: str, base: dict) -> dict:
    """``base`` with the caps of ``level`` and the CPUID mask preloaded."""
    with open("/proc/cpuinfo") as f:
        if "cpuid_fault" not in f.read():
            raise SystemExit("this CPU / kernel has no CPUID faulting (cpuid_fault); cannot mask")
    env = dict(base)
    for name, value in CAPS[level].items():
        if name == "XLA_FLAGS":
            value = f"{env.get('XLA_FLAGS', '')} {value}".strip()
        env[name] = value
    env["CPUID_MASK"] = level
    env["LD_PRELOAD"] = f"{build_mask()} {env.get('LD_PRELOAD', '')}".strip()
    cache = Path(tempfile.gettempdir()) / f"siameseim_cache_{level}"
    env.setdefault("SIAMESEIM_CACHE", str(cache))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("level", choices=sorted(CAPS))
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command ...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (... avx2 -- python script.py)")
    env = emulated_env(args.level, os.environ)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
