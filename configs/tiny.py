"""A tiny SiameseIM for tests and smoke runs: seconds per epoch on a CPU.

Command:
    siameseim pretrain --config tiny --output runs/tiny --set train.epochs=1
Expected: a finite, slowly falling loss; no accuracy claim.
"""

CONFIG = {
    "method": "siameseim",
    "model": dict(
        image_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=4,
        mlp_ratio=2.0,
        decoder_dim=16,
        decoder_num_heads=2,
        projector_depth=1,
        predictor_depth=1,
        num_masked_patches=10,
        clip_grad_norm=1.0,
    ),
    "train": dict(epochs=1, global_batch_size=32, base_lr=1.5e-4, warmup_epochs=0.5, crop_min=0.2),
}
