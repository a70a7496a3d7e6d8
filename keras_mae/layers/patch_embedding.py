"""Linear projection of flattened patches."""

import keras

from keras_mae.layers.token_dense import TokenDense


@keras.saving.register_keras_serializable(package="keras_mae")
class PatchEmbedding(keras.layers.Layer):
    """Projects flattened `p x p x C` patches to tokens.

    Equivalent to the official strided convolution with kernel and stride `p`,
    applied to patches from `keras_mae.ops.patchify`. The kernel is initialised
    xavier-uniform on the `(p * p * C, D)` matrix and the bias with zeros, as
    the reference code initialises its convolution seen as a matrix.

    Args:
        hidden_dim: int `D`, the token width.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        patches: `(B, L, p * p * C)`.

    Returns:
        `(B, L, D)` tokens.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import PatchEmbedding
    PatchEmbedding(192)(np.zeros((2, 64, 48), "float32")).shape  # (2, 64, 192)
    ```
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.projection = TokenDense(
            hidden_dim,
            kernel_initializer="glorot_uniform",
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, patches):
        return self.projection(patches)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
