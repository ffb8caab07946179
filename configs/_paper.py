"""The paper's pretraining hyperparameters (method §6), shared by the ViT recipes."""

PAPER_MODEL = dict(
    image_size=224,
    decoder_dim=768,  # D = 768 in the ViT-B recipe (512 is the code default)
    decoder_num_heads=16,
    projector_depth=2,
    predictor_depth=4,
    num_masked_patches=118,  # M = 118 of 196
    neg_weight=0.02,
    base_momentum=0.995,  # cosine to 1
    norm="batch",  # synchronised BatchNorm over tokens in projector / predictor
    train_patch_embed=False,
    clip_grad_norm=1.0,
)

PAPER_TRAIN = dict(
    epochs=1600,
    global_batch_size=4096,
    base_lr=6.25e-5,  # lr = base_lr * global_batch / 256
    warmup_epochs=40,
    weight_decay=0.05,
    crop_min=0.08,
    precision="auto",  # bf16 on Ampere+ GPUs and bf16 CPUs, fp16 on older GPUs (hardware.py)
    backup_every_steps=500,
    log_every_steps=50,
)
