"""Random draws for a layer's share of the global batch under `tf.distribute`."""

import keras
from keras import ops


def tf_replicas():
    """`(replica id, number of replicas)` in a multi-replica `tf.distribute` replica context, else None.

    TensorFlow is imported only on the TensorFlow backend, so the layers keep
    working where TensorFlow is not installed.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None in a cross-replica context
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def batch_uniform(shape, seed_generator, dtype="float32"):
    """`keras.random.uniform(shape)` for this replica's samples, `shape[0]` being its batch.

    Under a `tf.distribute` strategy every replica holds the same generator
    state; with `R` replicas each draws `(R, *shape)` and keeps slice `r`, so
    the replicas draw different samples, and together the values one device
    draws for the global batch. On one replica (and on JAX, which draws the
    global batch at once) this is `keras.random.uniform(shape)`.

    Args:
        shape: tuple, the local batch first.
        seed_generator: a `keras.random.SeedGenerator`.
        dtype: the values' dtype.

    Returns:
        A `shape` tensor of uniform values in [0, 1).

    Example:
    ```python
    import keras
    from keras_mae.layers.replica_random import batch_uniform
    batch_uniform((4, 16), keras.random.SeedGenerator(0))  # (4, 16)
    ```
    """
    replicas = tf_replicas()
    if replicas is None:
        return keras.random.uniform(shape, seed=seed_generator, dtype=dtype)
    index, count = replicas
    draw = keras.random.uniform((count,) + tuple(shape), seed=seed_generator, dtype=dtype)
    return ops.take(draw, index, axis=0)
