"""Pre-norm transformer block shared by the encoder and the decoder."""

import keras

from keras_mae.config import remat_mode
from keras_mae.layers.attention import MultiHeadSelfAttention
from keras_mae.layers.drop_path import DropPath
from keras_mae.layers.token_dense import TokenDense


@keras.saving.register_keras_serializable(package="keras_mae")
class TransformerBlock(keras.layers.Layer):
    """`x + attn(norm1(x))`, then `x + mlp(norm2(x))`, as the timm ViT block.

    Multi-head self-attention with qkv bias, an MLP of width
    `mlp_ratio * D` with exact GELU, LayerNorm with `layer_norm_epsilon`
    (1e-6 in the official MAE, 1e-12 in the Hugging Face port) and optional
    stochastic depth on both residual branches.

    Where `keras_mae.config.remat()` holds when the block is built (by
    default on JAX and TensorFlow), the two LayerNorms and the GELU are
    recomputed in the backward pass (Keras' `RematScope`: "full" for the
    norms, "activations" for `fc1`) instead of keeping their intermediates,
    which XLA keeps otherwise (three `(B * N, 4D)` tensors per block for the
    erf GELU, several `(B, N, D)` ones per LayerNorm); tracing and compiling
    then take longer. It is off by default on PyTorch, whose compiled step
    recomputes them on its own and whose eager kernels keep only their
    inputs. The memory saved is measured by `benchmarks/peak_memory.py`.

    Args:
        hidden_dim: int `D`.
        num_heads: int.
        mlp_ratio: float, MLP width over `D`.
        layer_norm_epsilon: float.
        drop_path_rate: float in [0, 1).
        seed: int or None, for stochastic depth.
        **kwargs: standard layer arguments.

    Call arguments:
        x: `(B, N, D)`.
        training: bool.

    Returns:
        `(B, N, D)`.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import TransformerBlock
    TransformerBlock(64, 4)(np.zeros((2, 10, 64), "float32")).shape
    ```
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        mlp_ratio=4.0,
        layer_norm_epsilon=1e-6,
        drop_path_rate=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.drop_path_rate = drop_path_rate
        self.seed = seed
        policy = self.dtype_policy
        with keras.RematScope(mode=remat_mode("full")):
            self.norm1 = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=policy, name="norm1"
            )
        self.attention = MultiHeadSelfAttention(
            hidden_dim, num_heads, dtype=policy, name="attention"
        )
        with keras.RematScope(mode=remat_mode("full")):
            self.norm2 = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=policy, name="norm2"
            )
        self.mlp_hidden_dim = int(hidden_dim * mlp_ratio)
        with keras.RematScope(mode=remat_mode("activations")):
            self.fc1 = TokenDense(
                self.mlp_hidden_dim, activation="gelu", dtype=policy, name="fc1"
            )
        self.fc2 = TokenDense(hidden_dim, dtype=policy, name="fc2")
        self.drop_path = DropPath(drop_path_rate, seed=seed, dtype=policy, name="drop_path")

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.mlp_hidden_dim,))

    def call(self, x, training=None):
        x = x + self.drop_path(self.attention(self.norm1(x)), training=training)
        mlp = self.fc2(self.fc1(self.norm2(x)))
        return x + self.drop_path(mlp, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "drop_path_rate": self.drop_path_rate,
                "seed": self.seed,
            }
        )
        return config

