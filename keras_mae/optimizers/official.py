"""The official optimizers of MAE pretraining and fine-tuning, built for a model in one call.

`pretraining_adamw(model)` is `main_pretrain.py`'s optimizer: `torch.optim.AdamW`
(`keras_mae.optimizers.AdamW`, epsilon 1e-8) with betas (0.9, 0.95), weight
decay 0.05 and timm's `add_weight_decay` groups. `finetuning_adamw(model)` is
`main_finetune.py`'s: AdamW (0.9, 0.999) with weight decay 0.05 and layer-wise
lr decay 0.75 over `param_groups_lrd`'s groups. They are what
`MaskedAutoencoder.compile()` and `ViTClassifier.compile()` use when no
optimizer is given.

The learning rate is a number or a schedule; by default the official base rate
for a batch of 256 (1.5e-4 pretraining, 1e-3 fine-tuning), constant. The
recipes add the paper's scaling (`scaled_learning_rate`) and the warmup +
cosine schedule (`WarmupCosineDecay`); pass them here for the same training.

Example:
```python
import keras_mae
from keras_mae.optimizers import WarmupCosineDecay, pretraining_adamw, scaled_learning_rate
model = keras_mae.models.mae_vit_tiny_patch4()
peak = scaled_learning_rate(1.5e-4, 64)     # base rate x batch / 256
model.compile(optimizer=pretraining_adamw(model, WarmupCosineDecay(peak, 1000, 100)))
```
"""

from keras_mae.optimizers.adamw import AdamW
from keras_mae.optimizers.layer_decay import LayerDecayAdamW
from keras_mae.optimizers.weight_decay import exclude_from_weight_decay_mae


def pretraining_adamw(model, learning_rate=1.5e-4, weight_decay=0.05, beta_1=0.9,
                      beta_2=0.95, **kwargs):
    """The official pretraining AdamW for a built `MaskedAutoencoder`.

    Args:
        model: the built model whose `trainable_variables` are grouped.
        learning_rate: float or schedule (default: the base rate, batch 256).
        weight_decay: the official value by default.
        beta_1: the official value by default.
        beta_2: the official value by default.
        **kwargs: other `keras_mae.optimizers.AdamW` arguments
            (`gradient_accumulation_steps`, ...).

    Returns:
        A `keras_mae.optimizers.AdamW` with biases and norms excluded from decay.
    """
    optimizer = AdamW(learning_rate, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
                      **kwargs)
    exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "pretrain")
    return optimizer


def finetuning_adamw(model, learning_rate=1e-3, weight_decay=0.05, layer_decay=0.75,
                     beta_1=0.9, beta_2=0.999, **kwargs):
    """The official fine-tuning AdamW with layer-wise lr decay for a built `ViTClassifier`.

    Args:
        model: the built classifier (its `encoder.depth` sets the layers).
        learning_rate: float or schedule (default: the base rate, batch 256).
        weight_decay: the official value by default.
        layer_decay: the official value by default.
        beta_1: the official value by default.
        beta_2: the official value by default.
        **kwargs: other `LayerDecayAdamW` arguments.

    Returns:
        A `keras_mae.optimizers.LayerDecayAdamW` with biases, norms, the class
        token and the position table excluded from decay (epsilon 1e-8).
    """
    optimizer = LayerDecayAdamW(learning_rate, num_layers=model.encoder.depth,
                                layer_decay=layer_decay, weight_decay=weight_decay,
                                beta_1=beta_1, beta_2=beta_2, epsilon=1e-8, **kwargs)
    exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "finetune")
    return optimizer
