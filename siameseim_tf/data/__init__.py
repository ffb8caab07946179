"""The two-view pretraining data pipeline (SPEC §1-2) and its sources."""

from siameseim_tf.data.crop import BOX_COLUMNS, REL_POS_COLUMNS
from siameseim_tf.data.masking import block_mask
from siameseim_tf.data.views import ViewConfig, make_example, make_views

__all__ = [
    "BOX_COLUMNS",
    "REL_POS_COLUMNS",
    "ViewConfig",
    "block_mask",
    "make_example",
    "make_views",
]
