"""AdamW with the update rule of `torch.optim.AdamW`, the optimizer of the official MAE code.

`keras.optimizers.AdamW` and `torch.optim.AdamW` differ in where epsilon
enters. With `m`, `v` the moment estimates at step `t`, `b1 = 1 - beta_1**t`
and `b2 = 1 - beta_2**t`:

- torch:  `p -= lr / b1 * m / (sqrt(v) / sqrt(b2) + eps)`
- Keras:  `p -= lr * sqrt(b2) / b1 * m / (sqrt(v) + eps)`

so Keras' epsilon acts as `eps / sqrt(b2)` in torch's terms, a different
value at every step (with `beta_2 = 0.95`, `eps / sqrt(0.05)` at step 1).
Torch's default epsilon is also 1e-8, Keras' 1e-7. Both apply the decoupled
weight decay first, as `p -= lr * weight_decay * p`.

The difference matters where `sqrt(v)` is small.
`tests/test_official_engine.py` checks this class against a numpy
transcription of torch's update, and that Keras' AdamW differs from it.

References:
    - Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    - PyTorch's `torch.optim.AdamW` documentation (algorithm box), used by
      facebookresearch/mae `main_pretrain.py` and `main_finetune.py`.
"""

import keras
from keras import ops

from keras_mae import keras_internals


@keras.saving.register_keras_serializable(package="keras_mae")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with torch's epsilon placement and default (1e-8).

    For each variable `p` with gradient `g`, at step `t` (1-based):
    `p -= lr * weight_decay * p` (skipped for excluded variables), then
    `m = beta_1 * m + (1 - beta_1) * g`, `v = beta_2 * v + (1 - beta_2) * g**2`,
    `p -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)`.

    Args:
        learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: float, decoupled decay. Defaults to 0.01 (torch's default).
        beta_1: float. Defaults to 0.9.
        beta_2: float. Defaults to 0.999.
        epsilon: float added to the bias-corrected `sqrt(v)`. Defaults to 1e-8.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipnorm`,
            `gradient_accumulation_steps`, `name`, ...). `amsgrad` is not supported.

    Example:
    ```python
    import keras
    from keras_mae.optimizers import AdamW
    import numpy as np
    p = keras.Variable(np.ones((2, 2), "float32"))
    opt = AdamW(learning_rate=0.1, weight_decay=0.0)
    opt.apply([np.full((2, 2), 0.5, "float32")], [p])
    # step 1: m/b1 = g, sqrt(v)/sqrt(b2) = |g|, so p moves by lr * g / (|g| + eps)
    round(float(keras.ops.convert_to_numpy(p)[0, 0]), 6)  # 0.9
    ```
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, amsgrad=False, name="adamw", **kwargs):
        if amsgrad:
            raise ValueError("keras_mae.optimizers.AdamW does not implement amsgrad. "
                             f"Received: amsgrad={amsgrad!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon!r}")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, amsgrad=False, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        m, v = keras_internals.adam_moments(self, variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction_2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction_1), denominator))
