"""Our model vs an independent PyTorch forward in the official layout (needs torch)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from siameseim_tf import SiameseIM  # noqa: E402
from siameseim_tf.convert import from_official_state_dict, to_official_state_dict  # noqa: E402
from siameseim_tf.losses import unigrad_loss  # noqa: E402
from tests.convert.torch_reference import (  # noqa: E402
    SiameseIMReference,
    to_torch_inputs,
    unigrad,
)
from tests.helpers import TINY, random_batch  # noqa: E402

ARCH = {k: v for k, v in TINY.items() if k != "num_masked_patches"}


def reference(norm="batch"):
    torch.manual_seed(0)
    return SiameseIMReference(**dict(ARCH, norm=norm))


def close(ours, theirs, rtol=1e-4):
    ours, theirs = np.asarray(ours), theirs.detach().numpy()
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= rtol * scale, np.abs(ours - theirs).max() / scale


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_import_matches_pytorch_forward_and_loss(tmp_path, norm):
    ref = reference(norm)
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": ref.state_dict()}, path)
    model = from_official_state_dict(
        path,
        **{k: TINY[k] for k in ("num_heads", "decoder_num_heads")},
        num_masked_patches=TINY["num_masked_patches"],
    )
    batch = random_batch(8, seed=5)
    ref.train()  # BatchNorm on batch statistics, as in pretraining
    pred, target = ref(*to_torch_inputs(batch))
    outputs = model(batch, training=True)
    close(outputs["pred"], pred)
    close(outputs["target"], target)
    close(unigrad_loss(outputs["pred"], outputs["target"]), unigrad(pred, target))
    if norm == "batch":  # running statistics updated alike (unbiased variance, momentum 0.1)
        theirs = ref.predictor_decoder_blocks[0].norm1.bn.running_var
        close(model.predictor_blocks[0].norm1.moving_variance, theirs, 1e-5)
    ref.eval()
    pred, _ = ref(*to_torch_inputs(batch))
    close(model(batch, training=False)["pred"], pred)


def test_export_loads_strictly_into_pytorch():
    model = SiameseIM(**TINY)
    ref = reference()
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in to_official_state_dict(model).items()}
    ref.load_state_dict(state, strict=True)  # same names, same shapes, nothing left over
    batch = random_batch(4, seed=2)
    ref.eval()
    pred, target = ref(*to_torch_inputs(batch))
    outputs = model(batch, training=False)
    close(outputs["pred"], pred)
    close(outputs["target"], target)


def test_momentum_update_matches_the_reference():
    model = SiameseIM(**TINY)
    rng = np.random.default_rng(3)
    for target, _ in model.momentum_pairs():  # make the branches differ
        target.assign(rng.normal(size=target.shape).astype("float32"))
    ref = reference()
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in to_official_state_dict(model).items()}
    ref.load_state_dict(state, strict=True)
    model.update_target(0.9)
    ref.mm_update(0.9)
    ours = to_official_state_dict(model)
    for name, theirs in ref.state_dict().items():
        close(ours[name], theirs, 1e-6)
    assert any(name.startswith("mm_") for name in ours)


def test_attention_subtracting_the_row_maximum_changes_nothing():
    torch.manual_seed(1)
    authors = reference()
    lean = SiameseIMReference(**dict(ARCH, norm="batch"), subtract_max=False)
    lean.load_state_dict(authors.state_dict())
    inputs = to_torch_inputs(random_batch(4, seed=4))
    for theirs, ours in zip(authors(*inputs), lean(*inputs)):
        close(ours.detach().numpy(), theirs, 1e-5)
