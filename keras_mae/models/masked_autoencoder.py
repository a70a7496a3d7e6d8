"""The Masked Autoencoder model: encoder on visible patches, decoder, loss."""

import keras
import numpy as np
from keras import ops

from keras_mae import ops as mae_ops
from keras_mae.config import resolve_jit_compile, torch_compiled_step
from keras_mae.layers import RandomMasking
from keras_mae.layers.random_masking import validate_mask_ratio
from keras_mae.losses import MaskedReconstructionLoss
from keras_mae.models import torch_step
from keras_mae.models.inputs import images_from_batch
from keras_mae.models.mae_decoder import MAEDecoder
from keras_mae.models.task import Task
from keras_mae.optimizers import pretraining_adamw

@keras.saving.register_keras_serializable(package="keras_mae")
class MaskedAutoencoder(Task):
    """Masked Autoencoder (He et al., 2021) with a ViT encoder.

    The encoder sees only the visible `(1 - mask_ratio)` of the patches; a
    lightweight decoder reconstructs the pixels of every patch; the loss is the
    MSE on the removed patches. Train it with `fit` on batches of images,
    `(images, labels)` tuples (labels ignored) or `{"images": ...}` dicts; it
    needs no loss in `compile` and reports the reconstruction loss as `loss`.

    Images are float `(B, H, W, C)`; the library's convention (as the official
    code) is pixels in [0, 1] normalised with the ImageNet mean and std, which
    `keras_mae.data` produces. A numpy batch passed to the model directly is
    checked first: NaN/inf pixels, or values above 20 in magnitude (0-255
    pixels), raise `ValueError`.

    Args:
        encoder: a `ViTEncoder`, the backbone; the model uses (and trains)
            this object, whose config is nested in the model's.
        decoder_hidden_dim: the decoder's width (its MLP ratio and LayerNorm
            epsilon are the encoder's, as the official model).
        decoder_depth: the decoder's number of blocks.
        decoder_num_heads: the decoder's attention heads.
        mask_ratio: float in [0, 1), fraction of patches removed.
        norm_pix_loss: bool, regress per-patch normalised pixels.
        seed: int or None, seeds masking.
        **kwargs: standard model arguments (`name`, `dtype`; the dtype policy
            is the encoder's unless given, and must then equal it).

    Call arguments:
        images: `(B, H, W, C)` float, or a dict with `"images"`.
        noise: optional `(B, L)` uniform noise fixing the mask.
        mask_ratio: optional float in [0, 1) for this call only, e.g. to show
            reconstructions of published weights at another ratio; the
            model's `mask_ratio` (training, `compute_loss`) stays as it is.
        training: bool.

    Returns:
        dict with `"pred"` `(B, L, p * p * C)`, `"mask"` `(B, L)` (1 = removed)
        and `"ids_restore"` `(B, L)` int32.

    Example:
    ```python
    import keras, numpy as np
    import keras_mae
    encoder = keras_mae.models.ViTEncoder(image_size=32, patch_size=4, hidden_dim=192,
                                          depth=2, num_heads=3)
    model = keras_mae.MaskedAutoencoder(encoder, decoder_hidden_dim=128, decoder_depth=1,
                                        decoder_num_heads=4, norm_pix_loss=True, seed=0)
    # or by name: keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, beta_2=0.95))
    images = np.random.rand(8, 32, 32, 3).astype("float32")
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    out = model(images, training=False)
    loss = model.compute_loss(x=images, y_pred=out)
    half = model(images, mask_ratio=0.5)  # half the patches removed, this call only
    ```

    References:
        He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners",
        arXiv:2111.06377.
    """

    input_argument = "inputs"

    def __init__(
        self,
        encoder,
        decoder_hidden_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mask_ratio=0.75,
        norm_pix_loss=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(encoder, **kwargs)
        # Inputs keep their dtype at entry (the patch embedding casts the
        # pixels): under a mixed policy, explicit `noise` must not be rounded
        # to the compute dtype, where distinct values tie and change the mask.
        self.autocast = False
        policy = self.dtype_policy
        validate_mask_ratio(mask_ratio, encoder.num_patches)
        self.decoder_hidden_dim = decoder_hidden_dim
        self.decoder_depth = decoder_depth
        self.decoder_num_heads = decoder_num_heads
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.seed = seed
        self.num_patches = encoder.num_patches

        self.random_masking = RandomMasking(
            mask_ratio, seed=seed, dtype=policy, name="random_masking"
        )
        self.decoder = MAEDecoder(
            encoder.grid,
            encoder.patch_size,
            encoder.num_channels,
            hidden_dim=decoder_hidden_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            mlp_ratio=encoder.mlp_ratio,
            layer_norm_epsilon=encoder.layer_norm_epsilon,
            dtype=policy,
            name="decoder",
        )
        self.reconstruction_loss = MaskedReconstructionLoss(norm_pix_loss=norm_pix_loss)
        # Built at once (no input is needed), so that a model saved before its
        # first call holds all of its weights.
        self.build()

    @property
    def num_visible(self):
        """`K`, the number of patches the encoder sees."""
        return self.random_masking.num_kept(self.num_patches)

    def build(self, input_shape=None):
        if self.built:
            return
        if not self.encoder.built:
            self.encoder.build()
        self.decoder.build((None, 1 + self.num_visible, self.encoder.hidden_dim))
        self.built = True

    def compile(self, optimizer=None, loss=None, jit_compile="auto", **kwargs):
        """As `keras.Model.compile`; the MAE loss is built in, so `loss` must be None.

        `jit_compile="auto"` (the default) is the fast mode of the backend
        (`keras_mae.config.resolve_jit_compile`: XLA on JAX and on TensorFlow
        with one replica, this model's own compiled step on PyTorch); an
        explicit True or False is kept.

        Without an optimizer it is the official pretraining AdamW
        (`keras_mae.optimizers.pretraining_adamw`: torch's update rule, betas
        (0.9, 0.95), weight decay 0.05 off biases and norms) at the base rate
        1.5e-4 of a batch of 256, constant: pass
        `pretraining_adamw(model, schedule)` for the paper's warmup and
        cosine. (Keras' `"adamw"` string differs: epsilon 1e-7 outside the
        bias correction, every variable decayed.)
        """
        if loss is not None:
            raise ValueError(
                "MaskedAutoencoder computes its own reconstruction loss; "
                f"compile it without `loss`. Received: loss={loss!r}"
            )
        if optimizer is None:
            optimizer = pretraining_adamw(self)
        jit_compile = resolve_jit_compile(
            jit_compile, own_torch_step=torch_compiled_step(self)
        )
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def make_train_function(self, force=False):
        """Keras' train function; on PyTorch with `jit_compile=True`, one compiled forward graph.

        See `keras_mae.models.torch_step`: the masking noise is drawn before
        the graph, which then compiles without breaks.
        """
        if (keras.backend.backend() != "torch" or not self.jit_compile
                or not torch_compiled_step(self)):
            return super().make_train_function(force)
        if self.train_function is None or force:
            self.train_function = torch_step.make_compiled_train_function(self)
        return self.train_function

    def call(self, inputs, noise=None, mask_ratio=None, training=None):
        patches = self.encoder.patchify(images_from_batch(inputs))
        tokens = self.encoder.embed_patches(patches)
        visible, mask, ids_restore = self.random_masking(tokens, noise=noise, mask_ratio=mask_ratio)
        latent = self.encoder.encode_tokens(visible, training=training)
        pred = self.decoder(latent, ids_restore, training=training)
        return {"pred": pred, "mask": mask, "ids_restore": ids_restore}

    def target_patches(self, inputs):
        """`(B, L, p * p * C)` float32 pixel patches of a batch (the raw target)."""
        images = ops.convert_to_tensor(images_from_batch(inputs))
        self.encoder.check_images(images)
        return mae_ops.patchify(ops.cast(images, "float32"), self.encoder.patch_size)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The reconstruction loss of `y_pred` (computed from `x` when None).

        `y` (labels) is ignored. Regularisation losses of the layers, if any,
        are added as Keras does.
        """
        if y_pred is None:
            y_pred = self(x, training=training)
        loss = self.reconstruction_loss(
            self.target_patches(x), {"pred": y_pred["pred"], "mask": y_pred["mask"]},
            sample_weight=sample_weight,
        )
        if self.losses:
            loss = loss + super().compute_loss(x, y, y_pred, sample_weight, training)
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "decoder_hidden_dim": self.decoder_hidden_dim,
            "decoder_depth": self.decoder_depth,
            "decoder_num_heads": self.decoder_num_heads,
            "mask_ratio": self.mask_ratio,
            "norm_pix_loss": self.norm_pix_loss,
            "seed": self.seed,
        }
