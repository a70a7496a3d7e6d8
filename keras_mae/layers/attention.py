"""Multi-head self-attention with a fused qkv projection."""

import keras
from keras import ops

from keras_mae.config import attention_kernel, flash_attention_argument
from keras_mae.layers.token_dense import TokenDense


@keras.saving.register_keras_serializable(package="keras_mae")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention as the ViT of the official MAE.

    One `Dense(3 * D)` projection (with bias) produces queries, keys and values,
    laid out `[q | k | v]` with heads contiguous inside each, then scaled
    dot-product attention (`keras.ops.dot_product_attention`, fused where the
    backend has it) and an output `Dense(D)`. The kernel is
    `keras_mae.config.attention_kernel`'s choice; by default two CPU paths
    differ: PyTorch in 16-bit floats uses `explicit_attention`, and JAX uses
    `attention_keeping_weights`, the same values with less memory kept for
    the backward pass.

    Args:
        hidden_dim: int `D`.
        num_heads: int, dividing `D`.
        qkv_bias: bool, whether the qkv projection has a bias.
        **kwargs: standard layer arguments.

    Call arguments:
        x: `(B, N, D)`.

    Returns:
        `(B, N, D)`.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import MultiHeadSelfAttention
    MultiHeadSelfAttention(64, 4)(np.zeros((2, 10, 64), "float32")).shape
    ```
    """

    def __init__(self, hidden_dim, num_heads, qkv_bias=True, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"num_heads={num_heads} does not divide hidden_dim={hidden_dim}"
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.qkv_bias = qkv_bias
        self.head_dim = hidden_dim // num_heads
        self.qkv = TokenDense(
            3 * hidden_dim, use_bias=qkv_bias, dtype=self.dtype_policy, name="qkv"
        )
        self.proj = TokenDense(hidden_dim, dtype=self.dtype_policy, name="proj")

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x):
        length = x.shape[1]
        qkv = ops.reshape(self.qkv(x), (-1, length, 3, self.num_heads, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        kernel = attention_kernel(x)
        if kernel == "explicit":
            out = explicit_attention(q, k, v)
        elif kernel == "keep_weights":
            out = attention_keeping_weights(q, k, v)
        else:
            out = ops.dot_product_attention(
                q, k, v, flash_attention=flash_attention_argument()
            )
        return self.proj(ops.reshape(out, (-1, length, self.hidden_dim)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "qkv_bias": self.qkv_bias,
            }
        )
        return config


def explicit_attention(q, k, v):
    """`softmax(q k^T / sqrt(d)) v` as two products and a float32 softmax.

    Args:
        q, k, v: `(B, N, H, d)`.

    Returns:
        `(B, N, H, d)` in the dtype of `q`.
    """
    scores = ops.einsum("bqhd,bkhd->bhqk", q, k) * ops.cast(q.shape[-1] ** -0.5, q.dtype)
    weights = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), v.dtype)
    return ops.einsum("bhqk,bkhd->bqhd", weights, v)


def attention_keeping_weights(q, k, v):
    """`explicit_attention` whose gradient keeps only the attention weights.

    The backward pass is written out (`keras.ops.custom_gradient`): with
    weights `P`, `dV = P^T dO`, `dS = P * (dP - rowsum(dP * P)) / sqrt(d)`
    for `dP = dO V^T`, then `dQ = dS K`, `dK = dS^T Q`. XLA otherwise keeps
    the scores and two elementwise results of them, three `(B, H, N, N)`
    tensors per block; here it keeps `P`. The values are those of
    `explicit_attention`. It saves memory on JAX with a CPU, where
    `keras_mae.config` picks it; measured by `benchmarks/peak_memory.py`.

    Args:
        q, k, v: `(B, N, H, d)`.

    Returns:
        `(B, N, H, d)` in the dtype of `q`.
    """
    scale = q.shape[-1] ** -0.5

    @ops.custom_gradient
    def attend(q, k, v):
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", q, k), "float32") * scale
        weights = ops.cast(ops.softmax(scores, axis=-1), v.dtype)

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            d_v = ops.einsum("bhqk,bqhd->bkhd", weights, upstream)
            d_weights = ops.cast(ops.einsum("bqhd,bkhd->bhqk", upstream, v), "float32")
            p = ops.cast(weights, "float32")
            d_scores = p * (d_weights - ops.sum(d_weights * p, axis=-1, keepdims=True)) * scale
            d_scores = ops.cast(d_scores, q.dtype)
            d_q = ops.einsum("bhqk,bkhd->bqhd", d_scores, k)
            d_k = ops.einsum("bhqk,bqhd->bkhd", d_scores, q)
            return d_q, d_k, d_v

        return ops.einsum("bhqk,bkhd->bqhd", weights, v), grad

    return attend(q, k, v)

