"""A ViT image classifier on top of an MAE encoder, for fine-tuning and probing."""

import keras
import numpy as np
from keras import ops

from keras_mae.models.serialization import base_config
from keras_mae.models.vit_encoder import ViTEncoder
from keras_mae.pos_embed import interpolate_pos_embed

POOLINGS = ("avg", "cls")

# Arguments of `ViTEncoder` that define its architecture (and its weights' shapes).
ENCODER_ARGS = (
    "image_size", "patch_size", "num_channels", "hidden_dim", "depth", "num_heads",
    "mlp_ratio", "layer_norm_epsilon", "drop_path_rate", "seed",
)


def encoder_arguments(encoder_or_config, **overrides):
    """The architecture arguments of a `ViTEncoder` (or of its config dict).

    Args:
        encoder_or_config: a `ViTEncoder` or a dict with (at least) its
            architecture fields; other keys (`name`, `dtype`, decoder
            fields) are dropped.
        **overrides: fields to replace (`image_size`, `drop_path_rate`, ...).

    Returns:
        dict with the keys of `ENCODER_ARGS` that are present.

    Example:
    ```python
    encoder_arguments({"hidden_dim": 64, "depth": 2, "decoder_depth": 1}, depth=3)
    # {"hidden_dim": 64, "depth": 3}
    ```
    """
    if isinstance(encoder_or_config, ViTEncoder):
        config = encoder_or_config.get_config()
    elif isinstance(encoder_or_config, dict):
        config = dict(encoder_or_config)
    else:
        raise ValueError(
            "Expected a ViTEncoder or a dict of its arguments. "
            f"Received: {type(encoder_or_config).__name__}"
        )
    unknown = sorted(set(overrides) - set(ENCODER_ARGS))
    if unknown:
        raise ValueError(f"Unknown encoder arguments {unknown}. Known: {list(ENCODER_ARGS)}")
    config.update(overrides)
    out = {key: config[key] for key in ENCODER_ARGS if key in config}
    if "image_size" in out and not isinstance(out["image_size"], int):
        out["image_size"] = [int(v) for v in out["image_size"]]
    return out


@keras.saving.register_keras_serializable(package="keras_mae")
class ViTClassifier(keras.Model):
    """ViT encoder + pooling + linear head: `(B, H, W, C)` images -> `(B, classes)` logits.

    Pooling follows the official MAE classifier (`models_vit.py`):

    - `"avg"`: mean of the patch tokens coming out of the last block (before
      the encoder's final norm, which is then unused and frozen), followed by a
      fresh LayerNorm `fc_norm`: the fine-tuning default.
    - `"cls"`: the class token after the encoder's final norm `encoder_norm`
      (the linear-probe default).

    With `head_batch_norm=True` the head is `BatchNormalization(center=False,
    scale=False, epsilon=1e-6, momentum=0.9)` then Dense, as the official linear
    probe (`BatchNorm1d(affine=False, eps=1e-6)`: torch's momentum 0.1 weights
    the new batch, Keras' 0.9 the running value). The
    head kernel is truncated-normal with `head_init_std` (2e-5 for
    fine-tuning, 0.01 for the probe), the bias zero.

    Sublayer names (stable variable paths): `encoder` (a `ViTEncoder`, whose
    blocks are `encoder/encoder_block_{i}`), `fc_norm` (avg pooling only),
    `head_norm` (with `head_batch_norm`), `head`. Layer-wise lr decay
    (`keras_mae.optimizers.LayerDecayAdamW`) thus puts the embeddings in
    layer 0, block `i` in layer `i + 1` and `fc_norm`/`head` at the top.

    When the encoder is frozen (`model.encoder.trainable = False`) it always
    runs in inference mode (no stochastic depth).

    Args:
        encoder_config: dict of `ViTEncoder` arguments (see
            `encoder_arguments()`); `drop_path_rate` there is the stochastic
            depth of the last block.
        num_classes: int >= 1.
        pooling: `"avg"` or `"cls"`.
        head_init_std: float > 0, std of the head kernel initialiser.
        head_batch_norm: bool, a parameter-free BatchNorm before the head.
        **kwargs: standard model arguments (`name`, `dtype`).

    Call arguments:
        images: `(B, H, W, C)` float images, normalised as `keras_mae.data`.
        training: bool.

    Returns:
        `(B, num_classes)` logits.

    Example:
    ```python
    import numpy as np
    from keras_mae.models import ViTEncoder
    from keras_mae.models.classifier import ViTClassifier
    encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4)
    model = ViTClassifier.from_encoder(encoder, num_classes=10, drop_path_rate=0.1)
    model(np.zeros((2, 32, 32, 3), "float32")).shape  # (2, 10)
    ```
    """

    def __init__(
        self,
        encoder_config,
        num_classes,
        pooling="avg",
        head_init_std=2e-5,
        head_batch_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive int. Received: {num_classes!r}")
        if not head_init_std > 0:
            raise ValueError(f"`head_init_std` must be > 0. Received: {head_init_std!r}")
        self.encoder_config = encoder_arguments(encoder_config)
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.head_init_std = float(head_init_std)
        self.head_batch_norm = bool(head_batch_norm)

        policy = self.dtype_policy
        self.encoder = ViTEncoder(**self.encoder_config, dtype=policy, name="encoder")
        self.hidden_dim = self.encoder.hidden_dim
        self.fc_norm = None
        if pooling == "avg":
            self.fc_norm = keras.layers.LayerNormalization(
                epsilon=self.encoder.layer_norm_epsilon, dtype=policy, name="fc_norm"
            )
            # The encoder's own final norm is bypassed by average pooling.
            self.encoder.norm.trainable = False
        self.head_norm = None
        if self.head_batch_norm:
            self.head_norm = keras.layers.BatchNormalization(
                center=False, scale=False, epsilon=1e-6, momentum=0.9, dtype=policy,
                name="head_norm"
            )
        self.head = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=self.head_init_std),
            bias_initializer="zeros",
            dtype=policy,
            name="head",
        )

    def build(self, input_shape=None):
        self.encoder.build()
        if self.fc_norm is not None:
            self.fc_norm.build((None, self.hidden_dim))
        if self.head_norm is not None:
            self.head_norm.build((None, self.hidden_dim))
        self.head.build((None, self.hidden_dim))
        self.built = True

    def _encoder_training(self, training):
        return bool(training) and self.encoder.trainable

    def features(self, images, training=None):
        """Pooled features, before the head.

        Args:
            images: `(B, H, W, C)` float images.
            training: bool.

        Returns:
            `(B, D)`: the class token (`"cls"`) or `fc_norm` of the mean
            patch token (`"avg"`).
        """
        training = self._encoder_training(training)
        encoder = self.encoder
        if self.pooling == "cls":
            return encoder(images, training=training)[:, 0]
        tokens = encoder.embed_patches(encoder.patchify(images))
        x = encoder.encode_tokens(tokens, training=training, apply_norm=False)
        return self.fc_norm(ops.mean(x[:, 1:], axis=1))

    def feature_model(self):
        """A Keras model `(B, H, W, C)` -> `(B, D)` of `features` in inference mode, for `predict`.

        Example:
        ```python
        features = classifier.feature_model().predict(images, batch_size=256)
        ```
        """
        return _FeatureModel(self, name="features")

    def classify_features(self, features, training=None):
        """`(B, D)` pooled features -> `(B, num_classes)` logits (head only)."""
        x = features
        if self.head_norm is not None:
            x = self.head_norm(x, training=training)
        return self.head(x)

    def call(self, images, training=None):
        return self.classify_features(self.features(images, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    @classmethod
    def from_encoder(
        cls,
        encoder,
        num_classes,
        pooling="avg",
        head_init_std=2e-5,
        head_batch_norm=False,
        drop_path_rate=None,
        image_size=None,
        **kwargs,
    ):
        """Builds a classifier around a copy of `encoder`'s weights.

        Args:
            encoder: a built `ViTEncoder` (e.g. `keras.saving.load_model(
                "encoder.keras")` or `model.encoder` of a `MaskedAutoencoder`).
            num_classes: int.
            pooling: `"avg"` or `"cls"`.
            head_init_std: float.
            head_batch_norm: bool.
            drop_path_rate: float or None (keep the encoder's).
            image_size: int, `(h, w)` or None (keep the encoder's). Another
                patch grid resizes the position table bicubically
                (`keras_mae.convert.interpolate_pos_embed`), as the official
                fine-tuning at another resolution.
            **kwargs: `name`, `dtype`.

        Returns:
            A built `ViTClassifier`; its encoder holds copies of the weights
            (the source encoder is not modified or shared).

        Example:
        ```python
        model = ViTClassifier.from_encoder(encoder, 10, drop_path_rate=0.1, image_size=48)
        ```
        """
        if not isinstance(encoder, ViTEncoder):
            raise ValueError(f"Expected a ViTEncoder. Received: {type(encoder).__name__}")
        overrides = {}
        if drop_path_rate is not None:
            overrides["drop_path_rate"] = float(drop_path_rate)
        if image_size is not None:
            overrides["image_size"] = image_size
        config = encoder_arguments(encoder, **overrides)
        model = cls(config, num_classes, pooling=pooling, head_init_std=head_init_std,
                    head_batch_norm=head_batch_norm, **kwargs)
        model.build()
        copy_encoder_weights(encoder, model.encoder)
        return model

    def get_config(self):
        config = base_config(self)
        config.update(
            {
                "encoder_config": dict(self.encoder_config),
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "head_init_std": self.head_init_std,
                "head_batch_norm": self.head_batch_norm,
            }
        )
        return config


def copy_encoder_weights(source, target):
    """Copies every weight of one `ViTEncoder` into another of the same width and depth.

    The position table is resized bicubically when the patch grids differ
    (`keras_mae.convert.interpolate_pos_embed`).

    Args:
        source: built `ViTEncoder`.
        target: built `ViTEncoder` with the same `hidden_dim`, `depth`,
            `patch_size`, `num_channels` and `mlp_ratio`.

    Raises:
        ValueError: naming the first variable whose shape differs.
    """
    if not source.built:
        source.build()
    prefix_len = len(source.path) + 1
    by_name = {v.path[prefix_len:]: v for v in source.weights}
    target_prefix = len(target.path) + 1
    for variable in target.weights:
        name = variable.path[target_prefix:]
        if name not in by_name:
            raise ValueError(f"Source encoder has no weight {name!r} (target {variable.path!r})")
        value = keras.ops.convert_to_numpy(by_name[name])
        if name == "position_embedding/table" and value.shape != tuple(variable.shape):
            if tuple(source.grid) == tuple(target.grid):
                raise ValueError(f"Position table shapes differ: {value.shape} vs {variable.shape}")

            value = interpolate_pos_embed(value, target.grid, old_grid=source.grid)
        if value.shape != tuple(variable.shape):
            raise ValueError(
                f"Weight {name!r} has shape {value.shape} in the source encoder but "
                f"{tuple(variable.shape)} in the target (architectures differ)"
            )
        variable.assign(value)


class _FeatureModel(keras.Model):
    """`ViTClassifier.features(images, training=False)` as a model (a subclassed call, so that
    the batch size stays symbolic on every backend)."""

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier

    def call(self, images):
        return self.classifier.features(images, training=False)
