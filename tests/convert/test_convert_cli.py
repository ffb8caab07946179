"""`siameseim convert` on a .pth written in the official layout."""

import keras
import numpy as np
import pytest

from siameseim_tf.cli import main
from siameseim_tf.convert import to_official_state_dict
from siameseim_tf.models import SiameseIM
from tests.helpers import TINY, random_batch

torch = pytest.importorskip("torch")


def test_convert_writes_model_and_encoder(tmp_path):
    model = SiameseIM(**TINY)
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in to_official_state_dict(model).items()}
    torch.save({"model": state}, tmp_path / "ckpt.pth")
    code = main(
        [
            "convert",
            "--checkpoint",
            str(tmp_path / "ckpt.pth"),
            "--output",
            str(tmp_path / "out"),
            "--num-heads",
            "4",
            "--decoder-num-heads",
            "2",
            "--num-masked-patches",
            "10",
        ]
    )
    assert code == 0
    restored = keras.saving.load_model(tmp_path / "out" / "model.keras")
    batch = random_batch()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(batch)["pred"]),
        keras.ops.convert_to_numpy(model(batch)["pred"]),
    )
    encoder = keras.saving.load_model(tmp_path / "out" / "encoder.keras")
    assert encoder.embed_dim == TINY["embed_dim"]


def test_convert_errors_are_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "convert",
                "--checkpoint",
                str(tmp_path / "missing.pth"),
                "--output",
                str(tmp_path),
                "--num-heads",
                "4",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("siameseim convert: error:") and "missing.pth" in err
    assert len(err.splitlines()) == 1
