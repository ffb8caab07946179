"""The one definition of evaluation / serving preprocessing (method §7), without TensorFlow.

Pipeline for an image of H x W pixels and model input side S:

1. decode to uint8 RGB [H, W, 3] (grey / palette / alpha are converted to RGB, alpha dropped);
2. resize so that the shorter side is ``R = round(S * 256 / 224)`` (the longer side is
   scaled by the same factor, rounded half up), bilinear with half-pixel centres and **no
   antialiasing** (the TF op that exports to ONNX ``Resize``);
3. centre crop S x S (offsets ``(new - S) // 2``);
4. ``(x / 255 - mean) / std`` with ImageNet mean / std.

Two implementations share the constants and integer size arithmetic of this module:
``preprocess_uint8`` etc. in :mod:`siameseim_tf.serving.preprocessing_tf` (TF ops, inside
the exported SavedModel and used by evaluation), and :func:`preprocess_numpy` here (used
by the TF-free server in front of the ONNX model). ``tests/export/test_preprocessing.py``
checks they agree (max abs difference ~1e-5 after normalisation, see docs).

The TF functions are also reachable from here (``preprocessing.preprocess_uint8``); they
import TensorFlow only when first accessed.
"""

from __future__ import annotations

import io

import numpy as np

# ImageNet statistics on the [0, 1] scale.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Resize-then-crop ratio of method §7: shorter side to S * 256 / 224, centre crop S.
RESIZE_NUMERATOR, RESIZE_DENOMINATOR = 256, 224
# Formats the TF-free server decodes (the SavedModel decodes what tf.io.decode_image does).
SERVER_IMAGE_FORMATS = ("JPEG", "PNG", "MPO")  # MPO: camera JPEG + extra pictures
# libjpeg's accurate integer DCT: what PIL uses, and what the TF decoder is told to use
# (TF's default, the fast DCT, differs from PIL by up to ~6 grey levels).
JPEG_DCT_METHOD = "INTEGER_ACCURATE"

# Per-channel affine map applied to 0..255 pixels: y = x * PIXEL_SCALE + PIXEL_OFFSET.
PIXEL_MEAN = np.asarray(IMAGENET_MEAN, np.float32) * np.float32(255.0)  # [3]
PIXEL_STD = np.asarray(IMAGENET_STD, np.float32) * np.float32(255.0)  # [3]

# Names served lazily from preprocessing_tf: name here -> name there.
_TF_NAMES = {
    "preprocess_uint8": "preprocess_uint8",
    "preprocess_encoded": "preprocess_encoded",
    "decode_and_preprocess": "decode_and_preprocess",
    "decode_image_tf": "decode_image",
}


class ImageError(ValueError):
    """An image the client sent cannot be used (bad bytes, bad shape, unsupported format)."""


class ImageTooLarge(ImageError):
    """An image declares more pixels than allowed (e.g. a decompression bomb)."""


def resize_size(image_size: int) -> int:
    """Shorter side after resizing: ``round(S * 256 / 224)`` (S = 224 -> 256, 32 -> 37)."""
    # Integer round-half-up, identical in every implementation.
    return (image_size * RESIZE_NUMERATOR * 2 + RESIZE_DENOMINATOR) // (2 * RESIZE_DENOMINATOR)


def resized_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(new_h, new_w) with the shorter side at :func:`resize_size` and the aspect ratio kept."""
    target = resize_size(image_size)
    short = min(height, width)
    # long * target / short rounded half up, in integers (no float ties to disagree on).
    new_h = (2 * height * target + short) // (2 * short)
    new_w = (2 * width * target + short) // (2 * short)
    return new_h, new_w


def _bilinear_axis(
    in_size: int, out_size: int, start: int = 0, count: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, as tf.image.resize (half-pixel centres),
    for output positions ``start .. start + count`` only (memory ~ count, not out_size:
    a 1 x 250 000 image resized for a 32 px model is 9 million columns wide).

    Returns (lower [count], upper [count], lerp [count] float32).
    """
    count = out_size - start if count is None else count
    scale = np.float32(in_size) / np.float32(out_size)
    positions = np.arange(start, start + count, dtype=np.int64).astype(np.float32)
    centre = (positions + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centre)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(centre), in_size - 1).astype(np.int64)
    return lower, upper, (centre - floor).astype(np.float32)


def resize_bilinear(
    image: np.ndarray, new_h: int, new_w: int, window: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Bilinear resize (half-pixel centres, no antialiasing) of [H, W, C] to [new_h, new_w].

    Args:
        image: [H, W, C], any real dtype.
        new_h, new_w: size of the full resized image.
        window: optional (top, left, height, width) of the resized image to compute; the
            values equal the same region of the full resize (used to crop for free).

    Returns:
        float32 [height, width, C] (the window) or [new_h, new_w, C].
    """
    top, left, height, width = window or (0, 0, new_h, new_w)
    row_lo, row_hi, y_lerp = _bilinear_axis(image.shape[0], new_h, top, height)
    col_lo, col_hi, x_lerp = _bilinear_axis(image.shape[1], new_w, left, width)
    x_lerp, y_lerp = x_lerp[None, :, None], y_lerp[:, None, None]  # [1, w, 1], [h, 1, 1]

    # Gather only the four corner pixels of each output pixel (memory ~ h x w, whatever
    # the source size), then interpolate along x and along y (TF's order of operations).
    def corners(rows, cols):
        return image[rows[:, None], cols[None, :]].astype(np.float32)  # [h, w, C]

    top_left, top_right = corners(row_lo, col_lo), corners(row_lo, col_hi)
    bottom_left, bottom_right = corners(row_hi, col_lo), corners(row_hi, col_hi)
    top_row = top_left + (top_right - top_left) * x_lerp
    bottom_row = bottom_left + (bottom_right - bottom_left) * x_lerp
    return top_row + (bottom_row - top_row) * y_lerp  # [h, w, C]


def preprocess_numpy(image: np.ndarray, image_size: int) -> np.ndarray:
    """Resize, centre crop and normalise one uint8 RGB image [H, W, 3] -> float32 [S, S, 3]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ImageError(f"expected an RGB image [H, W, 3], got shape {list(image.shape)}")
    new_h, new_w = resized_shape(image.shape[0], image.shape[1], image_size)
    top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
    # Only the rows / columns that survive the crop are computed.
    window = (top, left, image_size, image_size)
    resized = resize_bilinear(image, new_h, new_w, window)  # [S, S, 3]
    return ((resized - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decodes JPEG / PNG bytes to uint8 RGB [H, W, 3] with PIL.

    The pixel count declared in the header is checked *before* decoding, so a small file
    declaring a huge image (decompression bomb) costs nothing.

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels.
        ImageError: not an image, unsupported format, or truncated / corrupt data.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in SERVER_IMAGE_FORMATS:
                raise ImageError(
                    f"unsupported image format {image.format}; send one of "
                    f"{', '.join(SERVER_IMAGE_FORMATS)}"
                )
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
                )
            image.load()  # decodes; raises on truncated data (LOAD_TRUNCATED_IMAGES is off)
            if image.mode.startswith("I;16") or image.mode == "I":
                # 16-bit grey: keep the high byte, as TF's decoder does (PIL would clip).
                grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            rgb = image.convert("RGB")
    except UnidentifiedImageError as error:
        raise ImageError("bytes are not a decodable image (JPEG or PNG expected)") from error
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(
            f"image exceeds the limit of {max_pixels} pixels (decompression bomb?): {error}"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(f"corrupt or truncated image: {error}") from error
    return np.asarray(rgb, dtype=np.uint8)


def __getattr__(name: str):
    """Lazy access to the TF implementation (imports TensorFlow on first use only)."""
    if name in _TF_NAMES:
        from siameseim_tf.serving import preprocessing_tf

        return getattr(preprocessing_tf, _TF_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
