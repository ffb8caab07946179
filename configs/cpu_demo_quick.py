"""The demo's quick path (``siameseim demo --quick``): every step of ``cpu_demo`` on a tiny
model and small subsets, in under 2 minutes on 2 CPU cores. For tests; no accuracy claim.

Command:
    siameseim demo --quick --output /tmp/demo_quick
"""

CONFIG = {
    "method": "siameseim",
    "model": dict(
        image_size=28,
        patch_size=7,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        decoder_dim=32,
        decoder_num_heads=2,
        projector_depth=1,
        predictor_depth=1,
        num_masked_patches=10,
        clip_grad_norm=1.0,
    ),
    "train": dict(
        epochs=1,
        global_batch_size=64,
        base_lr=1e-3,
        warmup_epochs=0.2,
        crop_min=0.3,
        precision="auto",  # bf16 where the CPU multiplies it natively, else float32
    ),
}

DEMO = dict(
    pretrain_limit=1024,
    eval_train_limit=2000,
    eval_test_limit=500,
    linear_epochs=5,
    linear_batch_size=256,
    embedding_points=300,
    projection="pca",
    retrieval_queries=4,
    retrieval_neighbours=5,
)
