"""siameseim_tf.install: two TensorFlow distributions in one environment are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from siameseim_tf.install import colliding_tensorflows, tensorflow_collision_hint

TF_FILES = ["tensorflow/__init__.py", "tensorflow/python/ops/math_ops.py"]


def test_one_distribution_or_a_meta_package_beside_it_is_fine():
    assert tensorflow_collision_hint([("tensorflow-cpu", TF_FILES)]) is None
    assert colliding_tensorflows([]) == []
    # Windows: `tensorflow` is a meta-package (no files of its own) over tensorflow-intel
    meta_files = ["tensorflow-2.21.0.dist-info/METADATA"]
    meta = [("tensorflow", meta_files), ("tensorflow_intel", TF_FILES)]
    assert colliding_tensorflows(meta) == []


def test_two_distributions_shipping_tensorflow_are_named_with_the_fix():
    both = [("tensorflow", TF_FILES), ("tensorflow_cpu", ["tensorflow\\__init__.py"])]
    assert colliding_tensorflows(both) == ["tensorflow", "tensorflow-cpu"]
    hint = tensorflow_collision_hint(both)
    assert "\n" not in hint and "pip uninstall -y tensorflow tensorflow-cpu" in hint
    assert "siameseim-tf[gpu]" in hint


def test_doctor_warns_about_a_second_installed_distribution(tmp_path):
    # A second distribution that claims TensorFlow's files, found the way pip's are: its
    # .dist-info on the path (nothing of it is imported).
    info = tmp_path / "tensorflow_gpu-2.21.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow-gpu\nVersion: 2.21.0\n")
    (info / "RECORD").write_text("tensorflow/__init__.py,,\n" + f"{info.name}/METADATA,,\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", "doctor", "--precision", "float32", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = {f["topic"]: f for f in json.loads(done.stdout)}
    assert report["install"]["warning"], report
    assert "tensorflow-gpu" in report["install"]["value"]
