"""Optimizers, learning-rate schedules and parameter-group helpers for MAE.

References:
    He et al., "Masked Autoencoders Are Scalable Vision Learners",
    CVPR 2022 (arXiv:2111.06377); official implementation
    facebookresearch/mae.
"""

from keras_mae.optimizers.adamw import AdamW
from keras_mae.optimizers.lars import LARS
from keras_mae.optimizers.layer_decay import EMBEDDING_NAMES
from keras_mae.optimizers.layer_decay import LayerDecayAdamW
from keras_mae.optimizers.layer_decay import layer_decay_multipliers
from keras_mae.optimizers.layer_decay import layer_id_for_variable
from keras_mae.optimizers.official import finetuning_adamw
from keras_mae.optimizers.official import pretraining_adamw
from keras_mae.optimizers.schedules import WarmupCosineDecay
from keras_mae.optimizers.schedules import scaled_learning_rate
from keras_mae.optimizers.weight_decay import NO_WEIGHT_DECAY_NAMES
from keras_mae.optimizers.weight_decay import decays
from keras_mae.optimizers.weight_decay import exclude_from_weight_decay_mae

__all__ = [
    "AdamW",
    "EMBEDDING_NAMES",
    "LARS",
    "LayerDecayAdamW",
    "NO_WEIGHT_DECAY_NAMES",
    "WarmupCosineDecay",
    "decays",
    "exclude_from_weight_decay_mae",
    "finetuning_adamw",
    "layer_decay_multipliers",
    "layer_id_for_variable",
    "pretraining_adamw",
    "scaled_learning_rate",
]
