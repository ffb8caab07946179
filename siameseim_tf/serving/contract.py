"""Names shared by the exporters and the server (no TensorFlow, no ONNX Runtime).

Both export formats and both serving protocols expose the same three outputs, computed
from the encoder's ``{"cls", "tokens", "pooled"}`` dict:

- ``embedding`` [B, E]: the pooled feature, i.e. the mean of the patch tokens (passed
  through ``fc_norm`` when the encoder was built with ``pool_norm=True``);
- ``cls`` [B, E]: the CLS-token output;
- ``patch_tokens`` [B, N, E]: all patch-token outputs, N = (S / P)^2.
"""

from __future__ import annotations

# Serving output name -> key of the ViTEncoder output dict.
OUTPUT_SOURCES: dict[str, str] = {"embedding": "pooled", "cls": "cls", "patch_tokens": "tokens"}
OUTPUT_NAMES: tuple[str, ...] = tuple(OUTPUT_SOURCES)
# A fine-tuned classifier exports one more output: softmax class probabilities [B, C].
PROBABILITIES = "probabilities"
META_CLASS_NAMES = "siameseim.class_names"

# SavedModel signatures.
SIGNATURE_ENCODED = "serving_default"  # input "images": tf.string [B] (JPEG / PNG bytes)
SIGNATURE_PIXELS = "embed_pixels"  # input "pixels": uint8 [B, H, W, 3], any H, W
ENCODED_INPUT_NAME = "images"
PIXELS_INPUT_NAME = "pixels"

# ONNX model: one input, float32 [B, S, S, 3] NHWC, already preprocessed.
ONNX_INPUT_NAME = "images"
ONNX_OPSET = 17
# Keys of the ONNX model's metadata_props.
META_MODEL_NAME = "siameseim.model_name"
META_VERSION = "siameseim.version"
META_IMAGE_SIZE = "siameseim.image_size"
META_RESIZE_SIZE = "siameseim.resize_size"
META_MEAN = "siameseim.mean"
META_STD = "siameseim.std"
META_LAYOUT = "siameseim.input_layout"
META_OUTPUTS = "siameseim.output_names"
META_PREPROCESSING = "siameseim.preprocessing"
INPUT_LAYOUT = "NHWC float32, preprocessed (resize, centre crop, ImageNet mean/std)"
