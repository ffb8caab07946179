"""PyTorch as it runs on an Intel CPU, on a non-Intel one: MKL's Intel code path.

PyTorch's CPU wheel multiplies float32 matrices with Intel MKL, which picks its kernels by
CPU vendor: on AMD it takes a generic path ("Intel(R) Architecture processors" in
``MKL_VERBOSE``) even where the CPU has AVX-512. On an AMD EPYC Zen 5 (two cores) that is
212 against 477 GFLOP/s at 2048^2 (results_matmul_peaks_intel_mkl_zen5_epyc.json), so the
authors' float32 step there is slower than it would be on an Intel CPU with the same
instruction set. For a like-for-like comparison the benchmarks can run PyTorch with MKL's
vendor check answered "Intel" (``LD_PRELOAD`` of a two-line library defining MKL's
``mkl_serv_intel_cpu_true`` and ``mkl_serv_intel_cpu``, a known workaround); on an Intel
CPU this changes nothing. The figures are reported beside the stock ones, never instead of
them: on AMD the stock figure is what a user of the authors' code gets.

The other answer, "not Intel", gives an Intel CPU the path MKL takes on AMD CPUs: the
``amd`` vendor of ``torch_env``. With this MKL its float32 GEMM is the generic path there
(SSE kernels: pytorch/builder#504 found them on a Ryzen 3700X; PyTorch's maintainers
recommend the "Intel" shim to AMD users in pytorch/builder#1245), so an Intel CPU made to
look like an AVX2 one (benchmarks/cpu_emulation) and told "not Intel" runs the authors'
code down the code path of an AVX2 AMD CPU (Zen 1-3); the cores stay Intel's.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# MKL asks both (measured: answering only the first leaves the generic path)
_SHIM_TEMPLATE = """int mkl_serv_intel_cpu_true(void) {{ return {answer}; }}
int mkl_serv_intel_cpu(void) {{ return {answer}; }}
"""
# what MKL's vendor check answers under each ``vendor`` of torch_env (None: not asked)
VENDOR_ANSWERS = {"stock": None, "intel": 1, "amd": 0}
# the benchmarks' PyTorch baselines that take another vendor's MKL code path
BASELINE_VENDORS = {"torch_intel_mkl": "intel", "torch_amd_mkl": "amd"}


def baseline_vendor(name: str) -> str:
    """The ``vendor`` of torch_env for the PyTorch baseline ``name`` ("stock" for most)."""
    return BASELINE_VENDORS.get(name, "stock")


def shim_library(answer: int = 1) -> Path:
    """The LD_PRELOAD library answering MKL's vendor check ``answer`` (1 Intel, 0 not), built
    once with the system compiler and cached; raises RuntimeError with the reason when it
    cannot be built."""
    shim_source = _SHIM_TEMPLATE.format(answer=int(answer))
    from siameseim_tf import native_build

    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("cannot build the MKL shim: no C compiler (cc, gcc) on PATH")
    folder = native_build.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(shim_source.encode()).hexdigest()[:8]
    target = folder / f"mkl_vendor_{digest}.so"
    if not target.exists():
        source = folder / f"mkl_vendor_{digest}.{os.getpid()}.c"
        source.write_text(shim_source)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", str(source), "-o", str(tmp)],
            capture_output=True,
            text=True,
        )
        source.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"cannot build the MKL shim: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)
    return target


def torch_env(vendor: str = "stock", base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) for a PyTorch process whose MKL takes
    ``vendor``'s code path: "stock" (this CPU's own), "intel" or "amd" (a shim preloaded)."""
    if vendor not in VENDOR_ANSWERS:
        raise ValueError(f"vendor must be one of {sorted(VENDOR_ANSWERS)}, got {vendor!r}")
    env = dict(os.environ if base is None else base)
    answer = VENDOR_ANSWERS[vendor]
    if answer is not None:
        shim = str(shim_library(answer))
        env["LD_PRELOAD"] = " ".join(filter(None, [shim, env.get("LD_PRELOAD")]))
    return env


_PROBE = "import torch; a = torch.ones(256, 256); a @ a"


def mkl_code_path(env: dict) -> str:
    """The code path MKL reports for a float32 GEMM in a PyTorch process under ``env``, e.g.
    "Intel(R) Architecture processors" (generic) or "Intel(R) Advanced Vector Extensions 512
    (Intel(R) AVX-512) ...", or "unknown" if MKL does not say."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=dict(env, MKL_VERBOSE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = re.search(r"for Intel\(R\) 64 architecture (.*?), Lnx", done.stdout + done.stderr)
    return found.group(1).strip() if found else "unknown"
