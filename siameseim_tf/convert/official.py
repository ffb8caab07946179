"""Import (and export) the authors' PyTorch checkpoints (method §8)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from siameseim_tf.convert.layout import (
    LINEAR,
    Entry,
    encoder_entries,
    siameseim_entries,
    to_keras_layout,
    to_official_layout,
)
from siameseim_tf.models.siameseim import SiameseIM
from siameseim_tf.models.vit import ViTEncoder

# PyTorch BatchNorm bookkeeping with no Keras counterpart: accepted and not used.
_BOOKKEEPING = re.compile(r".*\.bn\.num_batches_tracked$")


class CheckpointError(ValueError):
    """The state dict does not match the architecture: names the offending keys."""


def load_pth(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a ``.pth`` file (``{"model": state_dict}`` or a bare state dict) to numpy.

    Needs PyTorch (``pip install 'siameseim-tf[torch]'``); loads with ``weights_only=True``,
    so no code in the file is executed.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "reading a .pth checkpoint needs PyTorch: pip install 'siameseim-tf[torch]' "
            "(or pass a dict of numpy arrays)"
        ) from error
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return as_numpy_state_dict(checkpoint)


def as_numpy_state_dict(checkpoint: Mapping) -> dict[str, np.ndarray]:
    """Unwraps ``{"model": ...}`` and turns tensors into numpy arrays."""
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        checkpoint = checkpoint["model"]
    out = {}
    for name, value in checkpoint.items():
        if hasattr(value, "detach"):
            value = (
                value.detach().cpu().float().numpy()
                if value.is_floating_point()
                else value.detach().cpu().numpy()
            )
        out[name] = np.asarray(value)
    return out


def _count(state_dict: Mapping, prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return max(found) + 1 if found else 0


def _require(state_dict: Mapping, key: str) -> np.ndarray:
    if key not in state_dict:
        raise CheckpointError(f"missing key {key!r}: not a SiameseIM / timm ViT state dict")
    return np.asarray(state_dict[key])


def infer_encoder_arguments(state_dict: Mapping) -> dict:
    """Encoder size from tensor shapes: embed_dim, patch_size, image_size, depth, mlp_ratio."""
    embed_dim = _require(state_dict, "cls_token").shape[-1]
    patch_size = _require(state_dict, "patch_embed.proj.weight").shape[-1]
    num_patches = _require(state_dict, "pos_embed").shape[1] - 1
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches:
        raise CheckpointError(f"pos_embed holds {num_patches} patches: not a square grid")
    depth = _count(state_dict, "blocks")
    hidden = _require(state_dict, "blocks.0.mlp.fc1.weight").shape[0]
    return dict(
        image_size=grid * patch_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        mlp_ratio=hidden / embed_dim,
    )


def _decoder_norm(state_dict: Mapping) -> str:
    kinds = {
        "batch" if ".bn." in key else "layer"
        for key in state_dict
        if re.match(r"^(projector|predictor)_decoder_blocks\.\d+\.norm1\.", key)
    }
    if len(kinds) != 1:
        raise CheckpointError(
            "projector and predictor use different norms (use_proj_ln != use_pred_ln): "
            "not supported; this implementation uses one `norm` for both"
        )
    return kinds.pop()


def infer_siameseim_arguments(state_dict: Mapping) -> dict:
    """SiameseIM constructor arguments readable from a pretraining state dict's shapes."""
    arguments = infer_encoder_arguments(state_dict)
    arguments.update(
        decoder_dim=_require(state_dict, "decoder_embed.weight").shape[0],
        projector_depth=_count(state_dict, "projector_decoder_blocks"),
        predictor_depth=_count(state_dict, "predictor_decoder_blocks"),
        norm=_decoder_norm(state_dict),
    )
    return arguments


def assign_from_table(table: Mapping, state_dict: Mapping) -> None:
    """Sets every variable of ``table`` from ``state_dict``; all mismatches are errors."""
    expected = set(table)
    given = {key for key in state_dict if not _BOOKKEEPING.match(key)}
    problems = []
    if missing := sorted(expected - given):
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unknown := sorted(given - expected):
        problems.append(f"unknown keys ({len(unknown)}): {', '.join(unknown)}")
    converted = {}
    for name in sorted(expected & given):
        entry = table[name]
        value = to_keras_layout(np.asarray(state_dict[name], dtype=np.float32), entry.kind)
        if tuple(value.shape) != tuple(entry.variables[0].shape):
            problems.append(
                f"shape of {name}: checkpoint {tuple(value.shape)} (Keras layout) "
                f"vs model {tuple(entry.variables[0].shape)}"
            )
        converted[name] = value
    if problems:
        raise CheckpointError("state dict does not match the model:\n  " + "\n  ".join(problems))
    for name, value in converted.items():
        for variable in table[name].variables:
            variable.assign(value)


def table_to_state_dict(table: Mapping) -> dict[str, np.ndarray]:
    """The official-layout state dict of the variables in ``table``."""
    state_dict = {}
    for name, entry in table.items():
        value = keras.ops.convert_to_numpy(entry.variables[0]).astype(np.float32)
        state_dict[name] = to_official_layout(value, entry.kind)
        if name.endswith(".bn.running_var"):
            state_dict[name.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
    return state_dict


def from_official_state_dict(
    state_dict: Mapping | str | Path, num_heads: int, decoder_num_heads: int = 16, **overrides
) -> SiameseIM:
    """A SiameseIM holding every weight of the authors' pretraining checkpoint.

    Args:
        state_dict: mapping name -> array (numpy or torch), ``{"model": ...}``, or a
            ``.pth`` path (needs the ``torch`` extra).
        num_heads: encoder heads (not recoverable from shapes).
        decoder_num_heads: heads of projector / predictor blocks (16 in the paper).
        **overrides: other SiameseIM arguments, e.g. ``num_masked_patches=118``.

    Raises:
        CheckpointError: listing missing, unknown or mis-shaped keys.
    """
    if isinstance(state_dict, (str, Path)):
        state_dict = load_pth(state_dict)
    state_dict = as_numpy_state_dict(state_dict)
    arguments = {**infer_siameseim_arguments(state_dict), **overrides}
    model = SiameseIM(num_heads=num_heads, decoder_num_heads=decoder_num_heads, **arguments)
    assign_from_table(siameseim_entries(model), state_dict)
    return model


def to_official_state_dict(model: SiameseIM) -> dict[str, np.ndarray]:
    """The model's weights in the authors' layout (for PyTorch, or a round trip)."""
    return table_to_state_dict(siameseim_entries(model))


def encoder_from_official_state_dict(
    state_dict: Mapping | str | Path, num_heads: int, **overrides
) -> tuple[ViTEncoder, keras.layers.Dense | None]:
    """The encoder of a fine-tuned (or plain timm ViT) checkpoint, and its head if any.

    ``fc_norm.*`` becomes the pooled-feature LayerNorm, ``norm.*`` the final norm,
    ``head.*`` a Dense classifier returned beside the encoder (None without one).
    """
    if isinstance(state_dict, (str, Path)):
        state_dict = load_pth(state_dict)
    state_dict = as_numpy_state_dict(state_dict)
    arguments = dict(
        infer_encoder_arguments(state_dict),
        final_norm="norm.weight" in state_dict,
        pool_norm="fc_norm.weight" in state_dict,
    )
    encoder = ViTEncoder(num_heads=num_heads, **{**arguments, **overrides})
    table: dict = {}
    encoder_entries(table, encoder)
    head = None
    if "head.weight" in state_dict:
        num_classes, width = np.asarray(state_dict["head.weight"]).shape
        head = keras.layers.Dense(num_classes, name="head")
        head.build((None, width))
        table["head.weight"] = Entry((head.kernel,), LINEAR)
        table["head.bias"] = Entry((head.bias,))
    assign_from_table(table, state_dict)
    return encoder, head


def encoder_to_official_state_dict(encoder: ViTEncoder) -> dict[str, np.ndarray]:
    """An encoder's weights in timm / official layout."""
    table: dict = {}
    encoder_entries(table, encoder)
    return table_to_state_dict(table)
