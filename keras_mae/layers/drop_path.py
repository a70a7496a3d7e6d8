"""Stochastic depth: drops a whole residual branch per sample."""

import keras
from keras import ops

from keras_mae.layers.replica_random import batch_uniform


@keras.saving.register_keras_serializable(package="keras_mae")
class DropPath(keras.layers.Layer):
    """Zeroes the branch for a random `rate` of the samples while training.

    Kept samples are scaled by `1 / (1 - rate)`; at inference it is the
    identity (Huang et al., 2016, "Deep Networks with Stochastic Depth").
    Under a `tf.distribute` strategy each replica draws its own samples'
    paths (`replica_random.batch_uniform`).

    Args:
        rate: float in [0, 1).
        seed: int or None.
        **kwargs: standard layer arguments.

    Call arguments:
        x: `(B, ...)`.
        training: bool.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import DropPath
    DropPath(0.1, seed=0)(np.ones((4, 3, 8), "float32"), training=True)
    ```
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate!r}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        keep = 1.0 - self.rate
        draw = batch_uniform(shape, self.seed_generator, x.dtype)
        return x * ops.floor(keep + draw) / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
