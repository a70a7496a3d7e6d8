"""The fine-tuning input pipeline of the MAE paper, as `tf.data`: `finetune_dataset`.

The fine-tuning recipe of the MAE paper (Appendix A.2, Table 9; official
`main_finetune.py` with timm's transforms) augments each image with
RandomResizedCrop + flip, RandAugment (9, 0.5), normalisation, random erasing
(p = 0.25, per-pixel normal noise), then mixes images by mixup (alpha 0.8) or
cutmix (alpha 1.0), switching with probability 0.5, on label-smoothed (0.1)
one-hot targets. The official code mixes each GPU's batch of 32 on its own
(timm `Mixup` in "batch" mode inside each of 8 processes x 4 accumulation
steps); here a batch is mixed in groups of `mix_group_size` images, each
group with its own draw. The pieces live in `keras_mae.data.randaugment`,
`keras_mae.data.erasing` and `keras_mae.data.mixing`; this module
wires them. All randomness is stateless and derived from `seed`, the epoch
and the position in it, so a pipeline built twice yields the same batches,
a resumed epoch (`start_step`) continues exactly, and workers sharing a
global batch (`num_shards`) draw what one worker would.
"""

import tensorflow as tf

from keras_mae.data import augment as _augment
from keras_mae.data import pipeline as _pipeline
from keras_mae.data._helpers import check_probability, split_seed
from keras_mae.data.erasing import random_erasing
from keras_mae.data.mixing import check_mix_arguments, mixup_cutmix
from keras_mae.data.randaugment import rand_augment


def check_mix_groups(batch_size, mix_group_size, num_shards=1):
    """The number of images mixed together with one draw, checked.

    Args:
        batch_size: int, the global batch.
        mix_group_size: int >= 0 or None (0 or None: each worker's whole
            share of the batch).
        num_shards: int, the input workers sharing each global batch.

    Returns:
        int, `min(mix_group_size, batch_size // num_shards)`.

    Raises:
        ValueError: naming the values, unless each worker's share of the
            batch (`batch_size // num_shards`) holds whole groups.

    Example:
    ```python
    from keras_mae.data.finetune_pipeline import check_mix_groups
    check_mix_groups(batch_size=256, mix_group_size=32, num_shards=2)  # 32
    ```
    """
    if mix_group_size is None or mix_group_size == 0:
        return batch_size // num_shards
    if isinstance(mix_group_size, bool) or not isinstance(mix_group_size, int) \
            or mix_group_size < 0:
        raise ValueError(f"mix_group_size must be an int >= 0 (0: the whole batch). "
                         f"Received: mix_group_size={mix_group_size!r}")
    group = min(mix_group_size, batch_size // num_shards)
    if (batch_size // num_shards) % group:
        raise ValueError(f"mix_group_size must divide the {batch_size // num_shards} images "
                         f"of a batch{' per worker' if num_shards > 1 else ''}. Received: "
                         f"mix_group_size={mix_group_size}, batch_size={batch_size}, "
                         f"num_shards={num_shards}")
    return group


def mix_groups(images, labels, num_classes, group_seeds, group_size, **mix_args):
    """`mixup_cutmix` on each group of `group_size` consecutive images, one seed each.

    Args:
        images: (B, H, W, C) float, B a multiple of `group_size`.
        labels: (B,) int.
        num_classes: K.
        group_seeds: int64 (B / group_size, 2).
        group_size: int.
        **mix_args: the other arguments of `mixup_cutmix`.

    Returns:
        (images (B, H, W, C) float32, targets (B, K) float32).

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.finetune_pipeline import mix_groups
    x, y = mix_groups(tf.zeros([4, 8, 8, 3]), tf.range(4), 4,
                      tf.constant([[0, 1], [0, 2]], tf.int64), 2)
    y.shape  # TensorShape([4, 4])
    ```
    """
    shape = tf.shape(images)
    groups = tf.shape(group_seeds)[0]
    grouped = tf.reshape(tf.cast(images, tf.float32),
                         tf.concat([[groups, group_size], shape[1:]], 0))
    grouped_labels = tf.reshape(labels, [groups, group_size])

    def one(args):
        x, y, s = args
        out, targets, _ = mixup_cutmix(x, y, num_classes, s, **mix_args)
        return out, targets

    out, targets = tf.map_fn(
        one, (grouped, grouped_labels, group_seeds),
        fn_output_signature=(tf.TensorSpec([group_size] + list(images.shape[1:]), tf.float32),
                             tf.TensorSpec([group_size, num_classes], tf.float32)))
    return tf.reshape(out, shape), tf.reshape(targets, [-1, num_classes])


def finetune_dataset(source, image_size, batch_size, num_classes, seed=0,
                     shuffle_buffer=10000, repeat=False, num_channels=3,
                     crop_scale=(0.08, 1.0), rand_augment_ops=2, rand_augment_magnitude=9.0,
                     rand_augment_std=0.5, erasing_prob=0.25, mixup_alpha=0.8,
                     cutmix_alpha=1.0, switch_prob=0.5, mix_prob=1.0, smoothing=0.1,
                     mix_group_size=32, mean=_augment.IMAGENET_MEAN,
                     std=_augment.IMAGENET_STD, epoch=0, start_step=0, num_shards=1,
                     shard_index=0, reshuffle_each_iteration=True, flip=True):
    """Training batches of the MAE fine-tuning recipe: (images, soft targets).

    Per image: random resized crop (`crop_scale`) + flip, `rand_augment`
    (`rand_augment_ops` = 0 disables it), normalisation,
    `random_erasing`; per group of `mix_group_size` images:
    `mixup_cutmix` (both alphas 0: label smoothing only). Partial last
    batches are dropped.

    Args:
        source: a labelled source (see `load_source`).
        image_size: output side S.
        batch_size: B, the global batch.
        num_classes: K, the width of the targets.
        seed: int.
        shuffle_buffer: as `labeled_dataset`.
        repeat: as `labeled_dataset`.
        num_channels: as `labeled_dataset`.
        crop_scale: as `labeled_dataset`.
        mean: as `labeled_dataset`.
        std: as `labeled_dataset`.
        epoch: as `labeled_dataset`.
        start_step: as `labeled_dataset`.
        num_shards: as `labeled_dataset`.
        shard_index: as `labeled_dataset`.
        reshuffle_each_iteration: as `labeled_dataset`.
        flip: as `labeled_dataset`.
        rand_augment_ops: RandAugment's ops per image (2 in the paper).
        rand_augment_magnitude: RandAugment's magnitude (9 in the paper).
        rand_augment_std: RandAugment's magnitude std (0.5 in the paper).
        erasing_prob: random erasing probability (0.25).
        mixup_alpha: mixup's Beta alpha (0.8).
        cutmix_alpha: cutmix's Beta alpha (1.0).
        switch_prob: probability of cutmix when both are enabled (0.5).
        mix_prob: probability of mixing a group at all (1.0).
        smoothing: label smoothing (0.1).
        mix_group_size: images mixed together with one draw (32, the official
            per-GPU batch); 0 or None: the whole batch.

    Returns:
        `tf.data.Dataset` of (float32 (B / num_shards, S, S, C), float32
        (B / num_shards, K)).

    Example:
    ```python
    from keras_mae.data.finetune_pipeline import finetune_dataset
    ds = finetune_dataset("digits", 16, 8, num_classes=10)
    images, targets = next(iter(ds))
    images.shape, targets.shape  # (TensorShape([8, 16, 16, 3]), TensorShape([8, 10]))
    ```
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int. "
                         f"Received: num_classes={num_classes!r}")
    check_probability("erasing_prob", erasing_prob)
    group = check_mix_groups(batch_size, mix_group_size, num_shards)
    mix_args = dict(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                    switch_prob=switch_prob, prob=mix_prob, smoothing=smoothing)
    check_mix_arguments(**mix_args)
    source, to_channels = _pipeline._labeled_source(source, image_size, batch_size, seed,
                                                    shuffle_buffer, num_channels, True, repeat)

    def transform(read, example_seed):
        crop_seed, ra_seed, erase_seed = split_seed(example_seed, 3)
        element, image = _pipeline._train_transform(read, to_channels, image_size, crop_seed,
                                                    crop_scale, None, flip)
        image = tf.clip_by_value(image, 0.0, 255.0)
        if rand_augment_ops:
            image = rand_augment(image, ra_seed, rand_augment_ops, rand_augment_magnitude,
                                 rand_augment_std)
        image = _augment.normalize(image, mean, std)
        if erasing_prob > 0:
            image = random_erasing(image, erase_seed, prob=erasing_prob)
        return image, element["labels"]

    ds = _pipeline._build(source, batch_size, seed, shuffle_buffer, True, repeat, transform,
                          reshuffle=reshuffle_each_iteration, epoch=epoch,
                          start_step=start_step, num_shards=num_shards,
                          shard_index=shard_index)
    groups = batch_size // num_shards // group
    first_group = shard_index * groups
    epoch_seed = tf.constant([seed + 2, epoch], tf.int64)

    def per_batch(step, batch):
        images, labels = batch
        # one seed per group of the global batch: the same draws for any number of workers
        index = step * (batch_size // group) + first_group + tf.range(groups, dtype=tf.int64)
        seeds = tf.map_fn(lambda i: tf.random.experimental.stateless_fold_in(epoch_seed, i),
                          index, fn_output_signature=tf.TensorSpec([2], tf.int64))
        return mix_groups(images, labels, num_classes, seeds, group, **mix_args)

    ds = ds.enumerate(start=start_step).map(per_batch, num_parallel_calls=tf.data.AUTOTUNE,
                                            deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
