"""siameseim_tf turns on TensorFlow's oneDNN rewrites on x86 unless the user decided, and
the doctor says when TensorFlow was loaded first (then they are off where TF defaults so)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only"
)

PROBE = (
    "import os, siameseim_tf; "
    "from tensorflow.python.util import _pywrap_util_port as port; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled(), "
    "siameseim_tf.ONEDNN_OPTS_DEFAULTED)"
)


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_importing_the_package_first_turns_the_rewrites_on():
    assert _run(PROBE) == "1 True True"


def test_a_users_choice_is_kept():
    assert _run(PROBE, TF_ENABLE_ONEDNN_OPTS="0") == "0 False False"


def test_tensorflow_first_leaves_the_variable_alone_and_the_doctor_explains():
    code = (
        "import tensorflow, siameseim_tf, os; "
        "from siameseim_tf.training.machine import _tensorflow_line; "
        "from tensorflow.python.util import _pywrap_util_port as port; "
        "line = _tensorflow_line(); "
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled(), "
        "line.warning, 'import siameseim_tf first' in line.value)"
    )
    unset, enabled, warning, explained = _run(code).split()
    assert unset == "None"
    # TensorFlow's own default decides (on with AVX512-VNNI / bf16 / AMX): warn only if off
    assert warning == str(enabled == "False") and explained == str(enabled == "False")
