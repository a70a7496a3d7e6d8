"""Hugging Face `ViTMAEForPreTraining` / `ViTMAEModel` weights as Keras models.

Hugging Face keys are renamed to the official MAE layout (separate query, key
and value projections fused into one `[q | k | v]` qkv), then loaded through
`keras_mae.convert.official`, so both converters share one weight table. Both
the current (`layers.N.attention.q_proj`, `mlp.fc1`) and the older
(`encoder.layer.N.attention.attention.query`, `intermediate.dense`) key names
are understood.
"""

import os
import re

import numpy as np

from keras_mae.convert.official import model_from_official_state_dict, to_numpy

# (pattern on a block's key suffix, official suffix); "attn.{q,k,v}" are fused later.
_BLOCK_RULES = (
    (r"layernorm_before\.", "norm1."),
    (r"layernorm_after\.", "norm2."),
    (r"attention\.(?:q_proj|attention\.query)\.", "attn.q."),
    (r"attention\.(?:k_proj|attention\.key)\.", "attn.k."),
    (r"attention\.(?:v_proj|attention\.value)\.", "attn.v."),
    (r"attention\.(?:o_proj|output\.dense)\.", "attn.proj."),
    (r"(?:mlp\.fc1|intermediate\.dense)\.", "mlp.fc1."),
    (r"(?:mlp\.fc2|output\.dense)\.", "mlp.fc2."),
)
_ENCODER_RULES = (
    (r"embeddings\.cls_token$", "cls_token"),
    (r"embeddings\.position_embeddings$", "pos_embed"),
    (r"embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"layernorm\.", "norm."),
)
_DECODER_RULES = (
    (r"decoder\.mask_token$", "mask_token"),
    (r"decoder\.decoder_pos_embed$", "decoder_pos_embed"),
    (r"decoder\.decoder_embed\.", "decoder_embed."),
    (r"decoder\.decoder_norm\.", "decoder_norm."),
    (r"decoder\.decoder_pred\.", "decoder_pred."),
)
_ENCODER_BLOCK = re.compile(r"(?:layers|encoder\.layer)\.(\d+)\.(.*)$")
_DECODER_BLOCK = re.compile(r"decoder\.decoder_layers\.(\d+)\.(.*)$")


def _apply(rules, key):
    for pattern, replacement in rules:
        match = re.match(pattern, key)
        if match:
            return replacement + key[match.end():]
    return None


def official_key(hf_key):
    """The official MAE name of a Hugging Face ViT-MAE key, or None if unknown.

    Query, key and value weights map to the temporary names `blocks.N.attn.q.*`,
    `attn.k.*`, `attn.v.*` that `hf_to_official_state_dict` fuses.
    """
    key = hf_key[len("vit."):] if hf_key.startswith("vit.") else hf_key
    for block, prefix in ((_DECODER_BLOCK, "decoder_blocks"), (_ENCODER_BLOCK, "blocks")):
        match = block.match(key)
        if match:
            suffix = _apply(_BLOCK_RULES, match.group(2))
            return None if suffix is None else f"{prefix}.{match.group(1)}.{suffix}"
    return _apply(_DECODER_RULES, key) or _apply(_ENCODER_RULES, key)


def hf_to_official_state_dict(hf_state_dict):
    """Renames a Hugging Face ViT-MAE state dict to the official layout (numpy).

    Args:
        hf_state_dict: mapping of Hugging Face keys to tensors or arrays, from a
            `ViTMAEForPreTraining` (keys under `vit.` and `decoder.`) or a
            `ViTMAEModel`.

    Returns:
        dict of official keys to numpy arrays. Keys with no official
        counterpart, and query/key/value parts that cannot be fused, keep their
        Hugging Face names so that loading reports them as unused.
    """
    renamed, origin = {}, {}
    for hf_key, value in hf_state_dict.items():
        key = official_key(hf_key) or hf_key
        if key in renamed:
            raise ValueError(f"Keys {origin[key]!r} and {hf_key!r} both map to {key!r}")
        renamed[key], origin[key] = to_numpy(value), hf_key
    fused = {}
    for key, value in renamed.items():
        match = re.match(r"(.*\.attn\.)([qkv])\.(weight|bias)$", key)
        if not match:
            fused[key] = value
            continue
        head, part, kind = match.groups()
        parts = [f"{head}{p}.{kind}" for p in "qkv"]
        if all(p in renamed for p in parts):
            if part == "q":
                fused[f"{head}qkv.{kind}"] = np.concatenate([renamed[p] for p in parts], axis=0)
        else:
            fused[origin[key]] = value
    return fused


def _check_config(config):
    if getattr(config, "model_type", "vit_mae") != "vit_mae":
        raise ValueError(f"Expected a ViT-MAE model. Received model_type={config.model_type!r}")
    if config.hidden_act != "gelu":
        raise ValueError(
            "Only the exact GELU MLP activation is supported. "
            f"Received: hidden_act={config.hidden_act!r}"
        )
    if not getattr(config, "qkv_bias", True):
        raise ValueError("Only attention with a qkv bias is supported. Received: qkv_bias=False")


def _config_arguments(config, has_decoder):
    arguments = dict(
        image_size=config.image_size,
        num_heads=config.num_attention_heads,
        layer_norm_epsilon=config.layer_norm_eps,
    )
    if has_decoder:
        arguments.update(
            decoder_num_heads=config.decoder_num_attention_heads,
            mask_ratio=config.mask_ratio,
            norm_pix_loss=bool(config.norm_pix_loss),
        )
    return arguments


def _load_pretrained(directory):
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "Reading a Hugging Face directory needs transformers and torch: "
            "`pip install transformers torch`."
        ) from error
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    _check_config(config)
    architectures = getattr(config, "architectures", None) or ["ViTMAEModel"]
    name = "ViTMAEForPreTraining" if "ViTMAEForPreTraining" in architectures else "ViTMAEModel"
    return getattr(transformers, name).from_pretrained(directory, local_files_only=True)


def from_transformers(model_or_directory, **config_overrides):
    """Converts a Hugging Face ViT-MAE model to a Keras model.

    A `ViTMAEForPreTraining` becomes a `MaskedAutoencoder` and a `ViTMAEModel` a
    `ViTEncoder`, with the Hugging Face config's heads, `layer_norm_eps` (1e-12
    by default there), image size and, for the full model, `mask_ratio` and
    `norm_pix_loss`. With the same images (NHWC here, NCHW there) and `noise`
    the outputs agree with Hugging Face's (`logits` = `"pred"`, `mask`,
    `ids_restore`, loss).

    Args:
        model_or_directory: a `ViTMAEForPreTraining` / `ViTMAEModel` instance,
            or a local directory written by `save_pretrained` (read with
            `local_files_only=True`; nothing is downloaded).
        **config_overrides: model arguments overriding the config's, e.g.
            `image_size` (another grid resizes the position tables bicubically),
            `mask_ratio`, `seed`, `name`.

    Returns:
        A built `MaskedAutoencoder` or `ViTEncoder`.

    Raises:
        ValueError: on an unsupported config (activation other than exact GELU,
            no qkv bias, different encoder and decoder MLP ratios) or weights
            that do not fit (unused, missing, mis-shaped keys, all listed).

    Example:
    ```python
    from transformers import ViTMAEForPreTraining
    from keras_mae.convert import from_transformers
    mae = from_transformers("path/to/saved/vit-mae-base")
    mae = from_transformers(ViTMAEForPreTraining.from_pretrained("path/to/dir"))
    ```
    """
    if isinstance(model_or_directory, (str, os.PathLike)):
        directory = os.fspath(model_or_directory)
        if not os.path.isdir(directory):
            raise ValueError(f"No model directory at {directory!r}")
        model = _load_pretrained(directory)
    else:
        model = model_or_directory
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "state_dict"):
        raise ValueError(
            "Expected a Hugging Face ViTMAEForPreTraining or ViTMAEModel, or a "
            f"directory. Received: {type(model_or_directory).__name__}"
        )
    _check_config(config)
    state = hf_to_official_state_dict(model.state_dict())
    has_decoder = any(key.startswith("decoder_") or key == "mask_token" for key in state)
    arguments = {**_config_arguments(config, has_decoder), **config_overrides}
    image_size = config.image_size
    size = image_size if isinstance(image_size, (tuple, list)) else (image_size, image_size)
    grid = (size[0] // config.patch_size, size[1] // config.patch_size)
    return model_from_official_state_dict(state, checkpoint_grid=grid, **arguments)
