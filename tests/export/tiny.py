"""Shared by the export and serving tests: a tiny random encoder and test image files."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np

TINY_ARGS = dict(image_size=32, patch_size=8, depth=2)


def make_tiny_encoder(seed: int = 0):
    """A randomly initialised tiny ViTEncoder (S = 32, P = 8, E = 192, 2 blocks)."""
    import keras

    from siameseim_tf.models.vit import ViTEncoder, preset_arguments

    keras.utils.set_random_seed(seed)
    return ViTEncoder(**preset_arguments("tiny", **TINY_ARGS))


def image_bytes(image: np.ndarray, fmt: str, **options) -> bytes:
    """Encodes uint8 [H, W, 3] with PIL (PNG / JPEG / ...)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_test_images(directory: str) -> list[str]:
    """Writes 4 test images of different sizes and formats; returns their paths."""
    from siameseim_tf.export.common import sample_pixels

    specs = [(45, 60, "PNG"), (64, 40, "JPEG"), (32, 32, "PNG"), (97, 71, "JPEG")]
    paths = []
    for k, (height, width, fmt) in enumerate(specs):
        pixels = sample_pixels(1, height, width, seed=10 + k)[0]
        path = os.path.join(directory, f"image{k}.{fmt.lower()}")
        with open(path, "wb") as handle:
            handle.write(image_bytes(pixels, fmt))
        paths.append(path)
    return paths


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that *declares* width x height (decompression-bomb shaped), no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 64)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def run_without_tensorflow(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter where ``import tensorflow`` (and keras) fails."""
    prelude = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120
    )
