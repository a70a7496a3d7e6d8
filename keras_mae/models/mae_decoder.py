"""The lightweight decoder of the Masked Autoencoder."""

import keras
from keras import ops

from keras_mae import ops as mae_ops
from keras_mae.layers import SinCosPositionEmbedding, TokenDense, TransformerBlock


@keras.saving.register_keras_serializable(package="keras_mae")
class MAEDecoder(keras.layers.Layer):
    """Predicts the pixels of every patch from the encoded visible tokens.

    `decoder_embed` maps encoder tokens to the decoder width, one shared
    learned `mask_token` fills the removed positions, `ids_restore` puts the
    tokens back in grid order, the decoder's own fixed sin-cos table is added,
    then transformer blocks, a norm and a linear head to `p * p * C` pixels.
    The class token is dropped from the output.

    Sublayer names: `decoder_embed`, `mask_token`, `decoder_position_embedding`,
    `decoder_block_{i}`, `decoder_norm`, `decoder_pred`.

    Args:
        grid: `(h, w)` patch grid.
        patch_size: int `p`.
        num_channels: int `C`.
        hidden_dim: int, decoder width (divisible by 4 and `num_heads`).
        depth: int, decoder blocks.
        num_heads: int.
        mlp_ratio: float.
        layer_norm_epsilon: float.
        **kwargs: standard layer arguments.

    Call arguments:
        latent: `(B, 1 + K, E)` encoder output on visible tokens, class first.
        ids_restore: `(B, L)` int, from `RandomMasking`.

    Returns:
        `(B, L, p * p * C)` predicted pixels (normalised per patch when the
        model was trained with `norm_pix_loss`).

    Example:
    ```python
    import numpy as np
    from keras_mae.models import MAEDecoder
    decoder = MAEDecoder((8, 8), 4, 3, hidden_dim=32, depth=1, num_heads=4)
    ids_restore = np.tile(np.arange(64, dtype="int32"), (2, 1))
    decoder(np.zeros((2, 17, 64), "float32"), ids_restore).shape  # (2, 64, 48)
    ```
    """

    def __init__(
        self,
        grid,
        patch_size,
        num_channels,
        hidden_dim=512,
        depth=8,
        num_heads=16,
        mlp_ratio=4.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"decoder num_heads={num_heads} does not divide decoder hidden_dim={hidden_dim}"
            )
        self.grid = tuple(grid)
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_patches = self.grid[0] * self.grid[1]
        policy = self.dtype_policy
        self.decoder_embed = TokenDense(hidden_dim, dtype=policy, name="decoder_embed")
        self.position_embedding = SinCosPositionEmbedding(
            self.grid, hidden_dim, dtype=policy, name="decoder_position_embedding"
        )
        self.blocks = [
            TransformerBlock(
                hidden_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=policy,
                name=f"decoder_block_{i}",
            )
            for i in range(depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="decoder_norm"
        )
        self.pred = TokenDense(
            patch_size * patch_size * num_channels, dtype=policy, name="decoder_pred"
        )

    def build(self, latent_shape, ids_restore_shape=None):
        self.mask_token = self.add_weight(
            name="mask_token",
            shape=(1, 1, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        self.decoder_embed.build(latent_shape)
        self.position_embedding.build()
        for block in self.blocks:
            block.build((None, None, self.hidden_dim))
        self.norm.build((None, None, self.hidden_dim))
        self.pred.build((None, None, self.hidden_dim))

    def call(self, latent, ids_restore, training=None):
        x = self.decoder_embed(latent)
        batch = ops.shape(x)[0]
        num_removed = self.num_patches + 1 - x.shape[1]
        mask_tokens = ops.broadcast_to(
            ops.cast(self.mask_token, x.dtype), (batch, num_removed, self.hidden_dim)
        )
        shuffled = ops.concatenate([x[:, 1:], mask_tokens], axis=1)
        patches = self.position_embedding(mae_ops.gather_tokens(shuffled, ids_restore))
        x = ops.concatenate([x[:, :1] + self.position_embedding.cls_row, patches], axis=1)
        for block in self.blocks:
            x = block(x, training=training)
        return self.pred(self.norm(x))[:, 1:]

    def compute_output_shape(self, latent_shape, ids_restore_shape=None):
        dim = self.patch_size * self.patch_size * self.num_channels
        return (latent_shape[0], self.num_patches, dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid": list(self.grid),
                "patch_size": self.patch_size,
                "num_channels": self.num_channels,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
