"""How fast one core multiplies right now: a loop of independent AVX2 FMAs, GFLOP/s.

On a virtual machine the host can slow the guest (other guests on its cores) without the
guest seeing any load of its own; the train-step ratios in docs/speed.md moved with it
(the authors' PyTorch step slows more than ours). Read this before and after a benchmark
to say whether the host was calm: 12 independent chains of 8-lane float32 FMAs keep both
FMA ports busy, so the figure is 32 flops per cycle times the clock the core really got
(~127 GFLOP/s per core on the Xeon of docs/speed.md when calm; 62-97 while slowed).

    python benchmarks/host_speed.py --repeats 3 [--output host.json]

Needs gcc and an x86-64 CPU with AVX2 and FMA (it says so and exits 2 otherwise).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.step_env import emit  # noqa: E402
from siameseim_tf.hardware import cpu_flags  # noqa: E402

CHAINS = 12  # independent accumulators: more than FMA latency x ports (4 x 2)
LANES = 8  # float32 lanes of a 256-bit register
SOURCE = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
  long iterations = atol(argv[1]);
  __m256 acc[CHAINS], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
  double start = now();
  for (long k = 0; k < iterations; k++) {
#pragma GCC unroll 12
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
  }
  double seconds = now() - start;
  float sink = 0; for (int i = 0; i < CHAINS; i++) sink += acc[i][0];
  printf("%.17g %g\n", seconds, sink);  /* the sink keeps the loop from being removed */
  return 0;
}
"""


def cpu_has_avx2_fma() -> bool:
    """Whether /proc/cpuinfo lists both avx2 and fma (Linux x86-64)."""
    return {"avx2", "fma"} <= cpu_flags()


def build(directory: Path) -> Path:
    """Compiles the FMA loop into ``directory``; returns the executable."""
    source, binary = directory / "fma_loop.c", directory / "fma_loop"
    source.write_text(SOURCE)
    subprocess.run(
        ["gcc", "-O2", "-mavx2", "-mfma", f"-DCHAINS={CHAINS}", str(source), "-o", str(binary)],
        check=True,
    )
    return binary


def gflops_per_core(binary: Path, iterations: int) -> float:
    """One run of the loop on one core: GFLOP/s (2 flops per lane per FMA)."""
    seconds = float(
        subprocess.run(
            [str(binary), str(iterations)], check=True, capture_output=True, text=True
        ).stdout.split()[0]
    )
    return iterations * CHAINS * LANES * 2 / seconds / 1e9


def readings(repeats: int = 3, iterations: int = 100_000_000) -> list[float] | None:
    """``repeats`` readings of the loop, GFLOP/s per core; None where it cannot run."""
    if shutil.which("gcc") is None or not cpu_has_avx2_fma():
        return None
    with tempfile.TemporaryDirectory() as directory:
        try:
            binary = build(Path(directory))
            return [gflops_per_core(binary, iterations) for _ in range(repeats)]
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"host_speed: the FMA loop did not run: {error}", file=sys.stderr)
            return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=100_000_000)
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    values = readings(args.repeats, args.iterations)
    if values is None:
        print("host_speed.py needs gcc and a CPU with AVX2 and FMA", file=sys.stderr)
        return 2
    report = {
        "fma_loop_gflops_per_core": values,
        "median": statistics.median(values),
        "what": f"{CHAINS} independent chains of {LANES}-lane float32 FMAs (AVX2), one core",
    }
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
