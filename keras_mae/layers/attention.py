"""Multi-head self-attention with a fused qkv projection."""

import keras
from keras import ops

from keras_mae.layers.token_dense import TokenDense


@keras.saving.register_keras_serializable(package="keras_mae")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention as the ViT of the official MAE.

    One `Dense(3 * D)` projection (with bias) produces queries, keys and values,
    laid out `[q | k | v]` with heads contiguous inside each, then scaled
    dot-product attention (`keras.ops.dot_product_attention`, fused where the
    backend has it) and an output `Dense(D)`.

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
        if _explicit_is_faster(x):
            out = explicit_attention(q, k, v)
        else:
            out = ops.dot_product_attention(q, k, v, flash_attention=_flash_attention())
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


def _flash_attention():
    """`flash_attention` for `ops.dot_product_attention`: False on PyTorch, else None (auto).

    PyTorch's `scaled_dot_product_attention` picks its fastest kernel itself
    (flash on a GPU); Keras' own check before it builds a pybind object that
    `torch.compile` cannot trace, one graph break per attention layer.
    """
    return False if keras.backend.backend() == "torch" else None


def _explicit_is_faster(x):
    """Whether to avoid PyTorch's fused attention: on its CPU kernel in 16-bit floats.

    Measured on a 2-core CPU (tiny config, batch 128, mixed_bfloat16): the
    fused kernel's backward took 450 ms of a 1.08 s step; with
    `explicit_attention` the step ran 195-203 img/s instead of 134-138. In
    float32 the fused kernel is the faster (117-121 vs 108-119 img/s), so it
    stays; GPUs and the other backends keep `ops.dot_product_attention`.
    """
    return (keras.backend.backend() == "torch" and getattr(x.device, "type", None) == "cpu"
            and keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16"))
