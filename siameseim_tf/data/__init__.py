"""The two-view pretraining data pipeline (method §1-2), its sources and the view picture.

Batch contract of :func:`build_pretraining_dataset`: view1, view2 float32 [B, S, S, 3]
(ImageNet-normalised), rel_pos float32 [B, 6] (method §1 order), mask int32 [B, N] with
exactly ``num_masked`` ones (1 = masked). See docs/data_pipeline.md.
"""

from siameseim_tf.data.bad_input import BadInputError, SkipReport
from siameseim_tf.data.crop import BOX_COLUMNS, REL_POS_COLUMNS
from siameseim_tf.data.folder import image_folder_source
from siameseim_tf.data.idx import idx_source, load_idx_split, read_idx
from siameseim_tf.data.loaders import load_folder_split, load_labelled_split, open_source
from siameseim_tf.data.masking import block_mask
from siameseim_tf.data.pipeline import (
    build_dataset,
    build_pretraining_dataset,
    distribute_pretraining_dataset,
)
from siameseim_tf.data.records import tfds_source, tfrecord_source, write_tfrecords
from siameseim_tf.data.source import ImageSource, array_source
from siameseim_tf.data.views import ViewConfig, make_example, make_single_view, make_views
from siameseim_tf.data.visualize import visualize_views

__all__ = [
    "BOX_COLUMNS",
    "REL_POS_COLUMNS",
    "BadInputError",
    "ImageSource",
    "SkipReport",
    "ViewConfig",
    "array_source",
    "block_mask",
    "build_dataset",
    "build_pretraining_dataset",
    "distribute_pretraining_dataset",
    "idx_source",
    "image_folder_source",
    "load_folder_split",
    "load_idx_split",
    "load_labelled_split",
    "make_example",
    "make_single_view",
    "make_views",
    "open_source",
    "read_idx",
    "tfds_source",
    "tfrecord_source",
    "visualize_views",
    "write_tfrecords",
]
