"""Seed splitting and argument checks shared by the augmentations and pipelines.

Every augmentation of `keras_mae.data.randaugment`,
`keras_mae.data.erasing` and `keras_mae.data.mixing` is stateless:
it takes an int seed of shape `(2,)` and derives the seeds of its separate
draws with `split_seed`, so the same seed always gives the same output.
"""

import tensorflow as tf


def split_seed(seed, n):
    """`n` independent `(2,)` int64 seeds derived from one.

    Args:
        seed: int tensor of shape `(2,)`.
        n: int >= 1.

    Returns:
        list of `n` int64 tensors of shape `(2,)`.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data._helpers import split_seed
    a, b = split_seed(tf.constant([0, 1]), 2)
    a.shape  # TensorShape([2])
    ```
    """
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n))


def check_probability(name, value):
    """Raises `ValueError` unless `value` is a (non-bool) number in [0, 1].

    Args:
        name: str, the argument's name, for the message.
        value: the argument.

    Example:
    ```python
    from keras_mae.data._helpers import check_probability
    check_probability("prob", 0.25)
    ```
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
