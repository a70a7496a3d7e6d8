"""A `Dense` layer applied to token sequences as one 2-D matrix product."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mae")
class TokenDense(keras.layers.Dense):
    """`keras.layers.Dense` on `(..., N, D)` tokens, computed as one `(B * N, D)` product.

    The weights, their names and the outputs are `Dense`'s. Only the product
    changes shape: leading axes are folded into one before the kernel is
    applied and unfolded after, so the kernel's gradient is a plain 2-D
    product. On JAX's XLA:CPU that gradient is much faster than the one of
    `einsum("bnd,de->bne")`; `benchmarks/train_throughput.py` times the step.

    Args and call arguments: as `keras.layers.Dense`; inputs of rank 2 pass
    through `Dense.call` unchanged.

    Example:
    ```python
    import numpy as np
    from keras_mae.layers import TokenDense
    TokenDense(8)(np.zeros((2, 5, 4), "float32")).shape  # (2, 5, 8)
    ```
    """

    def call(self, inputs, training=None):
        if len(inputs.shape) <= 2:
            return super().call(inputs, training=training)
        inner = tuple(inputs.shape[1:-1])
        if all(isinstance(d, int) and d > 0 for d in inner):
            # Only the batch may be symbolic: -1 keeps ONNX export (jax2onnx) able to
            # map it back to the input's batch axis.
            leading = (-1, *inner)
        else:
            leading = ops.shape(inputs)[:-1]
        flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
        outputs = super().call(flat, training=training)
        return ops.reshape(outputs, (*leading, outputs.shape[-1]))
