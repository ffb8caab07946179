"""Models: the ViT encoder, SiameseIM, the MAE baseline and the fine-tuning classifier."""

from siameseim_tf.models.classifier import ViTClassifier
from siameseim_tf.models.mae import MAE
from siameseim_tf.models.siameseim import SiameseIM
from siameseim_tf.models.vit import VIT_PRESETS, ViTEncoder, preset_arguments

__all__ = ["MAE", "SiameseIM", "VIT_PRESETS", "ViTClassifier", "ViTEncoder", "preset_arguments"]
