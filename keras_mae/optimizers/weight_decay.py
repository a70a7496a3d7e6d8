"""Selection of the variables that MAE trains without weight decay.

Only weight matrices are decayed: biases and normalization parameters
(every variable with `ndim <= 1`) are excluded, as are the learned tokens
and position embeddings.

References:
    - He et al., "Masked Autoencoders Are Scalable Vision Learners",
      CVPR 2022 (arXiv:2111.06377).
    - The official MAE reference implementation (facebookresearch/mae):
      `util/lr_decay.py` (`param_groups_lrd`, which skips decay for
      `ndim == 1` parameters and the ViT's `no_weight_decay()` names
      `pos_embed` / `cls_token`), and the `ndim <= 1` rule used for the
      pre-training parameter groups in `main_pretrain.py`.
"""

NO_WEIGHT_DECAY_NAMES = (
    "position_embedding",
    "pos_embed",
    "cls_token",
    "mask_token",
)
"""Path substrings of variables excluded from weight decay."""


def _is_excluded(variable, extra_names):
    if len(variable.shape) <= 1:
        return True
    path = getattr(variable, "path", None) or variable.name
    return any(name in path for name in NO_WEIGHT_DECAY_NAMES + extra_names)


def exclude_from_weight_decay_mae(optimizer, variables, extra_names=()):
    """Excludes biases, norms, tokens and position embeddings from decay.

    Selects every variable with `ndim <= 1` and every variable whose path
    contains `position_embedding`, `pos_embed`, `cls_token`, `mask_token`
    (or one of `extra_names`), and registers them with
    `optimizer.exclude_from_weight_decay(var_list=...)`.

    Keras' `exclude_from_weight_decay` replaces any earlier exclusion list
    of the optimizer rather than adding to it, and it must run before the
    optimizer is built (i.e. before the first `apply` / `fit` step).

    Args:
        optimizer: A `keras.optimizers.Optimizer` with weight decay
            (e.g. `keras.optimizers.AdamW`, `LayerDecayAdamW`, `LARS`).
        variables: Iterable of `keras.Variable`, normally
            `model.trainable_variables`.
        extra_names: Optional tuple of further path substrings to exclude.

    Returns:
        List of the paths of the excluded variables, in input order.

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> outputs = keras.layers.Dense(2, name="head")(inputs)
    >>> model = keras.Model(inputs, outputs)
    >>> optimizer = keras.optimizers.AdamW(weight_decay=0.05)
    >>> exclude_from_weight_decay_mae(optimizer, model.trainable_variables)
    ['head/bias']

    References:
        Official MAE implementation (facebookresearch/mae),
        `util/lr_decay.py` and `main_pretrain.py` parameter groups.
    """
    if getattr(optimizer, "built", False):
        raise ValueError(
            "`exclude_from_weight_decay_mae` must be called before the "
            f"optimizer is built. Received an already built optimizer: "
            f"{optimizer!r}"
        )
    if isinstance(extra_names, str):
        extra_names = (extra_names,)
    extra_names = tuple(extra_names)
    variables = list(variables)
    if not variables:
        raise ValueError(
            "exclude_from_weight_decay_mae received no variables: build the model first "
            "(`model.build()`), then pass `model.trainable_variables`."
        )
    excluded = [v for v in variables if _is_excluded(v, extra_names)]
    optimizer.exclude_from_weight_decay(var_list=excluded)
    return [getattr(v, "path", None) or v.name for v in excluded]
