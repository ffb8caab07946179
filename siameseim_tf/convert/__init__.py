"""Import of the authors' released PyTorch checkpoints (method §8)."""

from siameseim_tf.convert.official import (
    CheckpointError,
    as_numpy_state_dict,
    encoder_from_official_state_dict,
    encoder_to_official_state_dict,
    from_official_state_dict,
    infer_siameseim_arguments,
    load_pth,
    to_official_state_dict,
)

__all__ = [
    "CheckpointError",
    "as_numpy_state_dict",
    "encoder_from_official_state_dict",
    "encoder_to_official_state_dict",
    "from_official_state_dict",
    "infer_siameseim_arguments",
    "load_pth",
    "to_official_state_dict",
]
