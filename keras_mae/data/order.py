"""Epoch order: which record each input worker reads at each step.

For a source that can be read by index (arrays, `.npz` files, digits, image
folders) every epoch visits each record exactly once, in a full permutation of
all records drawn from `(seed, salt, epoch)`, as the official code's
`DistributedSampler(shuffle=True)` with `set_epoch`. The permutation is never
materialised: `tf.random.experimental.index_shuffle` maps a position to its
record, so the cost is a few integers per image whatever the dataset's size,
and a run can start at any step of an epoch without reading what it skips.

With `num_shards` input workers, the global batch of step `s` holds positions
`s * B ... s * B + B - 1` of the permutation, and worker `w` reads the slice
`w * B / num_shards ...` of it: each worker reads only its own records, and the
images of a global batch do not depend on the number of workers. Each image's
augmentation seed is drawn from its position too, so its crops do not either.
"""

import tensorflow as tf

# Positions are mapped to records this many at a time (one op per block, not per image).
_BLOCK = 4096


def check_sharding(batch_size, num_shards, shard_index, drop_remainder):
    """Raises `ValueError` unless `shard_index` of `num_shards` can split `batch_size` evenly.

    Args:
        batch_size: int, the global batch.
        num_shards: int >= 1, the input workers.
        shard_index: int in `[0, num_shards)`, this worker.
        drop_remainder: bool; sharded pipelines must drop a last partial batch.

    Example:
    ```python
    from keras_mae.data.order import check_sharding
    check_sharding(batch_size=64, num_shards=2, shard_index=1, drop_remainder=True)
    ```
    """
    for name, value in (("num_shards", num_shards), ("shard_index", shard_index)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int. Received: {name}={value!r}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError("shard_index must lie in [0, num_shards). Received: "
                         f"num_shards={num_shards}, shard_index={shard_index}")
    if batch_size % num_shards:
        raise ValueError(f"batch_size (the global batch) must be divisible by num_shards. "
                         f"Received: batch_size={batch_size}, num_shards={num_shards}")
    if num_shards > 1 and not drop_remainder:
        raise ValueError("sharded pipelines drop the last partial batch (every worker takes "
                         "the same number of steps). Received: drop_remainder=False, "
                         f"num_shards={num_shards}")


def steps_per_epoch(num_examples, batch_size, drop_remainder):
    """Global batches in one epoch of `num_examples` records.

    Args:
        num_examples: int, the records.
        batch_size: int, the global batch.
        drop_remainder: bool, whether a last partial batch is left out.

    Returns:
        int.

    Example:
    ```python
    from keras_mae.data.order import steps_per_epoch
    steps_per_epoch(10, 4, drop_remainder=True)   # 2
    steps_per_epoch(10, 4, drop_remainder=False)  # 3
    ```
    """
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def epoch_key(seed, salt, epoch):
    """The `(2,)` int64 key of one epoch's permutation and augmentation seeds.

    Args:
        seed: int, the pipeline's seed.
        salt: int64 scalar (tensor), one draw per pass when passes reshuffle,
            else 0.
        epoch: int or int64 scalar tensor.

    Returns:
        `(2,)` int64 tensor.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.order import epoch_key
    epoch_key(0, tf.constant(7, tf.int64), 3).shape  # (2,)
    ```
    """
    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(salt, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))


def epoch_records(num_examples, batch_size, key, shuffle=True, drop_remainder=True,
                  num_shards=1, shard_index=0, start_step=0):
    """One epoch of `(record index, augmentation seed)` for one input worker, in reading order.

    Args:
        num_examples: N, the number of records.
        batch_size: the global batch B (a multiple of `num_shards`).
        key: `(2,)` int64 tensor from `epoch_key`.
        shuffle: a full permutation (True) or the records in order (False).
        drop_remainder: leave out the positions of a last partial batch.
        num_shards, shard_index: this worker's share of every global batch.
        start_step: the first global step to read (earlier positions are
            skipped without reading them); may be a scalar tensor.

    Returns:
        `tf.data.Dataset` of `(int64 index, (2,) int64 seed)`.

    Example:
    ```python
    from keras_mae.data.order import epoch_key, epoch_records
    key = epoch_key(0, 0, 0)
    [int(i) for i, _ in epoch_records(6, 2, key)]   # a permutation of 0..5
    ```
    """
    per_shard = batch_size // num_shards
    steps = steps_per_epoch(num_examples, batch_size, drop_remainder)
    end = num_examples if (num_shards == 1 and not drop_remainder) else steps * per_shard
    start = tf.cast(start_step, tf.int64) * per_shard
    max_index = tf.constant(num_examples - 1, tf.int64)

    def to_records(k):
        position = (k // per_shard) * batch_size + shard_index * per_shard + k % per_shard
        index = (tf.random.experimental.index_shuffle(position, key, max_index)
                 if shuffle else position)
        seeds = tf.stack([tf.bitwise.bitwise_xor(position, key[1]),
                          tf.broadcast_to(key[0], tf.shape(position))], axis=-1)
        return index, seeds

    blocks = tf.data.Dataset.range(start, end).batch(_BLOCK)
    return blocks.map(to_records).unbatch()
