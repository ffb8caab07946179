"""Models: the ViT encoder, SiameseIM and the MAE baseline."""

from siameseim_tf.models.mae import MAE
from siameseim_tf.models.siameseim import SiameseIM
from siameseim_tf.models.vit import VIT_PRESETS, ViTEncoder, preset_arguments

__all__ = ["MAE", "SiameseIM", "VIT_PRESETS", "ViTEncoder", "preset_arguments"]
