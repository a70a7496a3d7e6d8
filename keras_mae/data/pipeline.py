"""Batched, augmented tf.data input pipelines for pretraining and evaluation.

Both pipelines are plain `tf.data` and work whatever the Keras backend is:
iterate them and feed numpy batches (`batch.numpy()` / `as_numpy_iterator`)
or the tensors directly to a TensorFlow-backend model.

Order: a source read by index (arrays, `.npz` files, digits, image folders)
is visited in a full permutation of all its records every epoch, drawn from
`seed` and the epoch (`keras_mae.data.order`); a stream is shuffled in a
buffer of `shuffle_buffer` records, after (for a TFDS split) reading its
files in a seeded order, 16 at a time, one record from each in turn. A buffer
mixes only records that lie close together in the stream: TFDS shuffles the
records of a split when it writes them, so its files are already in random
order; a stream sorted by class stays nearly sorted
(`benchmarks/stream_class_mix.py` measures both).
Determinism: the order and every per-example augmentation are derived from
`seed`; two pipelines built with the same arguments yield identical batches,
and iterating the same pipeline again (a new epoch) draws a new permutation and
new crops, reproducibly.

Many workers: with `num_shards` > 1 a pipeline yields worker
`shard_index`'s share of every global batch, and reads (and decodes) only
those records; the global batches are the same for any number of workers. A
TFDS split with at least `num_shards` files is split by files (each worker
reads its own files; the batches then depend on the number of workers); other
streams are read whole by every worker, which keeps its part of each batch.
"""

import numpy as np
import tensorflow as tf

from keras_mae.data import augment as _augment
from keras_mae.data import order
from keras_mae.data._helpers import split_seed
from keras_mae.data.sources import Source, crop_element, load_source


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")


def _check_common(image_size, batch_size, seed, shuffle_buffer, num_channels):
    _check_positive_int("image_size", image_size)
    _check_positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int. Received: seed={seed!r}")
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) \
            or shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be an int >= 0. "
                         f"Received: shuffle_buffer={shuffle_buffer!r}")
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3. Received: num_channels={num_channels!r}")


def _channel_converter(source, num_channels):
    """Returns a function converting uint8 images to num_channels channels."""
    channels = source.dataset.element_spec["images"].shape[-1]
    if channels == num_channels:
        return lambda image: image
    if channels == 1 and num_channels == 3:
        return tf.image.grayscale_to_rgb
    if channels == 3 and num_channels == 1:
        return tf.image.rgb_to_grayscale
    if channels == 4:
        # RGBA: drop alpha.
        return lambda image: _channel_converter_rgb(image[..., :3], num_channels)
    raise ValueError(f"cannot convert the images of source {source.name!r}, with {channels} "
                     f"channels, to num_channels. Received: num_channels={num_channels}")


def _channel_converter_rgb(image, num_channels):
    return image if num_channels == 3 else tf.image.rgb_to_grayscale(image)


def _prepare(source, batch_size, drop_remainder, repeat):
    """Loads the source and checks it can fill at least one batch."""
    source = load_source(source) if not isinstance(source, Source) else source
    # a source read by index never fills a batch across two epochs, even repeated
    if (drop_remainder and (not repeat or source.table is not None)
            and source.num_examples is not None and source.num_examples < batch_size):
        raise ValueError(f"batch_size={batch_size} exceeds the {source.num_examples} "
                         f"examples of {source.name!r}: with drop_remainder=True "
                         "the dataset would be empty")
    return source


def _check_position(epoch, start_step):
    for name, value in (("epoch", epoch), ("start_step", start_step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0. Received: {name}={value!r}")


def _build(source, batch_size, seed, shuffle_buffer, drop_remainder, repeat,
           transform, reshuffle=True, epoch=0, start_step=0, num_shards=1, shard_index=0):
    """Shared order -> read -> per-example seed -> map -> batch chain.

    `transform(read, example_seed)` receives a function `read(crop_box=None)`
    returning the decoded dict element (its image only the window
    `crop_box(shape)` when given: a large JPEG file then decodes only that
    window)
    and a (2,) int64 seed unique to this example and epoch. It is traced when
    `map` is called, so argument errors it raises surface immediately.

    A source read by index is visited in a full permutation per epoch
    (`keras_mae.data.order`); a stream is shuffled in a buffer of
    `shuffle_buffer` records. Batches hold `batch_size // num_shards`
    images: this worker's share of each global batch.
    """
    _check_position(epoch, start_step)
    order.check_sharding(batch_size, num_shards, shard_index, drop_remainder)
    if source.table is not None:
        ds = _indexed(source, batch_size, seed, shuffle_buffer > 1, drop_remainder, repeat,
                      transform, reshuffle, epoch, start_step, num_shards, shard_index)
    else:
        ds = _stream(source, batch_size, seed, shuffle_buffer, drop_remainder, repeat,
                     transform, reshuffle, epoch, start_step, num_shards, shard_index)
    options = tf.data.Options()
    # A global pipeline given to a multi-worker strategy directly is split by
    # tf.data (each worker decodes every image and keeps its share); a sharded
    # one is already this worker's share.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA if num_shards == 1
        else tf.data.experimental.AutoShardPolicy.OFF)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _indexed(source, batch_size, seed, shuffle, drop_remainder, repeat, transform,
             reshuffle, epoch, start_step, num_shards, shard_index):
    steps = order.steps_per_epoch(source.num_examples, batch_size, drop_remainder)
    if start_step and start_step >= steps:
        raise ValueError(f"start_step must be below the {steps} steps of an epoch. "
                         f"Received: start_step={start_step}")
    first = tf.constant(epoch, tf.int64)

    def one_epoch(salt, e):
        key = order.epoch_key(seed, salt, e)
        return order.epoch_records(source.num_examples, batch_size, key, shuffle=shuffle,
                                   drop_remainder=drop_remainder, num_shards=num_shards,
                                   shard_index=shard_index,
                                   start_step=tf.where(e == first, start_step, 0))

    def epochs(salt):
        count = tf.data.Dataset.range(epoch, epoch + 1) if not repeat else \
            tf.data.Dataset.counter(epoch)
        return count.flat_map(lambda e: one_epoch(salt, e))

    # reshuffling: one draw per pass (a new pass is a new permutation; the draws follow
    # TensorFlow's global seed too); else every pass is the epoch's order, from
    # (seed, epoch) alone
    salt = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
            if reshuffle else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)))
    ds = salt.flat_map(epochs)
    ds = ds.map(lambda index, example_seed: transform(
        lambda crop_box=None: source.read(index, crop_box), example_seed),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size // num_shards, drop_remainder=drop_remainder,
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # a known length: Keras then needs no extra read to find the end of an epoch
    return ds if repeat else ds.apply(tf.data.experimental.assert_cardinality(steps - start_step))


def _stream(source, batch_size, seed, shuffle_buffer, drop_remainder, repeat, transform,
            reshuffle, epoch, start_step, num_shards, shard_index):
    """A source without random access: a shuffle buffer after a seeded file order (TFDS).

    Every shard reads the whole stream and keeps its part of each batch, unless
    the source's files can be split among the shards.
    """
    seed = seed if epoch == 0 else (seed * 1_000_003 + epoch) % 2**63
    ds, sharded = source.dataset, False
    if shuffle_buffer > 1 and source.reader is not None:
        ds, sharded = source.reader(seed, reshuffle, num_shards, shard_index)
    if shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
    if repeat:
        ds = ds.repeat()
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle)
    ds = tf.data.Dataset.zip(ds, randoms)

    def apply(element, random):
        example_seed = tf.stack([random, tf.constant(seed, tf.int64)])
        return transform(lambda crop_box=None: crop_element(element, crop_box), example_seed)

    ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size // num_shards if sharded else batch_size,
                  drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
    if start_step:
        ds = ds.skip(start_step)
    if num_shards > 1 and not sharded:
        per_shard = batch_size // num_shards
        part = slice(shard_index * per_shard, (shard_index + 1) * per_shard)
        ds = ds.map(lambda *batch: tf.nest.map_structure(lambda t: t[part], batch)
                    if len(batch) > 1 else batch[0][part])
    return ds


def check_extra_augment(extra_augment, training=True):
    """Raises `ValueError` unless `extra_augment` is None or a callable for a training pipeline.

    An extra augmentation is applied to each `(S, S, C)` float32 image on the
    0-255 scale after the random crop and flip, before normalisation: any
    Keras 3 augmentation layer (`keras.layers.RandomColorJitter(value_range=
    (0, 255), ...)`, `keras.layers.RandAugment`, ...), a keras-cv one
    (`keras_cv.layers.Grayscale(output_channels=3)`, ...) or a function.
    Keras layers run on TensorFlow inside `tf.data` whatever the backend. Its
    randomness is its own (the layer's `seed`), not derived from the
    pipeline's `seed`.

    Args:
        extra_augment: None, or a callable of one image.
        training: bool, whether the pipeline augments its images.

    Example:
    ```python
    import keras
    from keras_mae.data.pipeline import check_extra_augment
    check_extra_augment(keras.layers.RandomContrast(0.2, value_range=(0, 255)))
    ```
    """
    if extra_augment is None:
        return
    if not callable(extra_augment):
        raise ValueError(f"extra_augment must be a Keras layer or a callable. "
                         f"Received: extra_augment={extra_augment!r}")
    if not training:
        raise ValueError("extra_augment applies to augmented (training) pipelines only; "
                         f"augmentation is off. Received: extra_augment={extra_augment!r}")


def _train_transform(read, to_channels, image_size, example_seed, crop_scale, extra_augment,
                     flip=True):
    """Random resized crop, horizontal flip (unless `flip` is False), then `extra_augment`: the training images.

    Returns the element read and its image. The crop box is drawn from the
    image's shape before decoding, so a large JPEG decodes only the box
    (`image_files.WINDOW_DECODE_MIN_BYTES`); the result equals
    `augment.random_resized_crop` of the whole image.
    """
    crop_seed, flip_seed = split_seed(example_seed, 2)
    element = read(lambda shape: _augment.sample_crop_box(shape, crop_seed, scale=crop_scale))
    image = _augment.resize_crop(to_channels(element["images"]), image_size)
    if flip:
        image = _augment.random_flip_left_right(image, flip_seed)
    if extra_augment is None:
        return element, image
    out = tf.convert_to_tensor(extra_augment(image))
    return element, tf.ensure_shape(tf.cast(out, tf.float32), image.shape)


def pretrain_dataset(source, image_size, batch_size, seed=0, shuffle_buffer=10000,
                     drop_remainder=True, repeat=False, augment=True, num_channels=3,
                     crop_scale=(0.2, 1.0), mean=_augment.IMAGENET_MEAN,
                     std=_augment.IMAGENET_STD, reshuffle_each_iteration=True,
                     extra_augment=None, epoch=0, start_step=0, num_shards=1, shard_index=0):
    """Image-only batches for MAE pretraining.

    Each image is (with `augment=True`) randomly resized-cropped to
    (image_size, image_size) with area fraction in `crop_scale` (bicubic),
    randomly flipped, then normalised with `mean`/`std`. With
    `augment=False` the shorter side is resized to `image_size` and the
    centre kept. Labels are dropped.

    Args:
        source: a `Source` or anything `load_source` accepts
            (names are loaded with split "train").
        image_size: output side S, positive int.
        batch_size: batch size B, positive int.
        seed: int driving the shuffle order and the augmentations.
        shuffle_buffer: 0 or 1 disables shuffling; otherwise a source read by
            index is fully permuted each epoch and a stream is shuffled in a
            buffer of this many records.
        drop_remainder: drop a last partial batch.
        repeat: repeat forever (each pass the next epoch: a new permutation,
            new crops).
        augment: random crop + flip (True) or centre resize (False).
        num_channels: channels C of the output, 1 or 3 (grayscale sources are
            repeated to RGB, RGB converted to luminance, alpha dropped).
        crop_scale: (min, max) area fraction of the random crop.
        mean: per-channel normalisation mean on the 0-1 scale.
        std: per-channel normalisation std on the 0-1 scale.
        reshuffle_each_iteration: each new pass over the dataset draws a new
            order and new crops (True; the draws also follow TensorFlow's
            global seed, `keras.utils.set_random_seed`), or every pass is the
            order and crops of `(seed, epoch)` alone (False: for a dataset
            built per epoch, so that a pass that Keras starts only to peek at
            a batch cannot change the data of a resumed run, and every process
            of a cluster reads the same order).
        extra_augment: optional Keras or keras-cv augmentation layer (or any
            callable), see `check_extra_augment`.
        epoch: the epoch of the first pass, int >= 0 (its permutation and
            crops); the recipes build one pipeline per epoch.
        start_step: the global step of that epoch to start at (resuming);
            the records before it are skipped without being read.
        num_shards: number of input workers sharing each global batch.
        shard_index: this worker, in `[0, num_shards)`.

    Returns:
        `tf.data.Dataset` of float32 tensors (B / num_shards, S, S, C).

    Raises:
        ValueError: for an invalid argument or source.

    Example:
    ```python
    from keras_mae.data.pipeline import pretrain_dataset
    ds = pretrain_dataset("digits", image_size=16, batch_size=8)
    next(iter(ds)).shape  # TensorShape([8, 16, 16, 3])
    ```
    """
    _check_common(image_size, batch_size, seed, shuffle_buffer, num_channels)
    check_extra_augment(extra_augment, augment)
    source = _prepare(source, batch_size, drop_remainder, repeat)
    to_channels = _channel_converter(source, num_channels)

    def transform(read, example_seed):
        if augment:
            _, image = _train_transform(read, to_channels, image_size, example_seed, crop_scale,
                                        extra_augment)
        else:
            image = _augment.center_crop_resize(to_channels(read()["images"]), image_size,
                                                crop_pct=1.0)
        return _augment.normalize(image, mean, std)

    return _build(source, batch_size, seed, shuffle_buffer, drop_remainder,
                  repeat, transform, reshuffle=reshuffle_each_iteration, epoch=epoch,
                  start_step=start_step, num_shards=num_shards, shard_index=shard_index)


def _labeled_source(source, image_size, batch_size, seed, shuffle_buffer, num_channels,
                    drop_remainder, repeat):
    """The checked labelled source of a pipeline and its channel converter."""
    _check_common(image_size, batch_size, seed, shuffle_buffer, num_channels)
    source = _prepare(source, batch_size, drop_remainder, repeat)
    if not source.has_labels:
        raise ValueError(f"source {source.name!r} has no labels")
    return source, _channel_converter(source, num_channels)


def labeled_dataset(source, image_size, batch_size, training, seed=0,
                    shuffle_buffer=10000, drop_remainder=None, repeat=False,
                    num_channels=3, crop_scale=(0.08, 1.0), crop_pct=0.875,
                    mean=_augment.IMAGENET_MEAN, std=_augment.IMAGENET_STD,
                    extra_augment=None, epoch=0, start_step=0, num_shards=1, shard_index=0,
                    reshuffle_each_iteration=True, flip=True):
    """(images, labels) batches for fine-tuning, linear probing or evaluation.

    With `training=True` examples are shuffled, randomly resized-cropped
    (area fraction in `crop_scale`) and flipped (`flip`); with `training=False` they
    keep the source order and get the evaluation transform (shorter side to
    `image_size / crop_pct`, centre crop). Images are then normalised.

    Args:
        source: a labelled `Source` or anything `load_source`
            accepts that has labels (names are loaded with split "train";
            pass `load_source(name, split=...)` for another split).
        image_size: output side S, positive int.
        batch_size: batch size B, positive int.
        training: bool, selects the transform and shuffling.
        seed: int driving the shuffle order and the augmentations.
        shuffle_buffer: when training, 0 or 1 disables shuffling; otherwise
            as `pretrain_dataset`.
        drop_remainder: drop a last partial batch; default `training`.
        repeat: repeat forever.
        num_channels: channels C of the output, 1 or 3.
        crop_scale: (min, max) area fraction of the training crop.
        crop_pct: fraction kept by the evaluation centre crop, in (0, 1].
        mean: per-channel normalisation mean on the 0-1 scale.
        std: per-channel normalisation std on the 0-1 scale.
        extra_augment: optional Keras or keras-cv augmentation layer (or any
            callable) for `training=True`, see `check_extra_augment`.
        epoch: as `pretrain_dataset`.
        start_step: as `pretrain_dataset`.
        num_shards: as `pretrain_dataset`.
        shard_index: as `pretrain_dataset`.
        reshuffle_each_iteration: as `pretrain_dataset`.
        flip: bool, the random horizontal flip of training images (off for
            images that a mirror changes, such as digits or text).

    Returns:
        `tf.data.Dataset` of `(images, labels)`: float32 (B, S, S, C) and
        int64 (B,).

    Raises:
        ValueError: for an invalid argument, or a source without labels.

    Example:
    ```python
    from keras_mae.data.pipeline import labeled_dataset
    from keras_mae.data.sources import load_source
    test = load_source("digits", split="test")
    ds = labeled_dataset(test, 16, 32, training=False)
    images, labels = next(iter(ds))
    images.shape, labels.shape  # (TensorShape([32, 16, 16, 3]), TensorShape([32]))
    ```
    """
    if not isinstance(training, bool):
        raise ValueError(f"training must be a bool. Received: training={training!r}")
    check_extra_augment(extra_augment, training)
    if drop_remainder is None:
        drop_remainder = training
    source, to_channels = _labeled_source(source, image_size, batch_size, seed, shuffle_buffer,
                                          num_channels, drop_remainder, repeat)

    def transform(read, example_seed):
        if training:
            element, image = _train_transform(read, to_channels, image_size, example_seed,
                                              crop_scale, extra_augment, flip)
        else:
            element = read()
            image = _augment.center_crop_resize(to_channels(element["images"]), image_size,
                                                crop_pct=crop_pct)
        return _augment.normalize(image, mean, std), element["labels"]

    return _build(source, batch_size, seed, shuffle_buffer if training else 0,
                  drop_remainder, repeat, transform, reshuffle=reshuffle_each_iteration,
                  epoch=epoch, start_step=start_step, num_shards=num_shards,
                  shard_index=shard_index)


def labeled_arrays(source, image_size, num_channels=3, crop_pct=0.875, batch_size=500):
    """Every example of a labelled source as numpy arrays, evaluation transform, in order.

    Args:
        source: a labelled `Source` or anything `load_source` accepts.
        image_size: output side S, positive int.
        num_channels: channels C of the output, 1 or 3.
        crop_pct: fraction kept by the evaluation centre crop, in (0, 1].
        batch_size: images transformed at a time.

    Returns:
        `(images, labels)`: float32 (N, S, S, C) normalised images and int64 (N,).

    Example:
    ```python
    from keras_mae.data.pipeline import labeled_arrays
    from keras_mae.data.sources import load_source
    x, y = labeled_arrays(load_source("digits", split="test"), 16)
    x.shape, y.shape  # ((297, 16, 16, 3), (297,))
    ```
    """
    batches = list(labeled_dataset(source, image_size, batch_size, training=False,
                                   num_channels=num_channels, crop_pct=crop_pct))
    return (np.concatenate([images.numpy() for images, _ in batches]),
            np.concatenate([labels.numpy() for _, labels in batches]))
