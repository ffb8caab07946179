"""SiameseIM on Fashion-MNIST in ~15 minutes on 2 CPU cores (``siameseim demo``).

Command:
    siameseim demo --output runs/demo          (or: make demo)
Expected: (being tuned; see docs/demo.md)
"""

CONFIG = {
    "method": "siameseim",
    "model": dict(
        image_size=28,
        patch_size=7,
        embed_dim=192,
        depth=4,
        num_heads=3,
        mlp_ratio=4.0,
        decoder_dim=128,
        decoder_num_heads=4,
        projector_depth=1,
        predictor_depth=2,
        num_masked_patches=10,
        clip_grad_norm=1.0,
    ),
    "train": dict(
        epochs=6,
        global_batch_size=256,
        base_lr=1e-3,
        warmup_epochs=1,
        crop_min=0.3,
        precision="float32",
    ),
}

DEMO = dict(
    linear_epochs=30,
    linear_batch_size=1024,
    budget_minutes=11,
)
