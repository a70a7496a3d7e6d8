"""Named Masked Autoencoder configurations, as the official `mae_vit_*` factories.

Each factory returns a `MaskedAutoencoder` around a new `ViTEncoder`; keyword
arguments override any field of either (`image_size`, `num_channels`,
`mask_ratio`, `norm_pix_loss`, `seed`, ...): `from_arguments` tells them apart.
"""

import inspect

from keras_mae.models.masked_autoencoder import MaskedAutoencoder
from keras_mae.models.vit_encoder import ViTEncoder


def _arguments_of(cls):
    parameters = inspect.signature(cls.__init__).parameters
    return tuple(name for name, p in parameters.items()
                 if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)


# Arguments given to both the encoder and the task.
SHARED_ARGUMENTS = ("seed", "dtype")
ENCODER_ARGUMENTS = _arguments_of(ViTEncoder)
TASK_ARGUMENTS = tuple(a for a in _arguments_of(MaskedAutoencoder) if a != "encoder")

# Official decoder for the 224 px models: 512 wide, 8 blocks, 16 heads.
_PAPER_DECODER = dict(decoder_hidden_dim=512, decoder_depth=8, decoder_num_heads=16)

CONFIGS = {
    "mae_vit_base_patch16": dict(
        image_size=224, patch_size=16, hidden_dim=768, depth=12, num_heads=12, **_PAPER_DECODER
    ),
    "mae_vit_large_patch16": dict(
        image_size=224, patch_size=16, hidden_dim=1024, depth=24, num_heads=16, **_PAPER_DECODER
    ),
    "mae_vit_huge_patch14": dict(
        image_size=224, patch_size=14, hidden_dim=1280, depth=32, num_heads=16, **_PAPER_DECODER
    ),
    "mae_vit_small_patch8": dict(
        image_size=64, patch_size=8, hidden_dim=384, depth=12, num_heads=6,
        decoder_hidden_dim=256, decoder_depth=4, decoder_num_heads=8,
    ),
    "mae_vit_tiny_patch4": dict(
        image_size=32, patch_size=4, hidden_dim=192, depth=12, num_heads=3,
        decoder_hidden_dim=128, decoder_depth=4, decoder_num_heads=4,
    ),
}


def build(name, **overrides):
    """Builds the named configuration with keyword overrides.

    Example:
    ```python
    from keras_mae.models import configs
    model = configs.build("mae_vit_tiny_patch4", mask_ratio=0.9, seed=0)
    ```
    """
    if name not in CONFIGS:
        raise ValueError(f"Unknown config {name!r}. Known configs: {sorted(CONFIGS)}")
    return from_arguments(**{**CONFIGS[name], **overrides})


def split_arguments(**arguments):
    """`(encoder arguments, task arguments)` of flat keyword arguments.

    `seed` and `dtype` go to both; `name` names the task (the encoder is
    named `"encoder"`). An unknown argument raises `ValueError` naming it.

    Example:
    ```python
    from keras_mae.models import split_arguments
    split_arguments(hidden_dim=64, depth=2, mask_ratio=0.9, seed=0)
    # ({"hidden_dim": 64, "depth": 2, "seed": 0}, {"mask_ratio": 0.9, "seed": 0})
    ```
    """
    unknown = sorted(set(arguments) - set(ENCODER_ARGUMENTS) - set(TASK_ARGUMENTS)
                     - set(SHARED_ARGUMENTS) - {"name"})
    if unknown:
        raise ValueError(
            f"Unknown model arguments {unknown}. Encoder: {list(ENCODER_ARGUMENTS)}; "
            f"MaskedAutoencoder: {list(TASK_ARGUMENTS)}; both: {list(SHARED_ARGUMENTS)}"
        )
    encoder = {k: v for k, v in arguments.items() if k in ENCODER_ARGUMENTS}
    task = {k: v for k, v in arguments.items() if k in TASK_ARGUMENTS or k == "name"}
    for key in SHARED_ARGUMENTS:
        if key in arguments:
            encoder[key] = task[key] = arguments[key]
    return encoder, task


def from_arguments(task_class=MaskedAutoencoder, **arguments):
    """A `MaskedAutoencoder` (or a subclass, `task_class`) and its `ViTEncoder` from flat arguments.

    Example:
    ```python
    from keras_mae.models import from_arguments
    model = from_arguments(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4,
                           decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2)
    ```
    """
    encoder_arguments, task_arguments = split_arguments(**arguments)
    return task_class(ViTEncoder(**encoder_arguments, name="encoder"), **task_arguments)


def mae_vit_base_patch16(**overrides):
    """ViT-B/16 MAE at 224 px: 111,655,680 trainable parameters (encoder 85,647,360)."""
    return build("mae_vit_base_patch16", **overrides)


def mae_vit_large_patch16(**overrides):
    """ViT-L/16 MAE at 224 px (encoder 1024 wide, 24 blocks, 16 heads)."""
    return build("mae_vit_large_patch16", **overrides)


def mae_vit_huge_patch14(**overrides):
    """ViT-H/14 MAE at 224 px (encoder 1280 wide, 32 blocks, 16 heads)."""
    return build("mae_vit_huge_patch14", **overrides)


def mae_vit_small_patch8(**overrides):
    """64 px MAE: encoder 384 wide, 12 blocks, 6 heads; decoder 256, 4 blocks, 8 heads."""
    return build("mae_vit_small_patch8", **overrides)


def mae_vit_tiny_patch4(**overrides):
    """32 px MAE (CIFAR-sized): encoder 192 wide, 12 blocks, 3 heads; decoder 128, 4, 4."""
    return build("mae_vit_tiny_patch4", **overrides)
