"""Analytic FLOPs of a Masked Autoencoder training step (multiply-add = 2 FLOPs).

Counts the matrix multiplications (patch embedding, attention projections,
attention scores and values, MLPs, decoder embedding and prediction head),
which dominate a ViT; norms, softmax and GELU are ignored. A training step is
taken as 3x the forward pass (backward = 2x forward).
"""


def block_flops(tokens, width, mlp_ratio=4.0):
    """Forward FLOPs of one transformer block on `tokens` tokens of `width`."""
    projections = 4 * tokens * width * width          # qkv + output projection
    attention = 2 * tokens * tokens * width           # scores and weighted values
    mlp = 2 * tokens * width * int(width * mlp_ratio)
    return 2 * (projections + attention + mlp)


def mae_forward_flops(model, encoder_tokens=None):
    """Forward FLOPs per image of a `MaskedAutoencoder`.

    Args:
        model: a `MaskedAutoencoder` (only its config is read).
        encoder_tokens: tokens the encoder blocks see, without the class token;
            default the visible patches `K`. Pass `model.num_patches` for the
            "mask tokens in the encoder" baseline of the paper's Table 2.
    """
    patches = model.num_patches
    visible = model.num_visible if encoder_tokens is None else encoder_tokens
    patch_dim = model.encoder.patch_size ** 2 * model.encoder.num_channels
    total = 2 * patches * patch_dim * model.encoder.hidden_dim
    total += model.encoder.depth * block_flops(1 + visible, model.encoder.hidden_dim, model.encoder.mlp_ratio)
    total += 2 * (1 + visible) * model.encoder.hidden_dim * model.decoder_hidden_dim
    total += model.decoder_depth * block_flops(1 + patches, model.decoder_hidden_dim, model.encoder.mlp_ratio)
    total += 2 * (1 + patches) * model.decoder_hidden_dim * patch_dim
    return total


def mae_train_flops(model, encoder_tokens=None):
    """Training-step FLOPs per image: 3x the forward pass."""
    return 3 * mae_forward_flops(model, encoder_tokens)
