"""The ViT encoder of the Masked Autoencoder, usable on its own."""

import keras
import numpy as np
from keras import ops

from keras_mae import ops as mae_ops
from keras_mae.layers import PatchEmbedding, SinCosPositionEmbedding, TransformerBlock
from keras_mae.models.inputs import check_call_inputs
from keras_mae.models.serialization import base_config, config_arguments, weights_below
from keras_mae.presets import PresetMethods


@keras.saving.register_keras_serializable(package="keras_mae")
class ViTEncoder(PresetMethods, keras.Model):
    """Vision Transformer encoder with a class token and sin-cos positions.

    Called on images, it runs on all patches (no masking) and returns the
    final-normed tokens, class token first: this is the backbone for linear
    probing and fine-tuning. `MaskedAutoencoder` uses the same weights through
    `embed_patches` and `encode_tokens` on the visible patches only.

    Sublayer names are stable so that variable paths can be matched:
    `patch_embedding`, `position_embedding`, `cls_token`, `encoder_block_{i}`,
    `encoder_norm`.

    The encoder is the backbone that tasks share: `MaskedAutoencoder(encoder)`
    and `ViTClassifier(encoder, num_classes)` take the object itself, and
    `copy()` makes an independent one at another image size or stochastic
    depth, with the same weights.

    Args:
        image_size: int or `(height, width)`, divisible by `patch_size`.
        patch_size: int.
        num_channels: int.
        hidden_dim: int `D`, divisible by 4 (sin-cos table) and by `num_heads`.
        depth: int, number of transformer blocks.
        num_heads: int.
        mlp_ratio: float.
        layer_norm_epsilon: float (1e-6 official, 1e-12 Hugging Face).
        drop_path_rate: float, stochastic depth of the last block; block `i`
            gets `drop_path_rate * i / (depth - 1)`.
        seed: int or None, for stochastic depth.
        trainable_positions: bool. False (default): the sin-cos position
            table stays fixed, as in the official pretraining; True: it is
            trained from its current values, as in the official fine-tuning.
        **kwargs: standard model arguments (`name`, `dtype`).

    Call arguments:
        images: `(B, H, W, C)` float images (the library's convention: pixels
            in [0, 1] normalised with the ImageNet mean and std).
        training: bool.

    Returns:
        `(B, 1 + L, D)` tokens; `[:, 0]` is the class token.

    Example:
    ```python
    import numpy as np
    from keras_mae.models import ViTEncoder
    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=64, depth=2, num_heads=4)
    encoder(np.zeros((2, 32, 32, 3), "float32")).shape  # (2, 65, 64)
    ```
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_channels=3,
        hidden_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        layer_norm_epsilon=1e-6,
        drop_path_rate=0.0,
        seed=None,
        trainable_positions=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = mae_ops.to_pair(image_size)
        self.grid = mae_ops.grid_size(self.image_size, patch_size)
        for name, value in (
            ("num_channels", num_channels),
            ("hidden_dim", hidden_dim),
            ("depth", depth),
            ("num_heads", num_heads),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if hidden_dim % num_heads:
            raise ValueError(
                f"num_heads={num_heads} does not divide hidden_dim={hidden_dim}"
            )
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.drop_path_rate = drop_path_rate
        self.seed = seed
        self.trainable_positions = bool(trainable_positions)
        self.num_patches = self.grid[0] * self.grid[1]

        policy = self.dtype_policy
        self.patch_embedding = PatchEmbedding(hidden_dim, dtype=policy, name="patch_embedding")
        self.position_embedding = SinCosPositionEmbedding(
            self.grid, hidden_dim, trainable_table=self.trainable_positions, dtype=policy,
            name="position_embedding"
        )
        rates = np.linspace(0.0, drop_path_rate, depth) if depth > 1 else [0.0]
        self.blocks = [
            TransformerBlock(
                hidden_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                layer_norm_epsilon=layer_norm_epsilon,
                drop_path_rate=float(rates[i]),
                seed=None if seed is None else seed + 1 + i,
                dtype=policy,
                name=f"encoder_block_{i}",
            )
            for i in range(depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="encoder_norm"
        )

    def build(self, input_shape=None):
        patch_dim = self.patch_size * self.patch_size * self.num_channels
        self.cls_token = self.add_weight(
            name="cls_token",
            shape=(1, 1, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        self.patch_embedding.build((None, self.num_patches, patch_dim))
        self.position_embedding.build()
        for block in self.blocks:
            block.build((None, None, self.hidden_dim))
        self.norm.build((None, None, self.hidden_dim))
        self.built = True

    def check_images(self, images):
        """Raises `ValueError` unless `images` is `(B, H, W, C)` of this model."""
        shape = tuple(images.shape)
        if len(shape) != 4:
            raise ValueError(
                f"Expected images of rank 4 (batch, height, width, channels). "
                f"Received: shape={shape}"
            )
        if shape[-1] != self.num_channels:
            raise ValueError(
                f"Expected images with {self.num_channels} channels. "
                f"Received: {shape[-1]} channels, shape={shape}"
            )
        if shape[1] % self.patch_size or shape[2] % self.patch_size:
            raise ValueError(
                f"Image sides must be divisible by the patch size {self.patch_size}. "
                f"Received: shape={shape}"
            )
        if tuple(shape[1:3]) != self.image_size:
            raise ValueError(
                f"Expected images of size {self.image_size} (height, width). "
                f"Received: shape={shape}"
            )
        if shape[0] == 0:
            raise ValueError(f"Received an empty batch: shape={shape}")
        dtype = keras.backend.standardize_dtype(images.dtype)
        if "float" not in dtype:
            raise ValueError(
                f"Expected float images (pixels in [0, 1] normalised with the "
                f"ImageNet mean and std, see `keras_mae.data`). Received: dtype={dtype}"
            )

    def patchify(self, images):
        """`(B, H, W, C)` images -> `(B, L, p * p * C)` patches, validated."""
        images = ops.convert_to_tensor(images)
        self.check_images(images)
        return mae_ops.patchify(images, self.patch_size)

    def embed_patches(self, patches):
        """`(B, L, p * p * C)` -> `(B, L, D)` tokens with positions added."""
        return self.position_embedding(self.patch_embedding(patches))

    def encode_tokens(self, tokens, training=None, apply_norm=True):
        """Prepends the class token and runs the blocks and the final norm.

        Args:
            tokens: `(B, N, D)` embedded patch tokens (all or visible ones).
            training: bool.
            apply_norm: bool, apply `encoder_norm` (False for global-pool
                fine-tuning, which normalises the pooled token instead).

        Returns:
            `(B, 1 + N, D)`.
        """
        batch = ops.shape(tokens)[0]
        cls = ops.cast(self.cls_token, self.compute_dtype) + self.position_embedding.cls_row
        cls = ops.broadcast_to(cls, (batch, 1, self.hidden_dim))
        x = ops.concatenate([cls, ops.cast(tokens, self.compute_dtype)], axis=1)
        for block in self.blocks:
            x = block(x, training=training)
        return self.norm(x) if apply_norm else x

    def __call__(self, *args, **kwargs):
        check_call_inputs(args, kwargs, "images")
        return super().__call__(*args, **kwargs)

    def call(self, images, training=None):
        return self.encode_tokens(self.embed_patches(self.patchify(images)), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 + self.num_patches, self.hidden_dim)

    def relative_weights(self):
        """`{path below the encoder: variable}`, e.g. `"encoder_block_0/mlp/fc1/kernel"`.

        The keys do not depend on where the encoder was built (alone, or inside
        a task whose name prefixes the variables' paths).
        """
        if not self.built:
            self.build()
        return weights_below(self)

    def copy(self, image_size=None, drop_path_rate=None, seed=None, trainable_positions=None,
             **kwargs):
        """A new, built encoder holding copies of this one's weights.

        The one explicit step between tasks of different resolution or
        regularisation: the official fine-tuning resizes the pretrained
        position table bicubically to the new patch grid
        (`keras_mae.convert.interpolate_pos_embed`) and adds stochastic depth.

        Args:
            image_size: int, `(h, w)` or None (this encoder's).
            drop_path_rate: float or None (this encoder's).
            seed: int or None (this encoder's).
            trainable_positions: bool or None (this encoder's).
            **kwargs: `name`, `dtype` of the copy (this encoder's by default).

        Returns:
            A built `ViTEncoder`; later changes to either encoder leave the
            other as it is.

        Example:
        ```python
        from keras_mae.models import ViTEncoder
        encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4)
        larger = encoder.copy(image_size=48, drop_path_rate=0.1)
        larger.grid  # (6, 6): the 4 x 4 position table resized bicubically
        ```
        """
        config = self.get_config()
        for key in ("name", "trainable", "dtype", "format_version"):
            config.pop(key)
        changes = {"image_size": image_size, "drop_path_rate": drop_path_rate, "seed": seed,
                   "trainable_positions": trainable_positions}
        config.update({k: v for k, v in changes.items() if v is not None})
        kwargs.setdefault("name", self.name)
        kwargs.setdefault("dtype", self.dtype_policy)
        target = ViTEncoder(**config, **kwargs)
        target.build()
        source = self.relative_weights()
        for name, variable in target.relative_weights().items():
            value = keras.ops.convert_to_numpy(source[name])
            if name == "position_embedding/table" and value.shape != tuple(variable.shape):
                value = mae_ops.interpolate_pos_embed(value, target.grid, old_grid=self.grid)
            variable.assign(value)
        return target

    def get_config(self):
        config = base_config(self)
        config.update(
            {
                "image_size": list(self.image_size),
                "patch_size": self.patch_size,
                "num_channels": self.num_channels,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "drop_path_rate": self.drop_path_rate,
                "seed": self.seed,
                "trainable_positions": self.trainable_positions,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config_arguments(cls, config))
