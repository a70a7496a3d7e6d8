"""Per-sample random masking of tokens."""

import keras
from keras import ops

from keras_mae import ops as mae_ops
from keras_mae.layers.replica_random import batch_uniform


def validate_mask_ratio(mask_ratio, num_patches=None):
    """Checks `0 <= mask_ratio < 1` and that a visible patch remains."""
    if not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(
            f"`mask_ratio` must be a float in [0, 1). Received: mask_ratio={mask_ratio!r}"
        )
    if num_patches is not None and int(num_patches * (1 - mask_ratio)) < 1:
        raise ValueError(
            f"mask_ratio={mask_ratio} leaves no visible patch out of {num_patches}"
        )


@keras.saving.register_keras_serializable(package="keras_mae")
class RandomMasking(keras.layers.Layer):
    """Keeps a random subset of `int(L * (1 - mask_ratio))` tokens per sample.

    For each sample, uniform noise is drawn per token and argsorted: the tokens
    with the smallest noise are kept, in that order. `ids_restore` is the
    inverse permutation, used by the decoder to put tokens back in place.
    The noise comes from a layer-owned `keras.random.SeedGenerator`, so the
    layer is traceable under `jit_compile`; an explicit `noise` makes it
    deterministic. Under a `tf.distribute` strategy each replica draws its
    own part of the global batch's noise (`replica_random.batch_uniform`):
    replicas draw different masks, together those of one device.

    Args:
        mask_ratio: float in [0, 1), the fraction of tokens removed.
        seed: int or None, seed of the layer's generator.
        **kwargs: standard layer arguments.

    Call arguments:
        tokens: `(B, L, D)`.
        noise: optional `(B, L)` float noise; smaller means kept.
        mask_ratio: optional float in [0, 1) for this call only (the layer's
            own when None); `K` changes with it, so under `jit_compile` each
            ratio is its own trace.

    Returns:
        A tuple `(visible, mask, ids_restore)`: `visible` `(B, K, D)` with
        `K = int(L * (1 - mask_ratio))`, `mask` `(B, L)` with 1 for removed
        tokens and 0 for kept ones (in the tokens' dtype), `ids_restore`
        `(B, L)` int32.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import RandomMasking
    visible, mask, ids_restore = RandomMasking(0.75, seed=0)(
        np.zeros((2, 64, 8), "float32"))
    visible.shape  # (2, 16, 8)
    ```
    """

    def __init__(self, mask_ratio=0.75, seed=None, **kwargs):
        super().__init__(**kwargs)
        # No float weights; inputs keep their dtype, so float32 `noise` is not
        # rounded to a mixed policy's compute dtype (ties would change the mask).
        self.autocast = False
        validate_mask_ratio(mask_ratio)
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def num_kept(self, num_tokens, mask_ratio=None):
        """`K = int(L * (1 - mask_ratio))`, the number of visible tokens.

        `mask_ratio` defaults to the layer's own.
        """
        mask_ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        validate_mask_ratio(mask_ratio, num_tokens)
        return int(num_tokens * (1 - mask_ratio))

    def draw_noise(self, batch, num_tokens):
        """Draws the masking noise from the layer's generator.

        On one replica this is `keras.random.uniform((batch, num_tokens))`
        from the layer's generator; under a `tf.distribute` strategy, this
        replica's part of the global batch's draw (`batch_uniform`).

        Args:
            batch: int or scalar tensor, the batch size.
            num_tokens: int, `L`.

        Returns:
            `(batch, num_tokens)` float32 uniform noise in [0, 1).

        Example:
        ```python
        from keras_mae.layers import RandomMasking
        noise = RandomMasking(0.75, seed=0).draw_noise(2, 64)  # (2, 64)
        ```
        """
        return batch_uniform((batch, num_tokens), self.seed_generator)

    def call(self, tokens, noise=None, mask_ratio=None):
        num_tokens = tokens.shape[1]
        keep = self.num_kept(num_tokens, mask_ratio)
        batch = ops.shape(tokens)[0]
        if noise is None:
            noise = self.draw_noise(batch, num_tokens)
        else:
            noise = ops.convert_to_tensor(noise)
            if len(noise.shape) != 2 or noise.shape[1] != num_tokens or (
                noise.shape[0] is not None
                and tokens.shape[0] is not None
                and noise.shape[0] != tokens.shape[0]
            ):
                raise ValueError(
                    f"`noise` must have shape (batch, {num_tokens}) = "
                    f"{(tokens.shape[0], num_tokens)}. Received: noise.shape={tuple(noise.shape)}"
                )
        ids_shuffle = ops.cast(ops.argsort(noise, axis=1), "int32")
        ids_restore = ops.cast(ops.argsort(ids_shuffle, axis=1), "int32")
        visible = mae_ops.gather_tokens(tokens, ids_shuffle[:, :keep])
        mask = ops.cast(ops.greater_equal(ids_restore, keep), tokens.dtype)
        return visible, mask, ids_restore

    def compute_output_shape(self, input_shape, noise_shape=None, mask_ratio=None):
        batch, num_tokens, dim = input_shape
        keep = self.num_kept(num_tokens, mask_ratio)
        return (batch, keep, dim), (batch, num_tokens), (batch, num_tokens)

    def get_config(self):
        config = super().get_config()
        config.update({"mask_ratio": self.mask_ratio, "seed": self.seed})
        return config
