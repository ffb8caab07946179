"""Names and layouts of the authors' PyTorch state dict (method §8) for our Keras weights.

One table, built from a model, serves both directions, so import and export cannot
disagree: official name -> the Keras variables it fills and how the array is laid out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siameseim_tf.layers import TokenBatchNorm, TransformerBlock

# PyTorch Linear weights are [out, in]; Keras Dense kernels are [in, out].
LINEAR, CONV, COPY = "linear", "conv", "copy"


@dataclass(frozen=True)
class Entry:
    """One official tensor: the Keras variables it sets and its layout kind."""

    variables: tuple
    kind: str = COPY


def to_keras_layout(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == LINEAR:
        return array.T
    if kind == CONV:  # [E, C, P, P] -> [P, P, C, E]
        return array.transpose(2, 3, 1, 0)
    return array


def to_official_layout(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == LINEAR:
        return array.T
    if kind == CONV:  # [P, P, C, E] -> [E, C, P, P]
        return array.transpose(3, 2, 0, 1)
    return array


def _dense(table: dict, name: str, layer) -> None:
    table[f"{name}.weight"] = Entry((layer.kernel,), LINEAR)
    if layer.use_bias:
        table[f"{name}.bias"] = Entry((layer.bias,))


def _norm(table: dict, name: str, layer) -> None:
    if isinstance(layer, TokenBatchNorm):
        for suffix, variable in (
            ("weight", layer.gamma),
            ("bias", layer.beta),
            ("running_mean", layer.moving_mean),
            ("running_var", layer.moving_variance),
        ):
            table[f"{name}.bn.{suffix}"] = Entry((variable,))
    else:
        table[f"{name}.weight"] = Entry((layer.gamma,))
        table[f"{name}.bias"] = Entry((layer.beta,))


def block_entries(table: dict, name: str, block: TransformerBlock) -> None:
    """timm block layout: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2, ls1, ls2."""
    _norm(table, f"{name}.norm1", block.norm1)
    _dense(table, f"{name}.attn.qkv", block.attn.qkv)
    _dense(table, f"{name}.attn.proj", block.attn.proj)
    _norm(table, f"{name}.norm2", block.norm2)
    _dense(table, f"{name}.mlp.fc1", block.fc1)
    _dense(table, f"{name}.mlp.fc2", block.fc2)
    if block.layer_scale is not None:
        table[f"{name}.ls1.gamma"] = Entry((block.gamma1,))
        table[f"{name}.ls2.gamma"] = Entry((block.gamma2,))


def encoder_entries(table: dict, encoder, prefix: str = "", with_pos_embed: bool = True) -> None:
    """The timm ViT keys of one encoder; ``prefix`` is "mm_" for the momentum copy."""
    table[f"{prefix}cls_token"] = Entry((encoder.cls_token,))
    table[f"{prefix}patch_embed.proj.weight"] = Entry((encoder.patch_embed.proj.kernel,), CONV)
    table[f"{prefix}patch_embed.proj.bias"] = Entry((encoder.patch_embed.proj.bias,))
    if with_pos_embed:
        table["pos_embed"] = Entry((encoder.pos_embed,))
    for k, block in enumerate(encoder.blocks):
        block_entries(table, f"{prefix}blocks.{k}", block)
    if encoder.norm is not None:
        _norm(table, f"{prefix}norm", encoder.norm)
    if encoder.fc_norm is not None:
        _norm(table, f"{prefix}fc_norm", encoder.fc_norm)


def siameseim_entries(model) -> dict[str, Entry]:
    """Official name -> Entry for every weight of a SiameseIM (online, target, statistics)."""
    table: dict[str, Entry] = {}
    encoder_entries(table, model.encoder)
    encoder_entries(table, model.target_encoder, prefix="mm_", with_pos_embed=False)
    # Both branches add the same fixed table (the authors keep one `pos_embed`).
    table["pos_embed"] = Entry((model.encoder.pos_embed, model.target_encoder.pos_embed))
    for prefix, embed, projector, mask_token in (
        ("", model.decoder_embed, model.projector_blocks, model.mask_token),
        ("mm_", model.target_decoder_embed, model.target_projector_blocks, model.target_mask_token),
    ):
        _dense(table, f"{prefix}decoder_embed", embed)
        table[f"{prefix}mask_token"] = Entry((mask_token,))
        for k, block in enumerate(projector):
            block_entries(table, f"{prefix}projector_decoder_blocks.{k}", block)
    table["decoder_pos_embed"] = Entry((model.decoder_pos_embed,))
    _dense(table, "decoder_pos_mlp", model.decoder_pos_mlp)
    for k, block in enumerate(model.predictor_blocks):
        block_entries(table, f"predictor_decoder_blocks.{k}", block)
    _dense(table, "decoder_pred", model.decoder_pred)
    return table
