"""Losses."""

from siameseim_tf.losses.unigrad import (
    cross_replica_mean,
    normalize_target,
    unigrad_loss,
    unigrad_terms,
)

__all__ = ["cross_replica_mean", "normalize_target", "unigrad_loss", "unigrad_terms"]
