"""The views picture and the `visualize-views` command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from siameseim_tf.cli import UserError
from siameseim_tf.cli import visualize_views as cli
from siameseim_tf.data import visualize_views
from siameseim_tf.data.visualize import map_view2_cells

FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser)
    return parser.parse_args(list(argv))


def test_picture_of_mixed_images(tmp_path):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (28, 28), dtype=np.uint8),
        rng.integers(0, 256, (40, 90, 4), dtype=np.uint8),
    ]
    out = visualize_views(images, str(tmp_path / "v.png"), 3, 32, 8, 5)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200


def test_identity_relation_maps_cells_onto_themselves():
    h, w = map_view2_cells(np.array([0, 0, 1, 1, 0, 1], np.float32), 4)
    r, c = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    np.testing.assert_allclose(h, r)
    np.testing.assert_allclose(w, c)
    # with one view flipped and the same crop, columns mirror
    _, w = map_view2_cells(np.array([0, 0, 1, 1, 1, 1], np.float32), 4)
    np.testing.assert_allclose(w, 3 - c)


def test_cli_on_a_folder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            tmp_path / f"{k}.png"
        )
    out = tmp_path / "out" / "views.png"
    args = _args("--data", str(tmp_path), "--output", str(out), "--num-samples", "2",
                 "--image-size", "32", "--patch-size", "8", "--num-masked", "6")  # fmt: skip
    assert args.func is cli.run
    assert cli.run(args) == 0
    assert out.is_file() and "2 samples" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.isfile(FMNIST), reason="apt-get install dataset-fashion-mnist")
def test_cli_default_fashion_mnist(tmp_path):
    args = _args("--output", str(tmp_path / "f.png"), "--num-samples", "2", "--image-size", "32",
                 "--patch-size", "8", "--num-masked", "6", "--no-color")  # fmt: skip
    assert cli.run(args) == 0 and (tmp_path / "f.png").is_file()


def test_cli_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        cli.run(_args("--data", str(tmp_path / "missing")))
    with pytest.raises(UserError, match="num-masked"):
        cli.run(_args("--image-size", "32", "--patch-size", "8", "--num-masked", "17"))
    with pytest.raises(UserError, match="multiple"):
        cli.run(_args("--image-size", "30", "--patch-size", "8"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        cli.run(_args("--data", str(tmp_path / "empty")))


def test_cli_module_does_not_import_tensorflow():
    code = (
        "import sys, argparse, siameseim_tf.cli.visualize_views as m;"
        "m.add_parser(argparse.ArgumentParser());"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
