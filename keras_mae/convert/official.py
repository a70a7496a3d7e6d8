"""Weights in the layout of the official PyTorch MAE (facebookresearch/mae).

One table, `weight_table`, pairs every official state-dict key with the Keras
variable that holds it and the transform between the two layouts; loading and
exporting both read it. Architectures are inferred from tensor shapes.

Official key layout (ViT blocks as timm's):
`cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}`,
`blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}`,
`norm.{weight,bias}`; with a decoder also `mask_token`, `decoder_pos_embed`,
`decoder_embed.*`, `decoder_blocks.N.*`, `decoder_norm.*`, `decoder_pred.*`.
"""

import collections.abc
import math
import os
import pickle
import re

import numpy as np
from keras import ops

from keras_mae import ops as mae_ops
from keras_mae.models.configs import SHARED_ARGUMENTS
from keras_mae.models.configs import TASK_ARGUMENTS
from keras_mae.models.configs import from_arguments
from keras_mae.models.masked_autoencoder import MaskedAutoencoder
from keras_mae.models.serialization import weights_below
from keras_mae.models.vit_encoder import ViTEncoder

# Heads of the published models by width (heads cannot be read from shapes).
ENCODER_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}
DECODER_HEADS_BY_WIDTH = {512: 16}

# Official LayerNorm epsilon (timm `partial(nn.LayerNorm, eps=1e-6)`).
OFFICIAL_LAYER_NORM_EPSILON = 1e-6

# Transforms between a Keras value and its official (PyTorch) counterpart.
#   copy:   same array.
#   linear: Dense kernel (in, out) <-> nn.Linear weight (out, in).
#   table:  position table (1 + L, D) <-> (1, 1 + L, D).
#   conv:   patch Dense kernel (p * p * C, D) <-> Conv2d weight (D, C, p, p).
COPY, LINEAR, TABLE, CONV = "copy", "linear", "table", "conv"

_BLOCK = (
    ("norm1.weight", "norm1/gamma", COPY),
    ("norm1.bias", "norm1/beta", COPY),
    ("attn.qkv.weight", "attention/qkv/kernel", LINEAR),
    ("attn.qkv.bias", "attention/qkv/bias", COPY),
    ("attn.proj.weight", "attention/proj/kernel", LINEAR),
    ("attn.proj.bias", "attention/proj/bias", COPY),
    ("norm2.weight", "norm2/gamma", COPY),
    ("norm2.bias", "norm2/beta", COPY),
    ("mlp.fc1.weight", "fc1/kernel", LINEAR),
    ("mlp.fc1.bias", "fc1/bias", COPY),
    ("mlp.fc2.weight", "fc2/kernel", LINEAR),
    ("mlp.fc2.bias", "fc2/bias", COPY),
)
_ENCODER = (
    ("cls_token", "cls_token", COPY),
    ("pos_embed", "position_embedding/table", TABLE),
    ("patch_embed.proj.weight", "patch_embedding/projection/kernel", CONV),
    ("patch_embed.proj.bias", "patch_embedding/projection/bias", COPY),
)
_ENCODER_NORM = (
    ("norm.weight", "encoder_norm/gamma", COPY),
    ("norm.bias", "encoder_norm/beta", COPY),
)
_DECODER = (
    ("mask_token", "mask_token", COPY),
    ("decoder_pos_embed", "decoder_position_embedding/table", TABLE),
    ("decoder_embed.weight", "decoder_embed/kernel", LINEAR),
    ("decoder_embed.bias", "decoder_embed/bias", COPY),
)
_DECODER_HEAD = (
    ("decoder_norm.weight", "decoder_norm/gamma", COPY),
    ("decoder_norm.bias", "decoder_norm/beta", COPY),
    ("decoder_pred.weight", "decoder_pred/kernel", LINEAR),
    ("decoder_pred.bias", "decoder_pred/bias", COPY),
)

# Fields read from the checkpoint's shapes; an override must agree with them.
_INFERRED_FIELDS = (
    "patch_size", "num_channels", "hidden_dim", "depth", "mlp_ratio",
    "decoder_hidden_dim", "decoder_depth",
)
# Arguments only a MaskedAutoencoder takes.
_DECODER_ONLY_FIELDS = tuple(a for a in TASK_ARGUMENTS if a not in SHARED_ARGUMENTS)


def weight_table(depth, decoder_depth=None, encoder_prefix=""):
    """The official key <-> Keras variable table of an architecture.

    Args:
        depth: int, encoder blocks.
        decoder_depth: int, decoder blocks, or None for an encoder alone.
        encoder_prefix: prefix of the encoder's Keras paths: `"encoder/"` inside
            a `MaskedAutoencoder`, `""` for a `ViTEncoder`. Decoder paths are
            prefixed `"decoder/"`.

    Returns:
        A list of `(official_key, keras_relative_path, transform)` with paths
        relative to the model, in the official key order.
    """

    def entries(rows, official, keras):
        return [(official + o, keras + k, t) for o, k, t in rows]

    table = entries(_ENCODER, "", encoder_prefix)
    for i in range(depth):
        table += entries(_BLOCK, f"blocks.{i}.", f"{encoder_prefix}encoder_block_{i}/")
    table += entries(_ENCODER_NORM, "", encoder_prefix)
    if decoder_depth is not None:
        table += entries(_DECODER, "", "decoder/")
        for i in range(decoder_depth):
            table += entries(_BLOCK, f"decoder_blocks.{i}.", f"decoder/decoder_block_{i}/")
        table += entries(_DECODER_HEAD, "", "decoder/")
    return table


def _encoder_of(model):
    if isinstance(model, MaskedAutoencoder):
        return model.encoder
    if isinstance(model, ViTEncoder):
        return model
    raise ValueError(
        f"Expected a MaskedAutoencoder or a ViTEncoder. Received: {type(model).__name__}"
    )


def _model_table(model):
    if isinstance(model, MaskedAutoencoder):
        return weight_table(model.encoder.depth, model.decoder_depth, "encoder/")
    return weight_table(_encoder_of(model).depth)


def _to_official(transform, value, patch_size, num_channels):
    if transform == LINEAR:
        return value.T
    if transform == TABLE:
        return value[None]
    if transform == CONV:
        dim = value.shape[-1]
        return value.reshape(patch_size, patch_size, num_channels, dim).transpose(3, 2, 0, 1)
    return value


def _to_keras(transform, value):
    if transform == LINEAR:
        return value.T
    if transform == TABLE:
        return value[0]
    if transform == CONV:
        return value.transpose(2, 3, 1, 0).reshape(-1, value.shape[0])
    return value


def _official_shape(transform, keras_shape, patch_size, num_channels):
    if transform == LINEAR:
        return tuple(reversed(keras_shape))
    if transform == TABLE:
        return (1,) + tuple(keras_shape)
    if transform == CONV:
        return (keras_shape[-1], num_channels, patch_size, patch_size)
    return tuple(keras_shape)


def _variables_by_path(model):
    """`{path relative to the model: variable}` of a built model.

    Inside a `MaskedAutoencoder` the encoder's paths start with `encoder/`,
    whatever the encoder object is named.
    """
    if not model.built:
        model.build()
    if not isinstance(model, MaskedAutoencoder):
        return model.relative_weights()
    return {f"{part}/{path}": variable
            for part, layer in (("encoder", model.encoder), ("decoder", model.decoder))
            for path, variable in weights_below(layer).items()}


def _matched_variables(model):
    """`[(official_key, variable, transform)]`, checking the table covers the model."""
    variables = _variables_by_path(model)
    table = _model_table(model)
    unknown = sorted(set(variables) - {path for _, path, _ in table})
    absent = sorted({path for _, path, _ in table} - set(variables))
    if unknown or absent:
        raise ValueError(
            "The model's variables do not match the official weight table. "
            f"Variables without an official key: {unknown}. "
            f"Table paths without a variable: {absent}."
        )
    return [(key, variables[path], transform) for key, path, transform in table]


def to_numpy(value):
    """A numpy array of a numpy, torch (any dtype, any device) or Keras value."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype.itemsize < 4:
            value = value.float()
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    return ops.convert_to_numpy(value)


def load_official_state_dict(model, state_dict):
    """Assigns an official-layout state dict to a `MaskedAutoencoder` or `ViTEncoder`.

    Strict: every key of `state_dict` must be used and every variable of the
    model set, with matching shapes; otherwise nothing is assigned.

    Args:
        model: a `MaskedAutoencoder` or `ViTEncoder` (built here if needed).
        state_dict: mapping of official keys to numpy arrays or torch tensors.

    Returns:
        `model`, with its weights set.

    Raises:
        ValueError: listing the unused keys, the missing keys and the shape
            mismatches `key: checkpoint shape vs expected shape`.

    Example:
    ```python
    import keras_mae
    from keras_mae.convert import load_official_state_dict, to_official_state_dict
    a = keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1)
    b = keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1)
    load_official_state_dict(b, to_official_state_dict(a))
    ```
    """
    encoder = _encoder_of(model)
    matched = _matched_variables(model)
    expected = {key for key, _, _ in matched}
    unused = sorted(set(state_dict) - expected)
    missing = sorted(expected - set(state_dict))
    mismatched = []
    for key, variable, transform in matched:
        if key not in state_dict:
            continue
        shape = tuple(np.shape(state_dict[key]))
        want = _official_shape(
            transform, tuple(variable.shape), encoder.patch_size, encoder.num_channels
        )
        if shape != want:
            mismatched.append(f"{key}: {shape} vs expected {want}")
    if unused or missing or mismatched:
        raise ValueError(
            f"The state dict does not fit the model {model.name!r}. "
            f"Unused keys: {unused}. Missing keys: {missing}. "
            f"Shape mismatches: {mismatched}."
        )
    for key, variable, transform in matched:
        value = _to_keras(transform, to_numpy(state_dict[key]))
        variable.assign(np.ascontiguousarray(value, dtype="float32"))
    return model


def to_official_state_dict(model, as_torch=False):
    """The weights of a model in the official MAE key layout.

    The result loads into the official PyTorch `MaskedAutoencoderViT` (or a
    timm ViT for an encoder) with `load_state_dict` and back here with
    `from_official_checkpoint`; the round trip is exact.

    Args:
        model: a `MaskedAutoencoder` (encoder and decoder keys) or a
            `ViTEncoder` (encoder keys only).
        as_torch: bool. False (default) returns float32 numpy arrays; True
            returns CPU torch tensors (needs torch), ready for `torch.save`
            and for `torch.load(..., weights_only=True)`.

    Returns:
        dict `{official_key: array}` in the official key order.

    Example:
    ```python
    import keras_mae
    from keras_mae.convert import to_official_state_dict
    model = keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1)
    state = to_official_state_dict(model)
    state["blocks.0.attn.qkv.weight"].shape  # (576, 192)
    ```
    """
    encoder = _encoder_of(model)
    state = {}
    for key, variable, transform in _matched_variables(model):
        value = np.asarray(ops.convert_to_numpy(variable), dtype="float32")
        state[key] = np.ascontiguousarray(
            _to_official(transform, value, encoder.patch_size, encoder.num_channels)
        )
    if as_torch:
        torch = _import_torch()
        state = {key: torch.from_numpy(value) for key, value in state.items()}
    return state


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading or writing PyTorch checkpoints needs torch: `pip install torch` "
            "(the CPU build is enough)."
        ) from error
    return torch


def read_checkpoint(path):
    """Reads a state dict from a `.pth`/`.pt` (torch) or `.safetensors` file.

    Torch files are read with `torch.load(map_location="cpu", weights_only=True)`;
    a checkpoint dict holding the weights under `"model"` (as the official
    files) is unwrapped.

    Args:
        path: str or path-like.

    Returns:
        dict of keys to numpy arrays or torch tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No checkpoint file at {path!r}")
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as error:
            raise ImportError(
                "Reading .safetensors files needs safetensors: `pip install safetensors`."
            ) from error
        state = load_file(path)
    else:
        try:
            state = _import_torch().load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path!r} holds more than tensors (e.g. training arguments), which "
                "`torch.load(..., weights_only=True)` refuses. If you trust the file, "
                "load it yourself with `torch.load(path, weights_only=False)` and pass "
                "its `['model']` state dict."
            ) from error
    state = _unwrap(state)
    if not isinstance(state, collections.abc.Mapping):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict"
        )
    return state


def _unwrap(state):
    """The weights of a checkpoint dict that keeps them under `"model"`."""
    if isinstance(state, collections.abc.Mapping) and isinstance(
        state.get("model"), collections.abc.Mapping
    ):
        return state["model"]
    return state


def _block_count(state, prefix):
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    indices = [int(m.group(1)) for m in map(pattern.match, state) if m]
    return max(indices) + 1 if indices else 0


def _require(state, keys, what):
    absent = [key for key in keys if key not in state]
    if absent:
        raise ValueError(
            f"Cannot infer the {what} architecture: the state dict lacks {absent}. "
            f"Keys present (first 20): {sorted(state)[:20]}"
        )


def _heads(width, table, override, name):
    if override is not None:
        return override
    if width in table:
        return table[width]
    raise ValueError(
        f"Cannot infer `{name}` for width {width}: head counts are not stored in "
        f"the weights and only the published widths {sorted(table)} are known. "
        f"Pass `{name}=...`."
    )


def _grid_of(num_patches, patch_size, image_size, checkpoint_grid):
    """The patch grid the checkpoint's position tables were made for.

    `checkpoint_grid` when given; else square when `num_patches` is a square;
    else the grid of `image_size` when it has `num_patches` patches.
    """
    if checkpoint_grid is not None:
        grid = tuple(int(v) for v in checkpoint_grid)
        if len(grid) != 2 or grid[0] * grid[1] != num_patches:
            raise ValueError(
                f"checkpoint_grid={checkpoint_grid} does not fit the position "
                f"table's {num_patches} patch rows"
            )
        return grid
    side = math.isqrt(num_patches)
    if side * side == num_patches:
        return side, side
    if image_size is not None:
        grid = mae_ops.grid_size(image_size, patch_size)
        if grid[0] * grid[1] == num_patches:
            return grid
    raise ValueError(
        f"The position table has {num_patches} patch rows, not a square grid: "
        "pass `checkpoint_grid=(h, w)`."
    )


def infer_config(state_dict, checkpoint_grid=None, **overrides):
    """Model arguments of an official-layout state dict, from its tensor shapes.

    Width, depth, patch size, channels, MLP ratio and the patch grid come from
    shapes; heads from `ENCODER_HEADS_BY_WIDTH` / `DECODER_HEADS_BY_WIDTH` unless
    given. Overrides of shape-derived fields must agree with the checkpoint.

    Args:
        state_dict: official-layout mapping of keys to arrays.
        checkpoint_grid: `(h, w)` patch grid of the checkpoint's position
            tables; None infers it (square, or that of `image_size`).
        **overrides: model arguments (`image_size`, `num_heads`,
            `decoder_num_heads`, `mask_ratio`, `norm_pix_loss`, `name`, ...).

    Returns:
        `(config, checkpoint_grid, has_decoder)`: `config` the keyword arguments
        of `MaskedAutoencoder` (when `has_decoder`) or `ViTEncoder`;
        `checkpoint_grid` the `(h, w)` grid the position tables were made for.
    """
    _require(
        state_dict, ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"), "encoder"
    )
    dim, channels, patch, patch_w = np.shape(state_dict["patch_embed.proj.weight"])
    if patch != patch_w:
        raise ValueError(
            f"Only square patches are supported. Received: patch_embed.proj.weight "
            f"of shape {np.shape(state_dict['patch_embed.proj.weight'])}"
        )
    mlp_ratio = np.shape(state_dict["blocks.0.mlp.fc1.weight"])[0] / dim
    inferred = dict(
        patch_size=int(patch), num_channels=int(channels), hidden_dim=int(dim),
        depth=_block_count(state_dict, "blocks."), mlp_ratio=float(mlp_ratio),
    )
    has_decoder = any(k == "mask_token" or k.startswith("decoder_") for k in state_dict)
    if has_decoder:
        _require(state_dict, ("decoder_embed.weight", "decoder_blocks.0.mlp.fc1.weight"), "decoder")
        decoder_dim = int(np.shape(state_dict["decoder_embed.weight"])[0])
        decoder_ratio = np.shape(state_dict["decoder_blocks.0.mlp.fc1.weight"])[0] / decoder_dim
        if decoder_ratio != mlp_ratio:
            raise ValueError(
                f"The encoder MLP ratio {mlp_ratio} differs from the decoder's "
                f"{decoder_ratio}; MaskedAutoencoder uses one `mlp_ratio` for both."
            )
        inferred.update(
            decoder_hidden_dim=decoder_dim,
            decoder_depth=_block_count(state_dict, "decoder_blocks."),
        )
    conflicts = [
        f"{name}={overrides[name]!r} (checkpoint: {inferred[name]!r})"
        for name in _INFERRED_FIELDS
        if name in overrides and name in inferred and overrides[name] != inferred[name]
    ]
    if conflicts:
        raise ValueError(f"Overrides contradict the checkpoint's shapes: {conflicts}")
    if not has_decoder:
        misplaced = sorted(set(overrides) & set(_DECODER_ONLY_FIELDS))
        if misplaced:
            raise ValueError(
                f"The state dict has no decoder, so a ViTEncoder is built; it does "
                f"not take {misplaced}"
            )
    num_patches = np.shape(state_dict["pos_embed"])[1] - 1
    grid = _grid_of(
        num_patches, inferred["patch_size"], overrides.get("image_size"), checkpoint_grid
    )
    config = dict(
        inferred,
        image_size=(grid[0] * inferred["patch_size"], grid[1] * inferred["patch_size"]),
        layer_norm_epsilon=OFFICIAL_LAYER_NORM_EPSILON,
    )
    config.update(overrides)
    config["num_heads"] = _heads(
        dim, ENCODER_HEADS_BY_WIDTH, overrides.get("num_heads"), "num_heads"
    )
    if has_decoder:
        config["decoder_num_heads"] = _heads(
            inferred["decoder_hidden_dim"], DECODER_HEADS_BY_WIDTH,
            overrides.get("decoder_num_heads"), "decoder_num_heads",
        )
    return config, grid, has_decoder


def resize_position_tables(state_dict, old_grid, new_grid):
    """A copy of `state_dict` with `pos_embed`/`decoder_pos_embed` resized to `new_grid`."""
    state = dict(state_dict)
    for key in ("pos_embed", "decoder_pos_embed"):
        if key in state:
            state[key] = mae_ops.interpolate_pos_embed(to_numpy(state[key]), new_grid, old_grid)
    return state


def model_from_official_state_dict(state_dict, checkpoint_grid=None, **config_overrides):
    """Builds the model of an official-layout state dict and loads it.

    As `from_official_checkpoint`, for a state dict already in memory.
    """
    config, grid, has_decoder = infer_config(state_dict, checkpoint_grid, **config_overrides)
    model = from_arguments(**config) if has_decoder else ViTEncoder(**config)
    model.build()
    state_dict = resize_position_tables(state_dict, grid, _encoder_of(model).grid)
    return load_official_state_dict(model, state_dict)


def from_official_checkpoint(path_or_state_dict, checkpoint_grid=None, **config_overrides):
    """Loads an official MAE checkpoint as a Keras model.

    Reads the published `mae_pretrain_vit_{base,large,huge}.pth` (encoder only:
    returns a `ViTEncoder`) and `mae_visualize_vit_*.pth` / `*_full.pth`
    (encoder and decoder: returns a `MaskedAutoencoder`), or any state dict in
    that layout. Width, depth, patch size, channels, MLP ratio and the grid are
    read from tensor shapes. Heads are not stored in the weights: they default
    to the published models' (encoder 768 -> 12, 1024 -> 16, 1280 -> 16;
    decoder 512 -> 16); other widths need `num_heads` / `decoder_num_heads`.
    An `image_size` with another patch grid than the checkpoint's resizes the
    position tables bicubically (`interpolate_pos_embed`). LayerNorm epsilon
    defaults to the official 1e-6.

    Args:
        path_or_state_dict: a `.pth`/`.pt` file (read with `torch.load(...,
            weights_only=True)`, needs torch), a `.safetensors` file, or a
            mapping of keys to arrays/tensors; the weights may sit under `"model"`.
        checkpoint_grid: `(h, w)` patch grid of the checkpoint. None: square
            (as all published ones), or for a non-square patch count the grid
            of `image_size`. Needed for a non-square grid with a square count
            (e.g. 2 x 8 patches).
        **config_overrides: arguments of the model (`image_size`, `num_heads`,
            `decoder_num_heads`, `mask_ratio`, `norm_pix_loss`,
            `layer_norm_epsilon`, `name`, ...).

    Returns:
        A built `MaskedAutoencoder` or `ViTEncoder` holding the weights.

    Raises:
        ValueError: on unused or missing keys or shape mismatches (all listed),
            on heads that cannot be inferred, or on overrides contradicting the
            checkpoint.

    Example:
    ```python
    from keras_mae.convert import from_official_checkpoint
    encoder = from_official_checkpoint("mae_pretrain_vit_base.pth")
    mae = from_official_checkpoint("mae_visualize_vit_large.pth", image_size=256)
    ```
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        state = read_checkpoint(path_or_state_dict)
    elif isinstance(path_or_state_dict, collections.abc.Mapping):
        state = _unwrap(path_or_state_dict)
    else:
        raise ValueError(
            "Expected a checkpoint path or a state dict. "
            f"Received: {type(path_or_state_dict).__name__}"
        )
    return model_from_official_state_dict(state, checkpoint_grid, **config_overrides)
