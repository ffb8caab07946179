"""UniGrad loss (method §5) and its replica-aware correlation statistic."""

from __future__ import annotations

from keras import ops

from siameseim_tf.layers.distributed import cross_replica_mean


def normalize_target(target, epsilon: float = 1e-5):
    """LayerNorm without affine parameters over the last axis, in float32."""
    target = ops.cast(target, "float32")
    mean = ops.mean(target, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(target - mean), axis=-1, keepdims=True)
    return (target - mean) * ops.rsqrt(variance + epsilon)


def unigrad_terms(pred, target, cross_replica: bool = True):
    """The two UniGrad terms before weighting.

    Args:
        pred: [B, N, D] predictions (or [rows, D]).
        target: [B, N, D] target features *before* the parameter-free LayerNorm.
        cross_replica: average the correlation matrix over all replicas (method §5); the
            global batch statistic, as the paper's all-reduce.

    Returns:
        (pos, neg): pos = mean_rows ||p - t||^2, neg = mean_rows p C p^T with
        C = t^T t / rows (replica-averaged). The target gets no gradient.
    """
    dim = pred.shape[-1]
    p = ops.reshape(ops.cast(pred, "float32"), (-1, dim))  # [B*N, D]
    t = ops.stop_gradient(ops.reshape(normalize_target(target), (-1, dim)))  # [B*N, D]
    rows = ops.cast(ops.shape(t)[0], "float32")
    pos = ops.mean(ops.sum(ops.square(p - t), axis=-1))
    correlation = ops.matmul(ops.transpose(t), t) / rows  # [D, D]
    if cross_replica:
        correlation = cross_replica_mean(correlation)
    neg = ops.mean(ops.sum(ops.matmul(p, correlation) * p, axis=-1))
    return pos, neg


def unigrad_loss(pred, target, neg_weight: float = 0.02, cross_replica: bool = True):
    """UniGrad: (pos + neg_weight * neg) / D (method §5). Scalar float32."""
    pos, neg = unigrad_terms(pred, target, cross_replica)
    return (pos + neg_weight * neg) / pred.shape[-1]
