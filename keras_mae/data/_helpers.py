"""Seed splitting and argument checks shared by the augmentations and pipelines.

Every augmentation of :mod:`keras_mae.data.randaugment`,
:mod:`keras_mae.data.erasing` and :mod:`keras_mae.data.mixing` is stateless:
it takes an int seed of shape ``(2,)`` and derives the seeds of its separate
draws with :func:`split_seed`, so the same seed always gives the same output.
"""

import tensorflow as tf


def split_seed(seed, n):
    """``n`` independent ``(2,)`` int64 seeds derived from one.

    Args:
        seed: int tensor of shape ``(2,)``.
        n: int >= 1.

    Returns:
        list of ``n`` int64 tensors of shape ``(2,)``.

    Example:
        >>> a, b = split_seed(tf.constant([0, 1]), 2)
        >>> a.shape
        TensorShape([2])
    """
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n))


def check_probability(name, value):
    """Raises ``ValueError`` unless ``value`` is a (non-bool) number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
