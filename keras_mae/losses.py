"""The Masked Autoencoder's reconstruction loss as a Keras loss."""

import keras

from keras_mae import ops as mae_ops


@keras.saving.register_keras_serializable(package="keras_mae")
class MaskedReconstructionLoss(keras.losses.Loss):
    """Mean squared error on the removed patches, optionally on norm_pix targets.

    Per image it averages the per-patch MSE over the removed patches; the
    default `"sum_over_batch_size"` reduction then averages over the batch and,
    under a `tf.distribute` strategy, divides by the number of replicas as every
    Keras loss does, so gradients summed over replicas are those of the global
    batch.

    Args:
        norm_pix_loss: bool, normalise each target patch by its own mean and
            unbiased variance (eps 1e-6), the paper's best setting.
        **kwargs: standard loss arguments (`name`, `reduction`).

    Call arguments:
        y_true: `(B, L, P)` pixel patches of the input (`ops.patchify`).
        y_pred: dict with `"pred"` `(B, L, P)` and `"mask"` `(B, L)`.

    Example:
    ```python
    import numpy as np
    from keras_mae.losses import MaskedReconstructionLoss
    target = np.ones((2, 4, 3), "float32")
    y_pred = {"pred": np.zeros((2, 4, 3), "float32"),
              "mask": np.array([[1, 1, 0, 0], [0, 1, 1, 0]], "float32")}
    float(MaskedReconstructionLoss()(target, y_pred))  # 1.0
    ```
    """

    def __init__(self, norm_pix_loss=False, name="masked_reconstruction_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.norm_pix_loss = norm_pix_loss

    def target(self, patches):
        """The regression target of `(B, L, P)` pixel patches."""
        if self.norm_pix_loss:
            return mae_ops.norm_pix_target(patches)
        return patches

    def call(self, y_true, y_pred):
        return mae_ops.masked_patch_loss(self.target(y_true), y_pred["pred"], y_pred["mask"])

    def get_config(self):
        config = super().get_config()
        config.update({"norm_pix_loss": self.norm_pix_loss})
        return config
