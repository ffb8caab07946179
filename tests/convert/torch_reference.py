"""An independent PyTorch forward of SiameseIM in the authors' module layout (method §3-§6, §8).

Written from docs/method.md, with the module names of the official release, so that
``load_state_dict(strict=True)`` checks our key names and shapes and the forward checks
our tensor layouts (conv kernels, [out, in] linears, q/k/v stacking, BatchNorm statistics).
It is also the PyTorch side of ``benchmarks/train_step.py``, so it does the work the
authors' step does, not less: their attention subtracts each row's maximum before the
softmax (a line of their ``models_vit.Attention``, kept for fp16; ``subtract_max=False``
drops it), their LayerNorm and BatchNorm run in float32 with CUDA autocast off, and the
momentum update runs inside the forward when ``momentum`` is given (``mm_update``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PermuteBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    @torch.autocast("cuda", enabled=False)
    def forward(self, x):  # [B, T, C]
        return self.bn(x.permute(0, 2, 1).float()).permute(0, 2, 1)


class LayerNorm(nn.LayerNorm):
    """The authors' LayerNorm: float32 input, CUDA autocast off."""

    @torch.autocast("cuda", enabled=False)
    def forward(self, x):
        return super().forward(x.float())


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))  # exact erf GELU


class Attention(nn.Module):
    def __init__(self, dim, heads, subtract_max=True):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.subtract_max = subtract_max

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        if self.subtract_max:  # the authors' line; softmax does not change with it
            attn = attn - attn.max(-1)[0].unsqueeze(-1)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, batch_norm=False, subtract_max=True):
        super().__init__()
        norm = (lambda: PermuteBN(dim)) if batch_norm else (lambda: LayerNorm(dim, eps=1e-6))
        self.norm1, self.attn = norm(), Attention(dim, heads, subtract_max)
        self.norm2, self.mlp = norm(), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):  # [B, 3, S, S] -> [B, N, E]
        return self.proj(x).flatten(2).transpose(1, 2)


def relative_embedding(rel_pos, grid, dim):
    """method §4 in torch: [B, 6] -> [B, N, 2D]."""
    di, dj, dh, dw, flip, fdj = [rel_pos[:, k : k + 1] for k in range(6)]
    centres = torch.arange(grid, dtype=torch.float32) + 0.5
    r, c = centres.repeat_interleave(grid)[None], centres.repeat(grid)[None]
    h = dh * r + di * grid - 0.5
    w = torch.where(flip > 0.5, -dw * c + fdj * grid - 0.5, dw * c + dj * grid - 0.5)
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    omega = omega.float()
    parts = []
    for value in (h, w, (10 * torch.log(dh)).expand_as(h), (10 * torch.log(dw)).expand_as(h)):
        angle = value[..., None] * omega
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, -1)


class SiameseIMReference(nn.Module):
    def __init__(
        self,
        image_size,
        patch_size,
        embed_dim,
        depth,
        num_heads,
        mlp_ratio,
        decoder_dim,
        decoder_num_heads,
        projector_depth,
        predictor_depth,
        norm,
        subtract_max=True,
    ):
        super().__init__()
        self.grid = image_size // patch_size
        n = self.grid**2
        bn = norm == "batch"

        def encoder_blocks():
            return nn.ModuleList(
                Block(embed_dim, num_heads, mlp_ratio, subtract_max=subtract_max)
                for _ in range(depth)
            )

        def decoder_blocks(count):
            return nn.ModuleList(
                Block(decoder_dim, decoder_num_heads, mlp_ratio, bn, subtract_max)
                for _ in range(count)
            )

        self.patch_embed, self.mm_patch_embed = (
            PatchEmbed(patch_size, embed_dim),
            PatchEmbed(patch_size, embed_dim),
        )
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.mm_cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, embed_dim))
        self.blocks, self.mm_blocks = encoder_blocks(), encoder_blocks()
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mm_decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, decoder_dim) * 0.02)
        self.mm_mask_token = nn.Parameter(torch.randn(1, 1, decoder_dim) * 0.02)
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, n + 1, decoder_dim))
        self.projector_decoder_blocks = decoder_blocks(projector_depth)
        self.mm_projector_decoder_blocks = decoder_blocks(projector_depth)
        self.predictor_decoder_blocks = decoder_blocks(predictor_depth)
        self.decoder_pos_mlp = nn.Linear(2 * decoder_dim, decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, decoder_dim)

    @torch.no_grad()
    def mm_update(self, momentum):
        """target <- m * target + (1 - m) * online, parameter by parameter as the authors
        do (method §6; BatchNorm's running statistics are buffers: each branch keeps its own)."""
        pairs = [
            (self.patch_embed, self.mm_patch_embed),
            (self.blocks, self.mm_blocks),
            (self.decoder_embed, self.mm_decoder_embed),
            (self.projector_decoder_blocks, self.mm_projector_decoder_blocks),
        ]
        for online, target in pairs:
            for p, t in zip(online.parameters(), target.parameters()):
                t.data = t.data * momentum + p.data * (1.0 - momentum)
        for name in ("cls_token", "mask_token"):
            t = getattr(self, "mm_" + name)
            t.data = t.data * momentum + getattr(self, name).data * (1.0 - momentum)

    def forward(self, x1, x2, rel_pos, mask, momentum=None):
        b = x1.shape[0]
        keep = ~mask.bool()
        e = self.pos_embed.shape[-1]
        x = (self.patch_embed(x1) + self.pos_embed[:, 1:])[keep].view(b, -1, e)
        x = torch.cat([self.cls_token.expand(b, -1, -1) + self.pos_embed[:, :1], x], 1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(x)
        for blk in self.projector_decoder_blocks:
            x = blk(x)
        d = self.decoder_pos_embed.shape[-1]
        vis_pos = self.decoder_pos_embed[:, 1:].repeat(b, 1, 1)[keep].view(b, -1, d)
        queries = self.mask_token + self.decoder_pos_mlp(relative_embedding(rel_pos, self.grid, d))
        x = torch.cat([x[:, :1] + self.decoder_pos_embed[:, :1], x[:, 1:] + vis_pos, queries], 1)
        for blk in self.predictor_decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(x)[:, -(self.grid**2) :]
        with torch.no_grad():
            if momentum is not None:  # where the authors' forward updates the target
                self.mm_update(momentum)
            t = torch.cat([self.mm_cls_token.expand(b, -1, -1), self.mm_patch_embed(x2)], 1)
            t = t + self.pos_embed
            for blk in self.mm_blocks:
                t = blk(t)
            t = self.mm_decoder_embed(t)
            for blk in self.mm_projector_decoder_blocks:
                t = blk(t)
        return pred, t[:, 1:]


def unigrad(pred, target, neg_weight=0.02):
    """method §5, one replica."""
    t = nn.functional.layer_norm(target, target.shape[-1:], eps=1e-5).reshape(-1, target.shape[-1])
    p = pred.reshape(-1, pred.shape[-1])
    pos = ((p - t) ** 2).sum(-1).mean()
    neg = torch.diagonal(p @ (t.T @ t / t.shape[0]) @ p.T).mean()
    return (pos + neg_weight * neg) / p.shape[-1]


def to_torch_inputs(batch: dict) -> tuple:
    """Our NHWC batch dict -> (x1, x2, rel_pos, mask) as the reference takes them."""
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    return (
        nchw(batch["view1"]),
        nchw(batch["view2"]),
        torch.from_numpy(batch["rel_pos"]),
        torch.from_numpy(batch["mask"]),
    )
