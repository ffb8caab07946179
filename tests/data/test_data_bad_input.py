"""Bad files never crash training; they are counted and named; hopeless sources fail early."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from siameseim_tf.data import BadInputError, build_pretraining_dataset, image_folder_source

KW = {"image_size": 16, "patch_size": 8, "num_masked": 2}


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (no pixel data to speak of)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _image(rng, h=24, w=30):
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _bad_folder(root: str) -> tuple[list[str], dict[str, str]]:
    """Good files (returned) and bad ones (path -> expected reason fragment)."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "sub"))
    good = []
    for name in ("ok.jpg", "sub/ok.png"):
        _image(rng).save(os.path.join(root, name))
        good.append(name)
    _image(rng).convert("CMYK").save(os.path.join(root, "cmyk.jpg"))
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).save(
        os.path.join(root, "sixteen.png")
    )
    good += ["cmyk.jpg", "sixteen.png"]
    bad = {}

    def write(name, data, reason):
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        bad[name] = reason

    jpeg = open(os.path.join(root, "ok.jpg"), "rb").read()
    png = open(os.path.join(root, "sub/ok.png"), "rb").read()
    write("zero.jpg", b"", "empty")
    write("trunc.jpg", jpeg[: len(jpeg) * 2 // 3], "truncated")
    write("sub/trunc.png", png[: len(png) // 2], "truncated")
    write("header_only.jpg", jpeg[:200], "not a readable image")
    write("corrupt.png", b"\x89PNG\r\n\x1a\n" + os.urandom(300), "not a readable image")
    write("text.jpg", b"hello, I am not a picture\n" * 20, "not a readable image")
    write("notes.txt", b"readme", "not an image extension")
    write("bomb.png", _png_claiming(100_000, 100_000), "too many pixels")
    _image(rng, 1, 1).save(os.path.join(root, "one.png"))
    bad["one.png"] = "too small"
    _image(rng, 120, 120).save(os.path.join(root, "huge.png"))  # > max_pixels below
    bad["huge.png"] = "too many pixels"
    return good, bad


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_bad_files_are_skipped_counted_and_named(tmp_path):
    good, bad = _bad_folder(str(tmp_path))
    source = image_folder_source(str(tmp_path), max_pixels=10_000)
    assert source.num_images == len(good)
    report = source.report
    assert report.count == len(bad)
    reasons = {os.path.relpath(p, tmp_path): r for p, r in report.skipped}
    for name, fragment in bad.items():
        assert fragment in reasons[name], (name, reasons[name])
    summary = report.summary(3)
    assert f"skipped {len(bad)} input(s)" in summary and "more" in summary
    # training goes on: one pass yields exactly the good files, no runtime failure
    ds = build_pretraining_dataset(source, 1, repeat=False, **KW)
    assert sum(1 for _ in ds) == len(good)
    assert source.report.runtime_failures == []
    batches = list(build_pretraining_dataset(source, 3, **KW).take(3))  # repeated stream
    assert all(b["view1"].shape == (3, 16, 16, 3) for b in batches)


def test_file_broken_after_the_scan_is_dropped_at_run_time(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(3):
        _image(rng).save(tmp_path / f"{k}.jpg")
    source = image_folder_source(str(tmp_path))
    data = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "1.jpg").write_bytes(data[: len(data) // 2])  # truncated after the scan
    ds = build_pretraining_dataset(source, 1, repeat=False, shuffle=False, **KW)
    assert sum(1 for _ in ds) == 2
    assert source.report.runtime_failures == [str(tmp_path / "1.jpg")]
    assert source.report.count == 1 and "decode failed" in source.report.summary()


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_counts_are_exact_with_a_partial_last_batch(tmp_path, drop_remainder):
    """Keys are noted per batch: images in a final partial batch decoded fine and must not
    be reported as failures, even when drop_remainder discards that batch."""
    rng = np.random.default_rng(2)
    for k in range(6):
        _image(rng).save(tmp_path / f"{k}.jpg")
    source = image_folder_source(str(tmp_path))
    (tmp_path / "4.jpg").write_bytes(b"not a jpeg any more")  # broken after the scan
    ds = build_pretraining_dataset(
        source, 2, repeat=False, shuffle=False, drop_remainder=drop_remainder, **KW
    )
    if drop_remainder:
        assert ds.element_spec["view1"].shape[0] == 2  # static batch dimension kept
    sizes = [int(batch["view1"].shape[0]) for batch in ds]
    assert sizes == ([2, 2] if drop_remainder else [2, 2, 1])  # 5 good images
    assert source.report.runtime_failures == [str(tmp_path / "4.jpg")]


def test_corrupt_entropy_data_never_crashes(tmp_path):
    rng = np.random.default_rng(2)
    _image(rng, 64, 64).save(tmp_path / "good.jpg", quality=90)
    data = bytearray((tmp_path / "good.jpg").read_bytes())
    start = data.index(b"\xff\xda") + 20  # inside the entropy-coded scan
    data[start : start + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    (tmp_path / "mangled.jpg").write_bytes(bytes(data))
    source = image_folder_source(str(tmp_path))
    ds = build_pretraining_dataset(source, 1, repeat=False, **KW)
    used = sum(1 for _ in ds)
    assert used + source.report.count == 2 and used >= 1


def test_empty_and_all_bad_sources_fail_before_training(tmp_path):
    with pytest.raises(BadInputError, match="is empty") as info:
        image_folder_source(str(tmp_path))
    assert isinstance(info.value, ValueError) and info.value.path == str(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match="no usable image") as info:
        image_folder_source(str(tmp_path))
    assert str(tmp_path) in str(info.value) and info.value.report.count == 2
    with pytest.raises(BadInputError, match="not found"):
        image_folder_source(str(tmp_path / "missing"))


def test_user_folder_odd_names_alpha_webp_and_full_listing(tmp_path):
    """Non-UTF-8 names open, RGBA WebP decodes (through PIL), every skip is listed."""
    import os

    import numpy as np
    from PIL import Image

    from siameseim_tf.data import open_source
    from siameseim_tf.data.bad_input import BadInputError

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgba = rng.integers(0, 255, (20, 20, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.webp")
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # Latin-1 name, not UTF-8
    Image.fromarray(rgba[..., :3]).save(odd, format="PNG")
    for i in range(7):
        (folder / f"broken_{i}.jpg").write_bytes(b"not a jpeg" * i)
    source = open_source(str(folder))
    images = list(source.raw(1, 0).map(source.decode).take(5))
    assert source.num_images == 2 and len(images) == 2
    assert all(tuple(image.shape) == (20, 20, 3) for image in images)
    listing = source.report.listing()
    assert "7 input(s) skipped" in listing
    assert all(f"broken_{i}.jpg" in listing for i in range(7))
    with pytest.raises(BadInputError, match="is a file"):
        open_source(str(folder / "alpha.webp"))


def test_images_in_flight_are_not_counted_as_skipped(tmp_path):
    """Training stops after 2 batches with many images prefetched: only the file that
    really failed before the last consumed image is reported."""
    rng = np.random.default_rng(3)
    for k in range(40):
        _image(rng).save(tmp_path / f"{k:02d}.png")
    source = image_folder_source(str(tmp_path))
    (tmp_path / "01.png").write_bytes(b"broken after the scan")
    ds = build_pretraining_dataset(source, 4, shuffle=False, **KW)  # repeats forever
    for _ in ds.take(2):
        pass
    assert source.report.runtime_failures == [str(tmp_path / "01.png")]
    assert source.report.count == 1


def test_folder_whose_every_image_fails_to_decode_errors_instead_of_hanging(tmp_path):
    from siameseim_tf.training.pretrain import require_decodable

    rng = np.random.default_rng(4)
    for k in range(3):
        _image(rng).save(tmp_path / f"{k}.png")
    source = image_folder_source(str(tmp_path))  # the scan passes them
    for k in range(3):  # then every file breaks: decoding would drop all, forever
        (tmp_path / f"{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(BadInputError, match="could be decoded"):
        require_decodable(source)
