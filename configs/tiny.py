"""The tiny model: seconds per epoch on a CPU; the sizes every test uses too.

Command:
    siameseim pretrain --config tiny --output runs/tiny --set train.epochs=1
Expected: a finite, slowly falling loss; no accuracy claim.
"""

# Shared by the SiameseIM recipe below and MAE_MODEL (tests build both from here).
ENCODER = dict(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0)
DECODER = dict(decoder_dim=16, decoder_num_heads=2)

CONFIG = {
    "method": "siameseim",
    "model": dict(
        **ENCODER,
        **DECODER,
        projector_depth=1,
        predictor_depth=2,
        num_masked_patches=10,
        clip_grad_norm=1.0,
    ),
    "train": dict(epochs=1, global_batch_size=32, base_lr=1.5e-4, warmup_epochs=0.5, crop_min=0.2),
}

# The MAE baseline at the same sizes (its decoder: 2 blocks of the same width).
MAE_MODEL = dict(**ENCODER, **DECODER, decoder_depth=2)
