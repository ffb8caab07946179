"""SiameseIM ViT-L/16, 1600 epochs on ImageNet-1K (method §3 sizes, §6 hyperparameters).

Command:
    siameseim pretrain --config vit_large_1600ep --data /data/imagenet/train --output runs/vitl
Expected: method.md publishes no ViT-L numbers; the paper reports ViT-L above ViT-B.
Only the encoder size differs from the ViT-B recipe (E 1024, 24 blocks, 16 heads).
"""

from siameseim_tf.configs import _paper

CONFIG = {
    "method": "siameseim",
    "model": dict(preset="large", **_paper.PAPER_MODEL),
    "train": dict(_paper.PAPER_TRAIN),
}
