"""Fixed 2-D sin-cos position embedding with a class-token row."""

import keras
from keras import ops

from keras_mae import ops as mae_ops


@keras.saving.register_keras_serializable(package="keras_mae")
class SinCosPositionEmbedding(keras.layers.Layer):
    """Holds the fixed `(1 + h * w, D)` sin-cos table and adds it to tokens.

    The table is a weight, so it is saved with the model and a converted
    checkpoint can overwrite it. It is fixed by default (the official
    pretraining's `pos_embed` buffer, `requires_grad=False`); with
    `trainable_table=True` it is a trainable parameter starting from the
    sin-cos values (the official fine-tuning's `pos_embed`). Row 0 belongs to
    the class token (all zeros at the start).

    Args:
        grid: `(h, w)` patch grid.
        hidden_dim: int `D`, divisible by 4.
        trainable_table: bool, whether training updates the table.
        **kwargs: standard layer arguments.

    Call arguments:
        tokens: `(B, h * w, D)` patch tokens (no class token).

    Returns:
        `(B, h * w, D)`: tokens plus the table's patch rows.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import SinCosPositionEmbedding
    layer = SinCosPositionEmbedding((8, 8), 192)
    layer(np.zeros((2, 64, 192), "float32")).shape  # (2, 64, 192)
    layer.table.shape  # (65, 192)
    ```
    """

    def __init__(self, grid, hidden_dim, trainable_table=False, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(grid)
        self.hidden_dim = hidden_dim
        self.trainable_table = bool(trainable_table)
        self._initial_table = mae_ops.sincos_2d_table(hidden_dim, self.grid)

    def build(self, input_shape=None):
        self.table = self.add_weight(
            name="table",
            shape=self._initial_table.shape,
            initializer=keras.initializers.Constant(self._initial_table),
            trainable=self.trainable_table,
        )

    @property
    def cls_row(self):
        """`(1, 1, D)`: the class token's row of the table."""
        return ops.cast(ops.reshape(self.table[0], (1, 1, -1)), self.compute_dtype)

    def call(self, tokens):
        return tokens + ops.cast(self.table[1:], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"grid": list(self.grid), "hidden_dim": self.hidden_dim,
                       "trainable_table": self.trainable_table})
        return config
