"""FLOP counting used by benchmarks/train_step.py."""

from siameseim_tf.models.flops import block_flops, siameseim_step_flops
from tests.helpers import TINY


def test_block_flops_by_hand():
    # tokens 2, dim 4, hidden 4: 2*2*(3*16 + 16 + 2*16) = 384 matmul FLOPs, attention 4*4*4 = 64
    assert block_flops(tokens=2, dim=4, mlp_ratio=1.0) == 448


def test_step_flops_scale_with_batch_and_grow_with_visible_tokens():
    one = siameseim_step_flops(1, **TINY)
    assert siameseim_step_flops(8, **TINY) == 8 * one
    fewer_masked = dict(TINY, num_masked_patches=TINY["num_masked_patches"] - 4)
    assert siameseim_step_flops(1, **fewer_masked) > one
