"""The numpy (server) and TF (SavedModel / evaluation) preprocessing must agree."""

from __future__ import annotations

import numpy as np
import pytest

from siameseim_tf.export.common import sample_pixels
from siameseim_tf.serving import preprocessing as prep
from tests.export.tiny import image_bytes, png_header_only, run_without_tensorflow

# Measured: the two implementations agree exactly (0.0); allow float reassociation.
TOLERANCE = 1e-5


def test_resize_size_follows_spec():
    assert prep.resize_size(224) == 256
    assert prep.resize_size(32) == 37  # 36.57 -> 37
    assert prep.resize_size(384) == 439  # 438.86 -> 439
    assert prep.resized_shape(300, 400, 224) == (256, 341)
    assert prep.resized_shape(1000, 333, 224) == (769, 256)


@pytest.mark.parametrize(
    "height, width, size",
    [(300, 400, 224), (224, 224, 224), (20, 30, 32), (5, 900, 32), (97, 71, 32), (37, 37, 32)],
)
def test_numpy_matches_tf(height, width, size):
    pixels = sample_pixels(2, height, width, seed=height)
    by_tf = prep.preprocess_uint8(pixels, size).numpy()  # [2, S, S, 3]
    assert by_tf.shape == (2, size, size, 3)
    for image, expected in zip(pixels, by_tf):
        got = prep.preprocess_numpy(image, size)
        assert got.shape == (size, size, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "mode, fmt, options",
    [
        ("RGB", "PNG", {}),
        ("RGB", "JPEG", {"quality": 75}),
        ("RGB", "JPEG", {"quality": 95, "subsampling": 0}),
        ("L", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {}),
    ],
)
def test_decoders_agree(mode, fmt, options):
    from PIL import Image

    pixels = sample_pixels(1, 61, 43, seed=3)[0]
    image = Image.fromarray(pixels).convert(mode)
    data = image_bytes(np.asarray(image), fmt, **options) if mode != "P" else _save(image, fmt)
    decoded = prep.decode_image(data, max_pixels=10**6)
    assert decoded.shape == (61, 43, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, prep.decode_image_tf(data).numpy())
    np.testing.assert_allclose(
        prep.preprocess_numpy(decoded, 32),
        prep.preprocess_encoded(data, 32).numpy(),
        rtol=0,
        atol=TOLERANCE,
    )


def _save(image, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_single_image_and_normalisation():
    mean_grey = np.broadcast_to(prep.PIXEL_MEAN, (50, 40, 3)).astype(np.float32)
    out = prep.preprocess_uint8(mean_grey, 32).numpy()
    assert out.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(out, 0.0, atol=1e-6)
    white = np.full((40, 50, 3), 255, np.uint8)
    expected = (1.0 - np.asarray(prep.IMAGENET_MEAN)) / np.asarray(prep.IMAGENET_STD)
    np.testing.assert_allclose(prep.preprocess_numpy(white, 32)[5, 5], expected, rtol=1e-6)


def test_decode_rejects_bad_images():
    good = image_bytes(sample_pixels(1, 40, 40)[0], "JPEG")
    with pytest.raises(prep.ImageTooLarge, match="limit of 10000000 pixels"):
        prep.decode_image(png_header_only(50000, 50000), max_pixels=10**7)
    with pytest.raises(prep.ImageTooLarge):
        prep.decode_image(good, max_pixels=100)
    with pytest.raises(prep.ImageError, match="truncated"):
        prep.decode_image(good[: len(good) // 2], max_pixels=10**6)
    with pytest.raises(prep.ImageError, match="not a decodable image"):
        prep.decode_image(b"hello world, not an image", max_pixels=10**6)
    with pytest.raises(prep.ImageError, match="unsupported image format GIF"):
        prep.decode_image(image_bytes(sample_pixels(1, 8, 8)[0], "GIF"), max_pixels=10**6)
    with pytest.raises(prep.ImageError, match="RGB image"):
        prep.preprocess_numpy(np.zeros((8, 8), np.uint8), 32)


def test_preprocessing_imports_without_tensorflow():
    result = run_without_tensorflow(
        "from siameseim_tf.serving import preprocessing as p\n"
        "import numpy as np\n"
        "print(p.preprocess_numpy(np.zeros((40, 50, 3), np.uint8), 32).shape)\n"
        "try:\n    p.preprocess_uint8\nexcept ImportError:\n    print('tf blocked')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(32,", "32,", "3)", "tf", "blocked"]


def _encoded(array: np.ndarray, fmt: str, **options) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_16_bit_png_keeps_the_high_byte_like_tf():
    import tensorflow as tf

    grey = np.array([[0, 255, 256, 1000, 32767, 40000, 65280, 65535]] * 3, dtype=np.uint16)
    data = _encoded(grey, "PNG")
    served = prep.decode_image(data, 10**6)
    saved_model = prep.decode_image_tf(tf.constant(data)).numpy()
    np.testing.assert_array_equal(served, saved_model)
    assert served[0, :, 0].tolist() == [0, 0, 1, 3, 127, 156, 255, 255]


def test_camera_jpeg_with_extra_pictures_is_decoded():
    from PIL import Image

    first, second = sample_pixels(2, 40, 48)
    data = _encoded(first, "MPO", save_all=True, append_images=[Image.fromarray(second)])
    assert data[:2] == b"\xff\xd8"  # a JPEG file
    import tensorflow as tf

    decoded = prep.decode_image(data, 10**6).astype(int)
    assert decoded.shape == (40, 48, 3)
    off_first = np.abs(decoded - first.astype(int)).mean()
    assert off_first < np.abs(decoded - second.astype(int)).mean() / 2  # the first picture
    saved_model = prep.decode_image_tf(tf.constant(data)).numpy().astype(int)
    assert np.abs(decoded - saved_model).max() <= 1  # what the SavedModel sees


def test_thin_image_costs_memory_of_the_crop_not_of_the_resized_row():
    import tracemalloc

    thin = np.zeros((1, 250_000, 3), np.uint8)
    tracemalloc.start()
    out = prep.preprocess_numpy(thin, 224)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (224, 224, 3)
    assert peak < 32 * 2**20, peak  # a full-row resize would take ~2 GiB


@pytest.mark.parametrize("case", ["CMYK JPEG", "grey JPEG", "grey+alpha PNG", "EXIF-rotated JPEG"])
def test_server_and_savedmodel_decode_unusual_files_alike(case):
    """One decoding behaviour: CMYK converted to RGB, alpha dropped, EXIF orientation
    ignored (as TF's decoders do), in the server (PIL) and in the SavedModel (TF)."""
    from PIL import Image

    image = Image.fromarray(sample_pixels(1, 61, 43, seed=3)[0])
    options = {}
    if case == "CMYK JPEG":
        image, fmt = image.convert("CMYK"), "JPEG"
    elif case == "grey JPEG":
        image, fmt = image.convert("L"), "JPEG"
    elif case == "grey+alpha PNG":
        image, fmt = image.convert("LA"), "PNG"
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to display"
        fmt, options = "JPEG", {"exif": exif.tobytes()}
    data = _encoded(np.asarray(image), fmt, **options) if case != "CMYK JPEG" else _save(image, fmt)
    served = prep.decode_image(data, 10**6)
    assert served.shape == (61, 43, 3)  # orientation ignored: stored size
    np.testing.assert_array_equal(served, prep.decode_image_tf(data).numpy())
