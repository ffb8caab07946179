"""The paper's linear probe protocol (frozen encoder, BatchNorm + linear head, LARS, crops
and flips), shortened for a CPU.

Command:
    siameseim finetune --checkpoint runs/demo/encoder.keras --data /tmp/fm10k \\
        --config linprobe_cpu --output runs/demo_linprobe
Expected: see docs/finetune.md (measured beside the cached-features linear probe).

Deviations from linprobe_vit_base: batch 256 without accumulation (paper 16384), 20 epochs
(paper 90), the evaluation geometry + a random window instead of random resized crops
(see finetune_cpu), float32; base lr
6.4 so that the lr is the paper's absolute value (0.1 x 16384 / 256 = 6.4): LARS scales
each step by 0.001 x |w| / |g|, and the batch-scaled 0.1 x 256 / 256 left the head near
its initialisation (49.0 % on digits after 600 steps, seed 0).
"""

CONFIG = {
    "method": "finetune",
    "train": dict(
        protocol="linear",
        epochs=20,
        warmup_epochs=2,
        global_batch_size=256,
        base_lr=6.4,
        min_lr=0.0,
        weight_decay=0.0,
        augmentation=dict(crop="resize_then_crop"),
        precision="float32",
    ),
}
