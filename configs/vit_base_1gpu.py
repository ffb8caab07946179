"""SiameseIM ViT-B/16 on a single GPU: the paper recipe with a batch one GPU holds.

Command:
    siameseim pretrain --config vit_base_1gpu --data /data/imagenet/train --output runs/vitb1
Expected: same recipe as vit_base_1600ep with global batch 128; lr is scaled linearly
(6.25e-5 * 128 / 256 = 3.1e-5). Small batches weaken the batch statistics UniGrad and
BatchNorm rely on, so expect somewhat lower accuracy than the paper's 4096 batch, and
about 32x more steps per epoch (plan on weeks for 1600 epochs on one GPU).
"""

from siameseim_tf.configs import _paper

CONFIG = {
    "method": "siameseim",
    "model": dict(preset="base", **_paper.PAPER_MODEL),
    "train": dict(_paper.PAPER_TRAIN, global_batch_size=128),
}
