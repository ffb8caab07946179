"""An upper bound on what fusing the blocks' element-wise work could give: the train step
with every LayerNorm, bias + GELU, bias + residual add (forward and backward) and
TokenBatchNorm replaced by identities that cost nothing. **Not the method** (the step
computes something else); every matmul and the attention op still run on tensors of the
same shapes, so the time saved is what those passes cost, the most any fusion of them
into the products could save.

``benchmarks/step_env.py`` applies it in a child whose environment sets
``SIAMESEIM_BENCH_FREE_ELEMENTWISE=1``:

    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/step_env.py --graph \\
        --rounds 3 --variant "" --variant "SIAMESEIM_BENCH_FREE_ELEMENTWISE=1"
"""

from __future__ import annotations

ENV = "SIAMESEIM_BENCH_FREE_ELEMENTWISE"


def _identity(x, *params):
    """``x`` unchanged; its gradient passes ``dy`` on and zeros to ``params`` (so the
    optimiser still sees one for each weight)."""
    import tensorflow as tf

    @tf.custom_gradient
    def identity(inputs, *weights):
        def grad(dy):
            return (dy, *[tf.zeros_like(w) for w in weights])

        return tf.identity(inputs), grad

    return identity(x, *[tf.convert_to_tensor(p) for p in params])


def free_layer_norm(x, gamma, beta, epsilon: float, backend: str = "auto"):
    return _identity(x, gamma, beta)


def free_bias_gelu(x, bias, backend: str = "auto"):
    return _identity(x, bias)


def free_bias_add_residual(x, bias, residual, backend: str = "auto"):
    return _identity(x, bias)  # the residual is dropped: no pass over it either way


def free_batch_norm(x, gamma, beta, epsilon: float, reduce_sum=None, backend: str = "auto"):
    """TokenBatchNorm's ``(y, mean, variance, count)`` with y = x, mean 0, variance 1."""
    import tensorflow as tf

    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    zeros = tf.zeros_like(tf.convert_to_tensor(gamma))
    return _identity(x, gamma, beta), zeros, zeros + 1.0, count


def patch() -> dict:
    """Swaps the free versions into the modules that call the fused kernels; returns the
    originals, for ``restore``."""
    from siameseim_tf.layers import norms, transformer

    swaps = {
        (transformer, "layer_norm_fused"): free_layer_norm,
        (transformer, "bias_gelu_fused"): free_bias_gelu,
        (transformer, "bias_add_residual_fused"): free_bias_add_residual,
        (norms, "batch_norm_fused"): free_batch_norm,
    }
    originals = {}
    for (module, name), free in swaps.items():
        originals[(module, name)] = getattr(module, name)
        setattr(module, name, free)
    return originals


def restore(originals: dict) -> None:
    for (module, name), original in originals.items():
        setattr(module, name, original)
