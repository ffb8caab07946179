"""SiameseIM ViT-B/16, 1600 epochs on ImageNet-1K: the paper's main recipe (method §6).

Command (any number of GPUs on one machine, or TF_CONFIG for several machines):
    siameseim pretrain --config vit_base_1600ep --data /data/imagenet/train --output runs/vitb
Expected (paper, method §7): fine-tune 84.1 top-1, linear probe 78.0, 1 % few-shot 65.1.
Global batch 4096 is the paper's 64 GPUs x 64 images; the lr follows base_lr * batch / 256.
"""

from siameseim_tf.configs import _paper

CONFIG = {
    "method": "siameseim",
    "model": dict(preset="base", **_paper.PAPER_MODEL),
    "train": dict(_paper.PAPER_TRAIN),
}
