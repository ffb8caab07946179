"""One worker of a 2-process cluster on 127.0.0.1 that agrees on precision="auto".

Usage: python -m tests.training.precision_vote_run PORT0 PORT1 INDEX BF16_SPEEDUP
The worker plays a CPU with AVX512-BF16 and no AMX whose bf16 matmul check measured
BF16_SPEEDUP; prints JSON {"auto": [policy, reason], "float32": [...]}.
"""

from __future__ import annotations

import json
import os
import sys

from tests.helpers import loopback_tf_config

port0, port1, index, speedup = sys.argv[1:5]
os.environ["TF_CONFIG"] = loopback_tf_config([port0, port1], int(index))
os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
os.environ.pop("DNNL_MAX_CPU_ISA", None)

from siameseim_tf import hardware  # noqa: E402
from siameseim_tf.training.strategy import agreed_precision, select_strategy  # noqa: E402

hardware.cpu_flags = lambda: frozenset({"avx2", "avx512f", "avx512_bf16"})
hardware.bf16_matmul_speedup = lambda: float(speedup)

if __name__ == "__main__":
    strategy = select_strategy()
    report = {name: agreed_precision(strategy, name) for name in ("auto", "float32")}
    print(json.dumps(report))
