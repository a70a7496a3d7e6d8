"""`ViTEncoder` weights as a KerasHub `ViTBackbone`, and back.

- `to_keras_hub`: `keras_mae.models.ViTEncoder` -> `keras_hub.models.ViTBackbone`.
- `from_keras_hub`: `keras_hub.models.ViTBackbone` -> `ViTEncoder`.
- `save_keras_hub_preset`: writes a KerasHub preset directory (backbone plus an
  image preprocessor that applies the ImageNet normalisation this library's
  encoders expect), loadable with
  `keras_hub.models.ViTImageClassifier.from_preset(directory, num_classes=...)`.

Both models compute the same function: a patch projection, a class token
prepended, a position table added (row 0 to the class token), pre-norm blocks
(`x + attn(ln_1(x))`, `x + mlp(ln_2(x))`) and a final LayerNorm; both return
the `(B, 1 + L, D)` tokens, class token first. Outputs agree to float32
rounding on every backend (`tests/test_keras_hub.py`). How each weight is
carried:

- `patch_embedding.projection`, kernel `(p * p * C, D)` <-> the Conv2D
  `patch_embedding`, kernel `(p, p, C, D)`: a reshape, since patches are
  flattened in `(p, p, C)` order (`keras_mae.ops.patchify`).
- `cls_token` `(1, 1, D)` <-> `class_token` `(1, 1, D)`.
- `position_embedding.table` `(1 + L, D)` <-> the `position_embedding`
  Embedding `(1 + L, D)`; row 0 is the class token's, patch rows row-major.
- per block, `attention.qkv` kernel `(D, 3D)`, laid out `[q | k | v]` with
  heads contiguous, and bias `(3D,)` <-> `mha` query / key / value kernels
  `(D, H, D / H)` and biases `(H, D / H)`.
- `attention.proj` `(D, D)` <-> `mha` output kernel `(H, D / H, D)`.
- `norm1`, `norm2`, `fc1`, `fc2` <-> `ln_1`, `ln_2`, `mlp.dense_1`,
  `mlp.dense_2`; `encoder_norm` <-> the final `ln` of `vit_encoder`.

Configuration: `image_size` (square or not) and `num_channels` become
`image_shape`, `depth` `num_layers`, `int(hidden_dim * mlp_ratio)` `mlp_dim`,
and `layer_norm_epsilon` is carried (KerasHub uses one epsilon for every
LayerNorm, as the encoder does). Back from KerasHub, `mlp_ratio` is
`mlp_dim / hidden_dim`, raised by a few ulps where float rounding would
otherwise make `int(hidden_dim * mlp_ratio)` one less than `mlp_dim`. Both MLPs use the exact (erf) GELU, and
attention in both scales queries by `1 / sqrt(D / H)`.

What does not carry over, and how it is handled:

- Stochastic depth. KerasHub's ViT has none (its `dropout_rate` is ordinary
  dropout on the embeddings, the attention output and the MLP, a different
  regulariser). An encoder with `drop_path_rate > 0` raises unless
  `ignore_drop_path=True`: inference is unaffected (drop path is the identity
  outside training), but fine-tuning the backbone then runs without it.
- Dropout. Conversely a backbone with `dropout_rate` or `attention_dropout`
  above 0 raises in `from_keras_hub` unless `ignore_dropout=True` (the encoder
  has no dropout; inference is unaffected).
- Position table. The encoder's table is the fixed 2-D sin-cos table (a
  non-trainable weight); KerasHub's is a learned `Embedding`, so after
  `to_keras_hub` it starts at the sin-cos values and is trained with the rest
  of the backbone (as the official MAE fine-tuning also lets it train). To
  keep it fixed, set
  `backbone.get_layer("vit_patching_and_embedding").position_embedding.trainable = False`
  before compiling (this setting is not part of a saved preset).
  `from_keras_hub` checks that the backbone's patch rows are the sin-cos table
  (max |diff| <= 1e-6) and raises otherwise; `keep_position_table=True` copies
  the backbone's table into the encoder's table weight instead, where it stays
  fixed (not trained) from then on. The class-token row needs no check: only
  the sum class token + row 0 enters the model, so without
  `keep_position_table` that sum becomes the encoder's class token.
- Backbones without a class token (`use_class_token=False`), with a
  non-square patch, or with `hidden_dim` not divisible by 4 (the sin-cos table)
  or by `num_heads` cannot be expressed and raise. Backbones without patch,
  attention or MLP biases (`use_patch_bias`, `use_mha_bias`, `use_mlp_bias`
  False) are represented exactly with zero biases, which are however trainable
  in the encoder.
- Global-pool fine-tuning. The official fine-tuning (and `ViTClassifier(...,
  pooling="avg")`) averages the patch tokens of the last block *before* the
  final norm and normalises the mean with a separate `fc_norm`; KerasHub's
  `ViTImageClassifier(pooling="gap")` averages all tokens, class token
  included, *after* the backbone's final norm, and has no `fc_norm`. Only the
  class-token head (`pooling="token"`, the linear probe's) is the same on
  both sides, so a fine-tuned `ViTClassifier` converts as its encoder only.
- Input layout. The encoder takes channels-last images; a channels-first
  backbone converts, and `encoder(x)` equals `backbone(transpose(x))`.
  `to_keras_hub(..., data_format="channels_first")` builds one.
- Pixels. Neither model rescales its input: both take images already
  normalised (this library's convention: pixels in [0, 1] normalised with the
  ImageNet mean and std, `keras_mae.ops.IMAGENET_MEAN` / `IMAGENET_STD`). A
  KerasHub preset applies such a normalisation in its image converter, which
  `save_keras_hub_preset` writes.

A preset directory written here holds `config.json`, `model.weights.h5` and
`metadata.json` (and, from `save_keras_hub_preset`, `preprocessor.json` and
`image_converter.json`). `keras_hub.upload_preset` validates locally, before
uploading, only that the directory exists, that `config.json` is present and
parses as JSON, and that `model.weights.h5` (or sharded `model_*.weights.h5`)
is present; uploading itself needs the network and is not done here.

keras_hub is imported only when a function needs it. The variables are
reached through the layers' attributes (`vit_patching_and_embedding`,
`vit_encoder`, `encoder_layers`, `mha.query_dense`, ...), which KerasHub and
Keras expose as attributes but do not document as stable API.
"""

import numpy as np
from keras import ops

from keras_mae import files
from keras_mae import ops as mae_ops
from keras_mae.models.vit_encoder import ViTEncoder

# Largest max |diff| at which a backbone's patch rows count as the sin-cos table.
SINCOS_TOLERANCE = 1e-6


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "Converting to or from KerasHub needs keras-hub: `pip install keras-hub`."
        ) from error
    return keras_hub


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype=np.float32)


def _assign(variable, value, what):
    value = np.asarray(value, dtype=np.float32)
    if tuple(variable.shape) != value.shape:
        raise ValueError(
            f"Cannot copy {what}: expected shape {tuple(variable.shape)}, "
            f"got {value.shape}"
        )
    variable.assign(ops.cast(value, variable.dtype))


def _check_policy(model, what):
    policy = model.dtype_policy
    if getattr(policy, "quantization_mode", None):
        raise ValueError(
            f"Cannot convert a quantized {what}. Received: dtype policy "
            f"{policy.name!r} (quantization_mode={policy.quantization_mode!r})"
        )
    return policy.name


def _check_encoder(encoder, ignore_drop_path):
    if not isinstance(encoder, ViTEncoder):
        hint = " (for a MaskedAutoencoder, pass its `.encoder`)" if hasattr(
            encoder, "encoder") else ""
        raise ValueError(
            f"Expected a keras_mae.models.ViTEncoder{hint}. "
            f"Received: {type(encoder).__name__}"
        )
    if not encoder.built:
        raise ValueError(
            "The encoder is not built, so it has no weights to convert yet. Call "
            "`encoder.build()` (or the encoder on images) or load weights first."
        )
    if encoder.drop_path_rate and not ignore_drop_path:
        raise ValueError(
            f"The encoder has stochastic depth (drop_path_rate={encoder.drop_path_rate}), "
            "which KerasHub's ViTBackbone cannot express (its dropout is not drop "
            "path). Pass `ignore_drop_path=True` to convert anyway: outputs are "
            "unaffected at inference, but training the backbone runs without "
            "stochastic depth."
        )
    return _check_policy(encoder, "encoder")


def to_keras_hub(encoder, *, ignore_drop_path=False, data_format="channels_last"):
    """A KerasHub `ViTBackbone` computing the same tokens as `encoder`.

    The backbone is built with the encoder's architecture and dtype policy,
    and every weight is copied (see the module docstring for the layout).
    `backbone(images)` equals `encoder(images)`: `(B, 1 + L, D)` tokens after
    the final norm, class token first, to float32 rounding.

    Args:
        encoder: a built `keras_mae.models.ViTEncoder`.
        ignore_drop_path: bool. An encoder with `drop_path_rate > 0` raises
            unless True, since KerasHub's ViT has no stochastic depth;
            inference is unaffected.
        data_format: `"channels_last"` (`(B, H, W, C)` inputs, as the encoder)
            or `"channels_first"` (`(B, C, H, W)`).

    Returns:
        A built `keras_hub.models.ViTBackbone` taking `(B, H, W, C)` (or
        `(B, C, H, W)`) normalised images, returning `(B, 1 + L, D)`.

    Example:
    ```python
    import numpy as np
    from keras import ops
    from keras_mae.models import ViTEncoder
    from keras_mae.convert import to_keras_hub
    encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4)
    encoder.build()
    backbone = to_keras_hub(encoder)
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    ops.max(ops.abs(backbone(images) - encoder(images)))  # ~1e-6
    backbone.save_to_preset("/tmp/mae_vit")  # keras_hub.models.Backbone.from_preset(...)
    ```
    """
    dtype = _check_encoder(encoder, ignore_drop_path)
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    keras_hub = _keras_hub()
    height, width = encoder.image_size
    channels = encoder.num_channels
    image_shape = (height, width, channels)
    if data_format == "channels_first":
        image_shape = (channels, height, width)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=image_shape,
        patch_size=(encoder.patch_size, encoder.patch_size),
        num_layers=encoder.depth,
        num_heads=encoder.num_heads,
        hidden_dim=encoder.hidden_dim,
        mlp_dim=encoder.blocks[0].mlp_hidden_dim,
        layer_norm_epsilon=encoder.layer_norm_epsilon,
        data_format=data_format,
        dtype=dtype,
    )
    embedding = backbone.get_layer("vit_patching_and_embedding")
    hub_encoder = backbone.get_layer("vit_encoder")
    p, dim = encoder.patch_size, encoder.hidden_dim
    heads, head_dim = encoder.num_heads, dim // encoder.num_heads

    projection = encoder.patch_embedding.projection
    _assign(embedding.patch_embedding.kernel,
            _numpy(projection.kernel).reshape(p, p, channels, dim), "the patch kernel")
    _assign(embedding.patch_embedding.bias, _numpy(projection.bias), "the patch bias")
    _assign(embedding.class_token, _numpy(encoder.cls_token), "the class token")
    _assign(embedding.position_embedding.embeddings,
            _numpy(encoder.position_embedding.table), "the position table")

    for i, (block, hub_block) in enumerate(zip(encoder.blocks, hub_encoder.encoder_layers)):
        where = f"block {i}"
        _copy_norm(block.norm1, hub_block.layer_norm_1, f"{where} norm1")
        _copy_norm(block.norm2, hub_block.layer_norm_2, f"{where} norm2")
        qkv_kernel = _numpy(block.attention.qkv.kernel).reshape(dim, 3, heads, head_dim)
        qkv_bias = _numpy(block.attention.qkv.bias).reshape(3, heads, head_dim)
        mha = hub_block.mha
        for j, (name, dense) in enumerate(
            (("query", mha.query_dense), ("key", mha.key_dense), ("value", mha.value_dense))
        ):
            _assign(dense.kernel, qkv_kernel[:, j], f"{where} {name} kernel")
            _assign(dense.bias, qkv_bias[j], f"{where} {name} bias")
        proj = block.attention.proj
        _assign(mha.output_dense.kernel, _numpy(proj.kernel).reshape(heads, head_dim, dim),
                f"{where} attention output kernel")
        _assign(mha.output_dense.bias, _numpy(proj.bias), f"{where} attention output bias")
        for ours, theirs, name in ((block.fc1, hub_block.mlp.dense_1, "fc1"),
                                   (block.fc2, hub_block.mlp.dense_2, "fc2")):
            _assign(theirs.kernel, _numpy(ours.kernel), f"{where} {name} kernel")
            _assign(theirs.bias, _numpy(ours.bias), f"{where} {name} bias")
    _copy_norm(encoder.norm, hub_encoder.layer_norm, "the final norm")
    return backbone


def _copy_norm(source, target, what):
    _assign(target.gamma, _numpy(source.gamma), f"{what} scale")
    _assign(target.beta, _numpy(source.beta), f"{what} offset")


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"Expected `{name}` to be an int or a pair. Received: {name}={value}")
    return value


def _mlp_ratio(hidden_dim, mlp_dim):
    """A float `r` with `int(hidden_dim * r) == mlp_dim` (as `TransformerBlock` computes)."""
    ratio = mlp_dim / hidden_dim
    for _ in range(4):
        if int(hidden_dim * ratio) == mlp_dim:
            return ratio
        ratio = float(np.nextafter(ratio, np.inf))
    raise ValueError(
        f"mlp_dim={mlp_dim} cannot be written as int(hidden_dim * mlp_ratio) "
        f"with hidden_dim={hidden_dim}"
    )


def _backbone_arguments(backbone, ignore_dropout):
    """`ViTEncoder` arguments of `backbone`, or a ValueError naming what does not fit."""
    keras_hub = _keras_hub()
    if not isinstance(backbone, keras_hub.models.ViTBackbone):
        raise ValueError(
            f"Expected a keras_hub.models.ViTBackbone. Received: {type(backbone).__name__}"
        )
    if not backbone.use_class_token:
        raise ValueError(
            "The backbone has no class token (use_class_token=False); a ViTEncoder "
            "always prepends one, so its outputs would differ."
        )
    patch = _pair(backbone.patch_size, "patch_size")
    if patch[0] != patch[1]:
        raise ValueError(
            f"ViTEncoder has square patches only. Received: patch_size={patch}"
        )
    dim, heads = backbone.hidden_dim, backbone.num_heads
    if dim % heads:
        raise ValueError(
            f"num_heads={heads} does not divide hidden_dim={dim}: KerasHub's attention "
            "then has a narrower inner width, which ViTEncoder cannot express."
        )
    if dim % 4:
        raise ValueError(
            f"ViTEncoder needs hidden_dim divisible by 4 (its 2-D sin-cos table). "
            f"Received: hidden_dim={dim}"
        )
    dropout = {"dropout_rate": backbone.dropout_rate,
               "attention_dropout": backbone.attention_dropout}
    if any(dropout.values()) and not ignore_dropout:
        raise ValueError(
            f"The backbone uses dropout ({', '.join(f'{k}={v}' for k, v in dropout.items())}), "
            "which ViTEncoder does not have. Pass `ignore_dropout=True` to convert "
            "anyway: outputs are unaffected at inference."
        )
    shape = tuple(backbone.image_shape)
    if backbone.data_format == "channels_first":
        channels, height, width = shape
    else:
        height, width, channels = shape
    block = backbone.get_layer("vit_encoder").encoder_layers[0]
    activation = getattr(block.mlp.dense_1.activation, "__name__", None)
    if activation != "gelu":
        raise ValueError(
            f"ViTEncoder's MLP uses the exact GELU. Received: activation={activation!r}"
        )
    return dict(
        image_size=(int(height), int(width)),
        patch_size=patch[0],
        num_channels=int(channels),
        hidden_dim=dim,
        depth=backbone.num_layers,
        num_heads=heads,
        mlp_ratio=_mlp_ratio(dim, backbone.mlp_dim),
        layer_norm_epsilon=backbone.layer_norm_epsilon,
        dtype=_check_policy(backbone, "backbone"),
    )


def _bias_or_zeros(layer, shape):
    """The layer's bias, or zeros of `shape` where the layer has none."""
    bias = getattr(layer, "bias", None)
    return np.zeros(shape, np.float32) if bias is None else _numpy(bias)


def from_keras_hub(backbone, *, keep_position_table=False, ignore_dropout=False):
    """A `ViTEncoder` computing the same tokens as a KerasHub `ViTBackbone`.

    `encoder(images)` equals `backbone(images)` to float32 rounding (for a
    channels-first backbone, `backbone(ops.transpose(images, (0, 3, 1, 2)))`).

    Args:
        backbone: a `keras_hub.models.ViTBackbone` with a class token, square
            patches and `hidden_dim` divisible by 4 and by `num_heads`.
        keep_position_table: bool. The encoder's position table is the fixed
            2-D sin-cos table; by default a backbone whose patch rows differ
            from it by more than 1e-6 raises. With True, the backbone's
            (learned) table is copied into the encoder's table weight, which
            stays fixed (not trained) from then on.
        ignore_dropout: bool. A backbone with `dropout_rate` or
            `attention_dropout` above 0 raises unless True (the encoder has no
            dropout; inference is unaffected).

    Returns:
        A built `keras_mae.models.ViTEncoder`, `drop_path_rate=0`.

    Example:
    ```python
    import keras_hub
    import numpy as np
    from keras import ops
    from keras_mae.convert import from_keras_hub
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=4,
        hidden_dim=32, mlp_dim=128)
    encoder = from_keras_hub(backbone, keep_position_table=True)  # random table
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    ops.max(ops.abs(encoder(images) - backbone(images)))  # ~1e-6
    ```
    """
    arguments = _backbone_arguments(backbone, ignore_dropout)
    embedding = backbone.get_layer("vit_patching_and_embedding")
    hub_encoder = backbone.get_layer("vit_encoder")
    dim, heads = arguments["hidden_dim"], arguments["num_heads"]
    grid = mae_ops.grid_size(arguments["image_size"], arguments["patch_size"])
    table = _numpy(embedding.position_embedding.embeddings)
    sincos = mae_ops.sincos_2d_table(dim, grid)
    class_token = _numpy(embedding.class_token)
    if not keep_position_table:
        gap = float(np.abs(table[1:] - sincos[1:]).max())
        if gap > SINCOS_TOLERANCE:
            raise ValueError(
                "The backbone's position table is not the 2-D sin-cos table "
                f"(max |diff| {gap:.3g} > {SINCOS_TOLERANCE}), e.g. because it was "
                "learned, while a ViTEncoder's positions are the fixed sin-cos table. "
                "Pass `keep_position_table=True` to copy the backbone's table into "
                "the encoder, where it then stays fixed (not trained)."
            )
        # Only class token + row 0 enters the model: fold row 0 into the token.
        class_token = class_token + (table[0] - sincos[0])
        table = sincos

    encoder = ViTEncoder(**arguments)
    encoder.build()
    p, channels = arguments["patch_size"], arguments["num_channels"]
    conv = embedding.patch_embedding
    _assign(encoder.patch_embedding.projection.kernel,
            _numpy(conv.kernel).reshape(p * p * channels, dim), "the patch kernel")
    _assign(encoder.patch_embedding.projection.bias, _bias_or_zeros(conv, (dim,)),
            "the patch bias")
    _assign(encoder.cls_token, class_token, "the class token")
    _assign(encoder.position_embedding.table, table, "the position table")

    head_dim = dim // heads
    for i, (block, hub_block) in enumerate(zip(encoder.blocks, hub_encoder.encoder_layers)):
        where = f"block {i}"
        _copy_norm(hub_block.layer_norm_1, block.norm1, f"{where} norm1")
        _copy_norm(hub_block.layer_norm_2, block.norm2, f"{where} norm2")
        mha = hub_block.mha
        parts = (mha.query_dense, mha.key_dense, mha.value_dense)
        kernel = np.stack([_numpy(d.kernel) for d in parts], axis=1)  # (D, 3, H, hd)
        bias = np.stack([_bias_or_zeros(d, (heads, head_dim)) for d in parts], axis=0)
        _assign(block.attention.qkv.kernel, kernel.reshape(dim, 3 * dim), f"{where} qkv kernel")
        _assign(block.attention.qkv.bias, bias.reshape(3 * dim), f"{where} qkv bias")
        _assign(block.attention.proj.kernel, _numpy(mha.output_dense.kernel).reshape(dim, dim),
                f"{where} proj kernel")
        _assign(block.attention.proj.bias, _bias_or_zeros(mha.output_dense, (dim,)),
                f"{where} proj bias")
        for theirs, ours, name in ((hub_block.mlp.dense_1, block.fc1, "fc1"),
                                   (hub_block.mlp.dense_2, block.fc2, "fc2")):
            _assign(ours.kernel, _numpy(theirs.kernel), f"{where} {name} kernel")
            _assign(ours.bias, _bias_or_zeros(theirs, tuple(ours.bias.shape)),
                    f"{where} {name} bias")
    _copy_norm(hub_encoder.layer_norm, encoder.norm, "the final norm")
    return encoder


def save_keras_hub_preset(
    encoder,
    directory,
    *,
    max_pixel_value=255.0,
    mean=mae_ops.IMAGENET_MEAN,
    std=mae_ops.IMAGENET_STD,
    interpolation="bicubic",
    antialias=True,
    ignore_drop_path=False,
    overwrite=False,
):
    """Writes `encoder` as a KerasHub ViT preset that takes raw pixels.

    The directory gets the backbone of `to_keras_hub(encoder)` and a
    `ViTImageClassifierPreprocessor` whose `ViTImageConverter` resizes images
    to the encoder's size (cropping to its aspect ratio) and maps pixels in
    `[0, max_pixel_value]` to `(x / max_pixel_value - mean) / std`, the input
    the encoder was trained on. It then loads with
    `keras_hub.models.ViTImageClassifier.from_preset(directory, num_classes=n)`
    (a new, untrained head over the class token; the classifier's
    preprocessor applies the normalisation), with
    `keras_hub.models.Backbone.from_preset(directory)` (the backbone alone,
    which takes normalised images) and with
    `keras_hub.models.ImageClassifierPreprocessor.from_preset(directory)`.

    Args:
        encoder: a built `keras_mae.models.ViTEncoder`.
        directory: str, the preset directory (created if missing).
        max_pixel_value: float > 0, the value of a white pixel in the raw
            inputs (255 for 8-bit images, 1 for images already in [0, 1]).
        mean: per-channel mean of pixels in [0, 1], one per encoder
            channel (ImageNet's by default).
        std: per-channel std of pixels in [0, 1], one per encoder channel
            (ImageNet's by default).
        interpolation: the converter's resizing interpolation.
        antialias: the converter's resizing antialias.
        ignore_drop_path: as in `to_keras_hub`.
        overwrite: replace a non-empty `directory` (otherwise `ValueError`).
            The folder is written under a temporary name and renamed when
            complete (`keras_mae.files.atomic_folder`).

    Returns:
        The `keras_hub.models.ViTBackbone` that was saved.

    Example:
    ```python
    import keras_hub
    import numpy as np
    from keras_mae.models import ViTEncoder
    from keras_mae.convert import save_keras_hub_preset
    encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4)
    encoder.build()
    save_keras_hub_preset(encoder, "mae_vit_preset")
    classifier = keras_hub.models.ViTImageClassifier.from_preset(
        "mae_vit_preset", num_classes=10)
    classifier.predict(np.random.randint(0, 256, (2, 48, 48, 3)), verbose=0).shape  # (2, 10)
    ```
    """
    _check_encoder(encoder, ignore_drop_path)
    if not isinstance(directory, str) or not directory:
        raise ValueError(f"`directory` must be a non-empty str. Received: directory={directory!r}")
    if not isinstance(max_pixel_value, (int, float, np.number)) or not max_pixel_value > 0:
        raise ValueError(
            f"`max_pixel_value` must be a positive number. Received: "
            f"max_pixel_value={max_pixel_value!r}"
        )
    channels = encoder.num_channels
    for name, value in (("mean", mean), ("std", std)):
        if len(value) != channels:
            raise ValueError(
                f"`{name}` needs one value per channel ({channels}). "
                f"Received: {name}={tuple(value)}"
            )
    if min(std) <= 0:
        raise ValueError(f"`std` must be positive. Received: std={tuple(std)}")
    keras_hub = _keras_hub()
    backbone = to_keras_hub(encoder, ignore_drop_path=ignore_drop_path)
    converter = keras_hub.layers.ViTImageConverter(
        image_size=encoder.image_size,
        scale=[1.0 / (float(max_pixel_value) * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std)],
        crop_to_aspect_ratio=True,
        interpolation=interpolation,
        antialias=antialias,
        data_format="channels_last",
    )
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    with files.atomic_folder(directory, overwrite=overwrite) as tmp:
        backbone.save_to_preset(tmp)
        preprocessor.save_to_preset(tmp)
    return backbone
