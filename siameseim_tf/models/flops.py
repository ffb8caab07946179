"""Model FLOPs of a SiameseIM training step, counted from the architecture (matmuls only).

A multiply-add counts as 2 FLOPs. Training costs 3x the forward (forward + two backward
matmuls) where gradients flow; the target branch and the frozen patch embedding run
forward only. Norms, softmax, GELU and the loss are left out (a few % at most).
"""

from __future__ import annotations


def block_flops(tokens: int, dim: int, mlp_ratio: float) -> int:
    """Forward FLOPs of one transformer block on ``tokens`` tokens of width ``dim``."""
    hidden = int(dim * mlp_ratio)
    projections = 2 * tokens * (3 * dim * dim + dim * dim + 2 * dim * hidden)  # qkv, proj, mlp
    attention = 2 * 2 * tokens * tokens * dim  # q k^T and attn v
    return projections + attention


def siameseim_step_flops(
    batch_size: int,
    image_size: int,
    patch_size: int,
    embed_dim: int,
    depth: int,
    mlp_ratio: float,
    decoder_dim: int,
    projector_depth: int,
    predictor_depth: int,
    num_masked_patches: int,
    **_,
) -> int:
    """Model FLOPs of one SiameseIM training step (online forward+backward, target forward)."""
    n = (image_size // patch_size) ** 2
    visible = n - num_masked_patches
    patch = 2 * n * 3 * patch_size**2 * embed_dim  # per image, full grid
    e, d = embed_dim, decoder_dim

    def branch(tokens: int) -> int:  # encoder + decoder_embed + projector, forward
        return (
            depth * block_flops(tokens, e, mlp_ratio)
            + 2 * tokens * e * d
            + projector_depth * block_flops(tokens, d, mlp_ratio)
        )

    predictor_tokens = 1 + visible + n
    online = (
        branch(1 + visible)
        + 2 * n * 2 * d * d  # + pos_mlp
        + predictor_depth * block_flops(predictor_tokens, d, mlp_ratio)
        + 2 * predictor_tokens * d * d
    )  # decoder_pred
    target = branch(1 + n)
    return batch_size * (3 * online + target + 2 * patch)
