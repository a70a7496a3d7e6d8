"""Layer-wise learning-rate decay for fine-tuning a ViT encoder.

Earlier layers get smaller learning rates: with `L` encoder blocks, a
variable at depth `layer_id` (0 for embeddings, `i + 1` for
`encoder_block_{i}`, `L + 1` for everything after the encoder) is trained
with `learning_rate * decay ** (L + 1 - layer_id)`.

References:
    - He et al., "Masked Autoencoders Are Scalable Vision Learners",
      CVPR 2022 (arXiv:2111.06377), Appendix A.2 (layer-wise lr decay 0.75).
    - Bao et al., "BEiT: BERT Pre-Training of Image Transformers", 2021.
    - The official MAE reference implementation (facebookresearch/mae),
      `util/lr_decay.py` (`param_groups_lrd`, `get_layer_id_for_vit`).
"""

import math
import numbers
import re

import keras
from keras import ops

from keras_mae import keras_internals
from keras_mae.optimizers.adamw import AdamW

EMBEDDING_NAMES = (
    "patch_embedding",
    "cls_token",
    "position_embedding",
    "pos_embed",
)
"""Substrings marking a variable as part of the embedding layer (layer 0)."""

_BLOCK_PATTERN = re.compile(r"(?<![A-Za-z0-9])encoder_block_(\d+)(?![0-9])")


def _check_num_layers(num_layers):
    if (
        isinstance(num_layers, bool)
        or not isinstance(num_layers, numbers.Integral)
        or num_layers < 1
    ):
        raise ValueError(
            "`num_layers` must be a positive integer. "
            f"Received: num_layers={num_layers!r}"
        )


def _check_decay(decay):
    if (
        isinstance(decay, bool)
        or not isinstance(decay, numbers.Real)
        or not math.isfinite(decay)
        or not 0 < decay <= 1
    ):
        raise ValueError(
            f"`layer_decay` must be in (0, 1]. Received: layer_decay={decay!r}"
        )


def _path_of(variable):
    if isinstance(variable, str):
        return variable
    return getattr(variable, "path", None) or variable.name


def layer_id_for_variable(path, num_layers):
    """Returns the layer index of a variable for layer-wise lr decay.

    Args:
        path: String, the variable path (`keras.Variable.path`), e.g.
            `"vit/encoder_block_3/mlp/dense_1/kernel"`.
        num_layers: Int, number of encoder blocks `L`.

    Returns:
        Int in `[0, num_layers + 1]`: `0` if the path contains one of
        `patch_embedding`, `cls_token`, `position_embedding`, `pos_embed`;
        `i + 1` if it lies under `encoder_block_{i}`; `num_layers + 1`
        otherwise (final norm, head, ...).

    Example:

    ```python
    from keras_mae.optimizers.layer_decay import layer_id_for_variable
    layer_id_for_variable("vit/patch_embedding/kernel", 12)  # 0
    layer_id_for_variable("vit/encoder_block_3/attn/query/kernel", 12)  # 4
    layer_id_for_variable("head/kernel", 12)  # 13
    ```
    """
    _check_num_layers(num_layers)
    if any(name in path for name in EMBEDDING_NAMES):
        return 0
    match = _BLOCK_PATTERN.search(path)
    if match is None:
        return num_layers + 1
    block = int(match.group(1))
    if block >= num_layers:
        raise ValueError(
            f"Variable path {path!r} refers to encoder block {block}, but "
            f"num_layers={num_layers} (valid blocks: 0..{num_layers - 1})."
        )
    return block + 1


def layer_decay_multipliers(variables, num_layers, decay=0.75):
    """Computes the learning-rate multiplier of every variable.

    Args:
        variables: Iterable of `keras.Variable` (or of path strings), e.g.
            `model.trainable_variables`.
        num_layers: Int, number of encoder blocks `L`.
        decay: Float in `(0, 1]`, the per-layer decay. Defaults to `0.75`
            (MAE ViT-B fine-tuning; 0.65 for ViT-L, 0.75 for ViT-H).

    Returns:
        Dict mapping each variable path to
        `decay ** (num_layers + 1 - layer_id_for_variable(path, num_layers))`.

    Example:

    ```python
    from keras_mae.optimizers.layer_decay import layer_decay_multipliers
    multipliers = layer_decay_multipliers(
        ["patch_embedding/kernel", "encoder_block_1/kernel", "head/kernel"],
        num_layers=2, decay=0.5)
    multipliers["patch_embedding/kernel"], multipliers["head/kernel"]  # (0.125, 1.0)
    multipliers["encoder_block_1/kernel"]  # 0.5
    ```
    """
    _check_num_layers(num_layers)
    _check_decay(decay)
    multipliers = {}
    for variable in variables:
        path = _path_of(variable)
        layer_id = layer_id_for_variable(path, num_layers)
        multipliers[path] = float(decay) ** (num_layers + 1 - layer_id)
    return multipliers


@keras.saving.register_keras_serializable(package="keras_mae")
class LayerDecayAdamW(AdamW):
    """AdamW with layer-wise learning-rate decay.

    Every variable `p` is updated by AdamW with the learning rate
    `learning_rate * m(p)`, where `m(p)` comes from
    `layer_decay_multipliers(..., num_layers, layer_decay)` evaluated on the
    variable paths when the optimizer is built. As in the official MAE
    recipe (PyTorch AdamW with per-group `lr_scale`), the decoupled weight
    decay also uses the scaled rate: `p -= p * weight_decay * lr * m(p)`.

    The multipliers are applied inside `update_step`. On the torch backend
    Keras replaces the exact built-in `AdamW` class by a fused
    implementation that bypasses `update_step`; subclasses such as this one
    are not replaced, so the per-variable scaling holds on every backend.

    Args:
        learning_rate: Float or `keras.optimizers.schedules.LearningRateSchedule`,
            the rate of the last layers (multiplier 1). Defaults to `0.001`.
        num_layers: Int, number of encoder blocks `L` (12 for ViT-B).
        layer_decay: Float in `(0, 1]`. Defaults to `0.75`.
        **kwargs: Forwarded to `keras_mae.optimizers.AdamW` (torch's update
            and epsilon 1e-8; `weight_decay`,
            `beta_1`, `beta_2`, `epsilon`, `clipnorm`, ...). The MAE
            fine-tuning recipe uses `weight_decay=0.05`, `beta_2=0.999`,
            `epsilon=1e-8`.

    Example:

    ```python
    import keras
    from keras_mae.optimizers import LayerDecayAdamW
    import numpy as np
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="patch_embedding")(inputs)
    x = keras.layers.Dense(4, name="encoder_block_0")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    optimizer = LayerDecayAdamW(1e-3, num_layers=1, layer_decay=0.5,
                                weight_decay=0.05)
    model.compile(optimizer=optimizer, loss="mse")
    _ = model.fit(np.ones((8, 4)), np.zeros((8, 2)), verbose=0)
    optimizer.learning_rate_multipliers["patch_embedding/kernel"]  # 0.25
    ```

    References:
        - He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021.
        - Official MAE implementation (facebookresearch/mae),
          `util/lr_decay.py`.
    """

    def __init__(self, learning_rate=0.001, *, num_layers, layer_decay=0.75, **kwargs):
        _check_num_layers(num_layers)
        _check_decay(layer_decay)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.num_layers = num_layers
        self.layer_decay = layer_decay
        self._multipliers = []
        self._paths = []

    @property
    def learning_rate_multipliers(self):
        """Dict of variable path to multiplier (empty until built)."""
        return dict(zip(self._paths, self._multipliers, strict=True))

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        multipliers = layer_decay_multipliers(
            variables, self.num_layers, self.layer_decay
        )
        self._paths = [_path_of(v) for v in variables]
        self._multipliers = [multipliers[path] for path in self._paths]

    def _apply_weight_decay(self, variables):
        # Decoupled decay is applied per variable in `update_step`, with
        # the variable's scaled learning rate.
        return

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multipliers[keras_internals.variable_index(self, variable)]
        lr = ops.multiply(ops.cast(learning_rate, variable.dtype), multiplier)
        if self.weight_decay is not None and keras_internals.uses_weight_decay(self, variable):
            decay = ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, ops.multiply(variable, decay * lr))
        super().update_step(gradient, variable, lr)

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "layer_decay": self.layer_decay})
        return config
