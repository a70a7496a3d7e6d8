"""A ViT image classifier on top of an MAE encoder, for fine-tuning and probing."""

import keras
import numpy as np
from keras import ops

from keras_mae.config import resolve_jit_compile
from keras_mae.models.task import Task
from keras_mae.optimizers import finetuning_adamw

POOLINGS = ("avg", "cls")


@keras.saving.register_keras_serializable(package="keras_mae")
class ViTClassifier(Task):
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

    The classifier uses (and trains) the encoder object it is given; with
    `"avg"` pooling that encoder's `encoder_norm` is frozen, as the official
    model deletes it. For another resolution or stochastic depth, pass
    `encoder.copy(image_size=..., drop_path_rate=...)`, which also leaves the
    source encoder untouched.

    Args:
        encoder: a `ViTEncoder` (e.g. `keras.saving.load_model("encoder.keras")`
            or `model.encoder` of a `MaskedAutoencoder`); its config is
            nested in the classifier's.
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
    model = ViTClassifier(encoder.copy(drop_path_rate=0.1), num_classes=10)
    model(np.zeros((2, 32, 32, 3), "float32")).shape  # (2, 10)
    ```
    """

    def __init__(
        self,
        encoder,
        num_classes,
        pooling="avg",
        head_init_std=2e-5,
        head_batch_norm=False,
        **kwargs,
    ):
        super().__init__(encoder, **kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive int. Received: {num_classes!r}")
        if not head_init_std > 0:
            raise ValueError(f"`head_init_std` must be > 0. Received: {head_init_std!r}")
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.head_init_std = float(head_init_std)
        self.head_batch_norm = bool(head_batch_norm)

        policy = self.dtype_policy
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
        # Built at once (no input is needed), so that a model saved before its
        # first call holds all of its weights.
        self.build()

    def compile(self, optimizer=None, loss=None, jit_compile="auto", **kwargs):
        """As `keras.Model.compile`; by default the official fine-tuning optimizer and a logits loss.

        Without an optimizer it is `keras_mae.optimizers.finetuning_adamw`
        (AdamW (0.9, 0.999), epsilon 1e-8, weight decay 0.05 off biases,
        norms, the class token and positions, layer decay 0.75) at the base
        rate 1e-3 of a batch of 256, constant. Without a loss it is the
        cross-entropy of the logits with integer labels
        (`SparseCategoricalCrossentropy(from_logits=True)`); soft (mixed)
        targets need `CategoricalCrossentropy(from_logits=True)`.
        `jit_compile="auto"` (the default) is the fast mode of the backend
        (`keras_mae.config.resolve_jit_compile`: XLA on JAX and on TensorFlow
        with one replica, eager PyTorch); an explicit True or False is kept.
        """
        if optimizer is None:
            optimizer = finetuning_adamw(self)
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        jit_compile = resolve_jit_compile(jit_compile)
        super().compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **kwargs)

    def build(self, input_shape=None):
        if self.built:
            return
        if not self.encoder.built:
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

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "head_init_std": self.head_init_std,
            "head_batch_norm": self.head_batch_norm,
        }


class _FeatureModel(keras.Model):
    """`ViTClassifier.features(images, training=False)` as a model (a subclassed call, so that
    the batch size stays symbolic on every backend)."""

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier

    def call(self, images):
        return self.classifier.features(images, training=False)
