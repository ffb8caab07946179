"""The paper's linear probe protocol (frozen encoder, BatchNorm + linear head, LARS, crops
and flips), shortened for a CPU.

Command:
    siameseim finetune --checkpoint runs/demo/encoder.keras --data /tmp/fm10k \\
        --config linprobe_cpu --output runs/demo_linprobe
Expected: see docs/finetune.md (measured beside the cached-features linear probe).

Deviations from linprobe_vit_base: batch 256 without accumulation (paper 16384), 20 epochs
(paper 90), crop scale 0.3-1 (0.08 of a 28 px image is a few pixels), float32.
"""

CONFIG = {
    "method": "finetune",
    "train": dict(
        protocol="linear",
        epochs=20,
        warmup_epochs=2,
        global_batch_size=256,
        base_lr=0.1,
        min_lr=0.0,
        weight_decay=0.0,
        augmentation=dict(crop_min=0.3),
        precision="float32",
    ),
}
