"""siameseim-tf: Siamese Image Modeling (CVPR 2023) in TensorFlow / Keras 3."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# One version source: siameseim_tf/__init__.py.
VERSION = re.search(
    r'^__version__ = "([^"]+)"', Path("siameseim_tf/__init__.py").read_text(), re.M
).group(1)

# Lower bounds are the versions this project is tested with.
# TensorFlow itself comes from one of three mutually exclusive extras (two TensorFlow
# distributions in one environment overwrite each other's files):
#   tf  -> "tensorflow" (on Linux the CUDA-capable wheel; bring your own CUDA libraries)
#   gpu -> "tensorflow[and-cuda]" (CUDA and cuDNN from pip)
#   cpu -> "tensorflow-cpu" (no CUDA; what dev / CI install)
TF_WHEEL = {
    "tf": ["tensorflow>=2.21,<2.22"],
    "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
    "cpu": ["tensorflow-cpu>=2.21,<2.22"],
}
TF = [
    "keras>=3.15,<3.16",
    "tensorboard>=2.21",  # the TensorBoard callback's summaries (not pulled by tensorflow-cpu)
    "protobuf>=6.31.1,<7",  # the range TensorFlow 2.21 and KServe 0.21 share
]
# The server runs the ONNX file on ONNX Runtime: no TensorFlow.
SERVING = ["onnxruntime>=1.20", "numpy>=1.26", "pillow>=12.3", "kserve>=0.21,<0.22"]

setup(
    name="siameseim-tf",
    version=VERSION,
    license="MIT",
    # No public home of this re-implementation yet (no address to give); the method's:
    project_urls={
        "Paper": "https://arxiv.org/abs/2206.01204",
        "Authors' PyTorch release": "https://github.com/fundamentalvision/Siamese-Image-Modeling",
    },
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Intended Audience :: Science/Research",
    ],
    description="Siamese Image Modeling self-supervised pretraining for Keras 3 / TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.14",
    # configs/ (the recipes) installs as the package siameseim_tf.configs.
    packages=find_packages(include=["siameseim_tf", "siameseim_tf.*"]) + ["siameseim_tf.configs"],
    package_dir={"siameseim_tf.configs": "configs"},
    # the C++ kernels are compiled from source on first use (siameseim_tf/native_build.py)
    package_data={
        "siameseim_tf": ["py.typed"],
        "siameseim_tf.data.native": ["*.cc", "*.h"],
        "siameseim_tf.layers.native": ["*.cc", "*.h"],
    },
    install_requires=["numpy>=1.26", "pillow>=10", "tqdm>=4.66"],
    extras_require={
        # Training / evaluation / export: the full TensorFlow stack.
        **{
            name: wheel + TF + ["keras-cv==0.9.0", "scikit-learn>=1.4", "matplotlib>=3.8"]
            for name, wheel in TF_WHEEL.items()
        },
        # add to tf / gpu / cpu: the exporters (they need a TensorFlow from one of those)
        "export": TF + ["tf2onnx>=1.17", "onnx>=1.16", "onnxruntime>=1.20"],
        "serving": SERVING,
        "torch": ["torch>=2.2"],
        "dev": TF_WHEEL["cpu"]
        + TF
        + SERVING
        + [
            "keras-cv==0.9.0",
            "scikit-learn>=1.4",
            "matplotlib>=3.8",
            "tf2onnx>=1.17",
            "onnx>=1.16",
            "tensorflow-datasets>=4.9",
            "importlib_resources>=6",  # TFDS builders defined locally (tests)
            "pytest>=8",
            "pytest-timeout>=2.3",
            "requests>=2.31",
            "ruff>=0.6",
        ],
    },
    entry_points={"console_scripts": ["siameseim=siameseim_tf.cli:main"]},
)
