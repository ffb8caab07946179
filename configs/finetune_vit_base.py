"""The paper's fine-tuning recipe (method §7) for a ViT-B/16 pretrained 1600 epochs.

Command (8 GPUs x 128 images, or any strategy with a global batch of 1024):
    siameseim finetune --checkpoint runs/vit_base/encoder.keras --data /data/imagenet \\
        --config finetune_vit_base --output runs/vit_base_ft
Expected: 84.1 top-1 on ImageNet-1K val (the paper's figure for SiameseIM ViT-B/16, 1600
pretraining epochs; not reproduced here: no GPU, no ImageNet).

Recipe (MAE's fine-tuning script, which SiameseIM's follows): 100 epochs, 5 warmup, batch
1024, base lr 2.5e-4 x batch / 256, min lr 1e-6, AdamW (0.9, 0.999), weight decay 0.05,
layer-wise lr decay 0.65, drop path 0.1, label smoothing 0.1, mixup 0.8 / cutmix 1.0
(switch 0.5), random resized crop (0.08-1) + flip, RandAugment rand-m9-mstd0.5-inc1,
random erasing 0.25; evaluation resize 256 + centre crop 224.
"""

CONFIG = {
    "method": "finetune",
    "train": dict(
        epochs=100,
        warmup_epochs=5,
        global_batch_size=1024,
        base_lr=2.5e-4,
        min_lr=1e-6,
        weight_decay=0.05,
        layer_decay=0.65,
        drop_path_rate=0.1,
        augmentation=dict(
            crop_min=0.08,
            rand_augment=True,
            rand_augment_magnitude=9.0,
            rand_augment_std=0.5,
            erase_prob=0.25,
            mixup_alpha=0.8,
            cutmix_alpha=1.0,
            switch_prob=0.5,
            label_smoothing=0.1,
        ),
        precision="auto",  # bf16 on Ampere+ GPUs and bf16 CPUs, else fp16 / fp32 (hardware.py)
    ),
}
