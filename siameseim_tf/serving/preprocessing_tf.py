"""TensorFlow implementation of the preprocessing defined in :mod:`.preprocessing`.

Used inside the exported SavedModel signatures and by evaluation. All constants and the
integer size arithmetic come from :mod:`siameseim_tf.serving.preprocessing`; the numpy
implementation there is tested against this one.
"""

from __future__ import annotations

import tensorflow as tf

from siameseim_tf.serving.preprocessing import (
    JPEG_DCT_METHOD,
    PIXEL_MEAN,
    PIXEL_STD,
    resize_size,
)


def _resized_shape(height: tf.Tensor, width: tf.Tensor, image_size: int) -> tf.Tensor:
    """Integer (new_h, new_w) as in ``preprocessing.resized_shape``: int32 [2]."""
    target = resize_size(image_size)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    short = tf.minimum(height, width)
    new_h = (2 * height * target + short) // (2 * short)
    new_w = (2 * width * target + short) // (2 * short)
    return tf.cast(tf.stack([new_h, new_w]), tf.int32)


def preprocess_uint8(images, image_size: int) -> tf.Tensor:
    """Resize (shorter side to round(S*256/224)), centre crop S, normalise.

    Args:
        images: uint8 (or any real dtype on the 0..255 scale) [B, H, W, 3] or a single
            image [H, W, 3]. All images of a batch share H and W.
        image_size: S.

    Returns:
        float32 [B, S, S, 3] (B = 1 for a single image), ImageNet-normalised.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        images = images[None]  # [1, H, W, 3]
    shape = tf.shape(images)
    new_size = _resized_shape(shape[1], shape[2], image_size)  # [2]
    # Bilinear, half-pixel centres, no antialiasing: exports to ONNX Resize / TF Serving.
    resized = tf.image.resize(
        tf.cast(images, tf.float32), new_size, method="bilinear", antialias=False
    )  # [B, new_h, new_w, 3]
    top = (new_size[0] - image_size) // 2
    left = (new_size[1] - image_size) // 2
    cropped = resized[:, top : top + image_size, left : left + image_size, :]
    cropped = tf.ensure_shape(cropped, [None, image_size, image_size, 3])
    return (cropped - PIXEL_MEAN) / PIXEL_STD  # numpy constants, not eager tensors


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """One encoded image (tf.string scalar) -> uint8 RGB [H, W, 3].

    JPEG is decoded with the accurate integer DCT, which gives the same pixels as PIL
    (TF's default fast DCT differs by up to ~6 levels); PNG / GIF / BMP by decode_image.
    """
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method=JPEG_DCT_METHOD),
        lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False),
    )
    return tf.ensure_shape(image, [None, None, 3])


def preprocess_encoded(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (tf.string scalar; JPEG / PNG / GIF / BMP) -> float32 [S, S, 3]."""
    return preprocess_uint8(decode_image(encoded), image_size)[0]


def decode_and_preprocess(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """A batch of encoded images (tf.string [B]) -> float32 [B, S, S, 3]."""
    return tf.map_fn(
        lambda item: preprocess_encoded(item, image_size),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
