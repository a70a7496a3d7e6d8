"""LARS optimizer as used for MAE linear probing.

References:
    - You et al., "Large Batch Training of Convolutional Networks",
      2017 (arXiv:1708.03888).
    - He et al., "Masked Autoencoders Are Scalable Vision Learners",
      CVPR 2022 (arXiv:2111.06377), Appendix A.3 (linear probing).
    - The official MAE reference implementation (facebookresearch/mae),
      `util/lars.py`.
"""

import math
import numbers

import keras
from keras import ops

from keras_mae import keras_internals


def _check_non_negative(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="keras_mae")
class LARS(keras.optimizers.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (LARS).

    Follows the LARS variant of the official MAE code. For every variable
    `p` with gradient `g`:

    - if `p.ndim > 1` (kernels, embeddings):
      `g = g + weight_decay * p`, then
      `q = trust_coefficient * ||p|| / ||g||` when both norms are positive
      and `q = 1` otherwise, and `g = q * g`;
    - if `p.ndim <= 1` (biases, normalization scales and offsets): `g` is
      used unchanged, without weight decay or trust-ratio scaling;
    - `mu = momentum * mu + g` and `p = p - learning_rate * mu`.

    Weight decay here is the *coupled* (L2-style) decay of the reference
    LARS, added to the gradient before the trust ratio. Keras' base
    optimizer would otherwise also apply its own *decoupled* decay from the
    same `weight_decay` argument; this class disables that mechanism so the
    decay is applied exactly once. Variables passed to
    `optimizer.exclude_from_weight_decay()` (see
    `keras_mae.optimizers.exclude_from_weight_decay_mae`) skip the decay
    term but keep the trust-ratio scaling.

    Args:
        learning_rate: Float or `keras.optimizers.schedules.LearningRateSchedule`.
            Defaults to `0.1`.
        momentum: Float >= 0, the momentum coefficient. Defaults to `0.9`.
        trust_coefficient: Float >= 0, the LARS trust coefficient.
            Defaults to `0.001`.
        weight_decay: Float >= 0, coupled weight decay for variables with
            `ndim > 1`. Defaults to `0.0` (as in MAE linear probing).
        **kwargs: Other base optimizer arguments (`clipnorm`, `use_ema`,
            `gradient_accumulation_steps`, `name`, ...).

    Example:

    ```python
    import keras
    from keras_mae.optimizers import LARS
    import numpy as np
    kernel = keras.Variable(np.ones((2, 2), "float32"))
    bias = keras.Variable(np.ones((2,), "float32"))
    optimizer = LARS(learning_rate=0.1)
    optimizer.apply([np.ones((2, 2), "float32"), np.ones((2,), "float32")],
                    [kernel, bias])
    # Kernel: trust ratio 0.001 * 2 / 2, so a step of 0.1 * 0.001.
    round(float(keras.ops.convert_to_numpy(kernel)[0, 0]), 6)  # 0.9999
    round(float(keras.ops.convert_to_numpy(bias)[0]), 6)  # 0.9
    ```

    References:
        - You et al., "Large Batch Training of Convolutional Networks", 2017.
        - Official MAE implementation (facebookresearch/mae), `util/lars.py`.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        trust_coefficient=0.001,
        weight_decay=0.0,
        name="lars",
        **kwargs,
    ):
        if weight_decay is None:
            weight_decay = 0.0
        _check_non_negative("momentum", momentum)
        _check_non_negative("trust_coefficient", trust_coefficient)
        _check_non_negative("weight_decay", weight_decay)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.momentum = momentum
        self.trust_coefficient = trust_coefficient

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = [
            self.add_variable_from_reference(variable, name="momentum")
            for variable in variables
        ]

    def _apply_weight_decay(self, variables):
        # The coupled decay is applied inside `update_step`; the base class'
        # decoupled decay must not run as well.
        return

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        grad = ops.cast(gradient, dtype)
        if len(variable.shape) > 1:
            if self.weight_decay and keras_internals.uses_weight_decay(self, variable):
                grad = ops.add(grad, ops.multiply(variable, self.weight_decay))
            param_norm = ops.sqrt(ops.sum(ops.square(variable)))
            grad_norm = ops.sqrt(ops.sum(ops.square(grad)))
            safe_grad_norm = ops.where(grad_norm > 0, grad_norm, 1.0)
            ratio = ops.where(
                param_norm > 0,
                ops.where(
                    grad_norm > 0,
                    self.trust_coefficient * param_norm / safe_grad_norm,
                    1.0,
                ),
                1.0,
            )
            grad = ops.multiply(grad, ops.cast(ratio, dtype))
        momentum = self._momentums[keras_internals.variable_index(self, variable)]
        new_momentum = ops.add(ops.multiply(momentum, self.momentum), grad)
        self.assign(momentum, new_momentum)
        self.assign_sub(variable, ops.multiply(lr, new_momentum))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
            }
        )
        return config
