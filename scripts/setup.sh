#!/usr/bin/env bash
# Installs everything the tests and the demo need, on a fresh Debian/Ubuntu machine.
#   - Debian package dataset-fashion-mnist (real images for the demo and integration tests)
#   - g++ if missing (builds the fused input-pipeline and training-block kernels on first use)
#   - qemu-user if missing (ONNX Runtime's int8 kernels of older CPUs, in the tests)
#   - this package with its [dev] extra (TensorFlow, Keras, keras-cv, tf2onnx, ONNX Runtime, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian package dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    echo "[setup] Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2
    echo "[setup] (tests that need it will fail, the demo can use --data DIR instead)" >&2
  fi
fi

# A C++ compiler builds the fused view kernel (siameseim_tf/data/native) on first use;
# without one the input pipeline falls back to TF ops (slower, same views).
if ! command -v g++ >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing g++ (fused input-pipeline kernel)"
    apt-get install -y -q g++ >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q g++ >/dev/null; } \
      || echo "[setup] g++ not installable: the input pipeline uses TF ops" >&2
  else
    echo "[setup] no g++: the input pipeline uses TF ops ('sudo apt-get install g++')" >&2
  fi
fi

# QEMU's user-mode emulator runs ONNX Runtime with the CPUID of older x86-64 CPUs (AVX2
# without VNNI, AVX only): the int8 export's accuracy is tested on their kernels too.
if [ "$(uname -m)" = "x86_64" ] && ! command -v qemu-x86_64 >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing qemu-user (int8 tests on emulated CPUs)"
    apt-get install -y -q qemu-user >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q qemu-user >/dev/null; } \
      || echo "[setup] qemu-user not installable: the emulated-CPU int8 tests skip" >&2
  else
    echo "[setup] no qemu-x86_64: the emulated-CPU int8 tests skip ('sudo apt-get install qemu-user')" >&2
  fi
fi

echo "[setup] pip install -e .[dev]"
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[dev]"

# PyTorch (CPU) for the checkpoint-converter tests against a PyTorch forward. This machine
# kind keeps a torch 2.13.0 CPU wheel on disk that pip picks up; elsewhere these tests skip.
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install -q --disable-pip-version-check "torch==2.13.0" \
    || echo "[setup] torch 2.13.0 not installable here: converter tests against PyTorch skip" >&2
fi

# timm's sources (no torch needed: the tests load timm/data/auto_augment.py by path) as
# the reference of the fine-tuning augmentations; --no-deps keeps torch / torchvision out.
if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('timm') is None)" 2>/dev/null; then
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps "timm==1.0.15" \
    || echo "[setup] timm not installable here: the RandAugment-vs-timm tests skip" >&2
fi

# TF Serving's official gRPC stubs (serve --tfserving-grpc-port and its tests). Its wheel
# declares "tensorflow", which would install a second TensorFlow over tensorflow-cpu:
# --no-deps, next to the TensorFlow installed above.
if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow_serving') is None)" 2>/dev/null; then
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps "tensorflow-serving-api>=2.21,<2.22" \
    || echo "[setup] tensorflow-serving-api not installable here: its gRPC tests skip" >&2
fi
