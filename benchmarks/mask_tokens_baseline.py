"""The paper's Table 2 baseline: mask tokens in the encoder, over all patches.

Only for measuring what the asymmetric design saves: the encoder runs on all
`L` tokens (removed ones replaced by a learned mask token) and the decoder on
all of them in place, so both see `L` tokens whatever the mask ratio.
"""

import keras
from keras import ops

from keras_mae.models.inputs import images_from_batch
from keras_mae.models.masked_autoencoder import MaskedAutoencoder


class MaskTokensInEncoderMAE(MaskedAutoencoder):
    """`MaskedAutoencoder` whose encoder sees mask tokens instead of dropping patches."""

    def build(self, input_shape=None):
        if self.built:
            return
        if not self.encoder.built:
            self.encoder.build()
        width = self.encoder.hidden_dim
        self.encoder_mask_token = self.add_weight(
            name="encoder_mask_token", shape=(1, 1, width),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.decoder.build((None, 1 + self.num_patches, width))
        self.built = True

    def call(self, inputs, noise=None, training=None):
        patches = self.encoder.patchify(images_from_batch(inputs))
        tokens = self.encoder.embed_patches(patches)
        _, mask, _ = self.random_masking(tokens, noise=noise)
        removed = mask[:, :, None]
        tokens = tokens * (1 - removed) + ops.cast(self.encoder_mask_token, tokens.dtype) * removed
        latent = self.encoder.encode_tokens(tokens, training=training)
        in_place = ops.broadcast_to(
            ops.arange(self.num_patches, dtype="int32")[None], ops.shape(mask))
        pred = self.decoder(latent, in_place, training=training)
        return {"pred": pred, "mask": mask, "ids_restore": in_place}
