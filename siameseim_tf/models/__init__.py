"""Models: the ViT encoder and SiameseIM."""

from siameseim_tf.models.siameseim import SiameseIM
from siameseim_tf.models.vit import VIT_PRESETS, ViTEncoder, preset_arguments

__all__ = ["SiameseIM", "VIT_PRESETS", "ViTEncoder", "preset_arguments"]
