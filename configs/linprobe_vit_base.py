"""The paper's linear probe (method §7) for a ViT-B/16 pretrained 1600 epochs.

Command (any strategy; 4096 images per step, gradients of 4 steps per update):
    siameseim finetune --checkpoint runs/vit_base/encoder.keras --data /data/imagenet \\
        --config linprobe_vit_base --output runs/vit_base_linprobe
Expected: 78.0 top-1 on ImageNet-1K val (the paper's figure; not reproduced here: no GPU,
no ImageNet).

Recipe (MAE's main_linprobe.py, which SiameseIM's follows): frozen encoder, mean-pooled
patch tokens, BatchNorm without affine (eps 1e-6) + linear head (trunc-normal 0.01), LARS
(momentum 0.9, trust 0.001), base lr 0.1 x batch / 256, weight decay 0, effective batch
16384, 90 epochs, 10 warmup, random resized crop (0.08-1) + flip, no other augmentation.
"""

CONFIG = {
    "method": "finetune",
    "train": dict(
        protocol="linear",
        epochs=90,
        warmup_epochs=10,
        global_batch_size=4096,
        accumulation_steps=4,  # effective batch 16384
        base_lr=0.1,
        min_lr=0.0,
        weight_decay=0.0,
        augmentation=dict(crop_min=0.08),
        precision="auto",  # bf16 on Ampere+ GPUs and bf16 CPUs, else fp16 / fp32 (hardware.py)
    ),
}
