"""A seconds-long fine-tuning run for tests and smoke checks (not a recipe for quality).

Command:
    siameseim finetune --checkpoint encoder.keras --data DIR --config finetune_tiny \\
        --output /tmp/ft
Expected: finishes in well under a minute on a CPU; top-1 above chance only.
"""

CONFIG = {
    "method": "finetune",
    "train": dict(
        epochs=1,
        global_batch_size=16,
        base_lr=2e-3,
        drop_path_rate=0.0,
        augmentation=dict(crop_min=0.3),
        precision="float32",
        eval_batch_size=64,
    ),
}
