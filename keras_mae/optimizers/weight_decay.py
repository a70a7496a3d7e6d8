"""The variables that MAE trains without weight decay, as the official parameter groups.

Two rules, one per stage of the official code:

- `"pretrain"`: timm's `add_weight_decay(model, weight_decay)` (timm 0.3.2,
  called by facebookresearch/mae `main_pretrain.py`): a trainable parameter
  is *not* decayed when it has `ndim <= 1` or its name ends in `.bias`.
  Everything else is decayed, including the `(1, 1, D)` `cls_token` and
  `mask_token`; the sin-cos position tables are frozen, so no rule applies.
- `"finetune"`: `param_groups_lrd` of `util/lr_decay.py` (called by
  `main_finetune.py`): not decayed when `ndim == 1` or the name is in the
  ViT's `no_weight_decay()` set, `pos_embed` and `cls_token`.

The linear probe needs neither: its LARS (`util/lars.py`) skips decay and
the trust ratio for every `ndim <= 1` parameter by itself.

The pretraining recipe follows the official rule. To leave the tokens
undecayed instead (as newer timm models list them in `no_weight_decay()`),
pass `extra_names=("cls_token", "mask_token")`.
"""

NO_WEIGHT_DECAY_NAMES = (
    "position_embedding",
    "pos_embed",
    "cls_token",
)
"""Path substrings the fine-tuning rule excludes from weight decay (with every `ndim <= 1` variable)."""

GROUPS = ("pretrain", "finetune")


def _path(variable):
    return getattr(variable, "path", None) or variable.name


def decays(variable, groups, extra_names=()):
    """Whether the official `groups` rule (`"pretrain"` or `"finetune"`) decays `variable`.

    Example:

    ```python
    from keras_mae.optimizers.weight_decay import decays
    import keras
    token = keras.Variable(keras.ops.zeros((1, 1, 4)), name="cls_token")
    decays(token, "pretrain"), decays(token, "finetune")  # (True, False)
    ```
    """
    if groups not in GROUPS:
        raise ValueError(f"`groups` must be one of {GROUPS}. Received: groups={groups!r}")
    path = _path(variable)
    if len(variable.shape) <= 1 or any(name in path for name in extra_names):
        return False
    if groups == "pretrain":
        return not path.endswith("bias")
    return not any(name in path for name in NO_WEIGHT_DECAY_NAMES)


def exclude_from_weight_decay_mae(optimizer, variables, groups, extra_names=()):
    """Registers the variables the official `groups` rule leaves undecayed.

    `groups="pretrain"` is timm's `add_weight_decay` (MAE pretraining: only
    `ndim <= 1` variables and biases are excluded, the class and mask tokens
    are decayed); `groups="finetune"` is `param_groups_lrd` (`ndim <= 1`
    variables, position embeddings and the class token are excluded). Paths
    containing one of `extra_names` are excluded as well.

    The exclusion goes through `optimizer.exclude_from_weight_decay(var_list=...)`,
    which replaces any earlier exclusion list, and must run before the
    optimizer is built (before the first `apply` or `fit` step).

    Args:
        optimizer: A `keras.optimizers.Optimizer` with weight decay
            (`keras_mae.optimizers.AdamW`, `LayerDecayAdamW`, `LARS`, ...).
        variables: Iterable of `keras.Variable`, normally
            `model.trainable_variables`.
        groups: `"pretrain"` or `"finetune"`.
        extra_names: Optional tuple of further path substrings to exclude.

    Returns:
        List of the paths of the excluded variables, in input order.

    Example:

    ```python
    from keras_mae.optimizers import exclude_from_weight_decay_mae
    import keras
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="head")(inputs)
    model = keras.Model(inputs, outputs)
    optimizer = keras.optimizers.AdamW(weight_decay=0.05)
    exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "pretrain")  # ['head/bias']
    ```
    """
    if getattr(optimizer, "built", False):
        raise ValueError(
            "`exclude_from_weight_decay_mae` must be called before the "
            f"optimizer is built. Received an already built optimizer: {optimizer!r}")
    if isinstance(extra_names, str):
        extra_names = (extra_names,)
    extra_names = tuple(extra_names)
    variables = list(variables)
    if not variables:
        raise ValueError(
            "exclude_from_weight_decay_mae received no variables: build the model first "
            "(`model.build()`), then pass `model.trainable_variables`.")
    excluded = [v for v in variables if not decays(v, groups, extra_names)]
    optimizer.exclude_from_weight_decay(var_list=excluded)
    return [_path(v) for v in excluded]
