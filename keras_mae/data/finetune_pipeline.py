"""The fine-tuning input pipeline of the MAE paper, as ``tf.data``: :func:`finetune_dataset`.

The fine-tuning recipe of the MAE paper (Appendix A.2, Table 9; official
`main_finetune.py` with timm's transforms) augments each image with
RandomResizedCrop + flip, RandAugment (9, 0.5), normalisation, random erasing
(p = 0.25, per-pixel normal noise), then each batch with mixup (alpha 0.8) or
cutmix (alpha 1.0), switching with probability 0.5, on label-smoothed (0.1)
one-hot targets. The pieces live in :mod:`keras_mae.data.randaugment`,
:mod:`keras_mae.data.erasing` and :mod:`keras_mae.data.mixing`; this module
wires them. All randomness is stateless, so a pipeline built twice with the
same ``seed`` yields the same batches.
"""

import tensorflow as tf

from keras_mae.data import augment as _augment
from keras_mae.data._helpers import check_probability, split_seed
from keras_mae.data.erasing import random_erasing
from keras_mae.data.mixing import mixup_cutmix
from keras_mae.data.pipeline import labeled_dataset
from keras_mae.data.randaugment import rand_augment


def finetune_dataset(source, image_size, batch_size, num_classes, seed=0,
                     shuffle_buffer=10000, repeat=False, num_channels=3,
                     crop_scale=(0.08, 1.0), rand_augment_ops=2, rand_augment_magnitude=9.0,
                     rand_augment_std=0.5, erasing_prob=0.25, mixup_alpha=0.8,
                     cutmix_alpha=1.0, switch_prob=0.5, mix_prob=1.0, smoothing=0.1,
                     mean=_augment.IMAGENET_MEAN, std=_augment.IMAGENET_STD):
    """Training batches of the MAE fine-tuning recipe: (images, soft targets).

    Per image: random resized crop (``crop_scale``) + flip (from
    :func:`labeled_dataset`), :func:`rand_augment` (``rand_augment_ops`` = 0
    disables it), normalisation, :func:`random_erasing`; per batch:
    :func:`mixup_cutmix` (both alphas 0: label smoothing only). Partial last
    batches are dropped.

    Args:
        source: a labelled source (see :func:`load_source`).
        image_size: output side S.
        batch_size: B.
        num_classes: K, the width of the targets.
        seed: int.
        shuffle_buffer, repeat, num_channels, crop_scale, mean, std: as
            :func:`labeled_dataset`.
        rand_augment_ops, rand_augment_magnitude, rand_augment_std: RandAugment
            (2, 9, 0.5 in the paper).
        erasing_prob: random erasing probability (0.25).
        mixup_alpha, cutmix_alpha, switch_prob, mix_prob: mixing (0.8, 1.0,
            0.5, 1.0).
        smoothing: label smoothing (0.1).

    Returns:
        ``tf.data.Dataset`` of (float32 (B, S, S, C), float32 (B, K)).

    Example:
        >>> ds = finetune_dataset("digits", 16, 8, num_classes=10)
        >>> images, targets = next(iter(ds))
        >>> images.shape, targets.shape
        (TensorShape([8, 16, 16, 3]), TensorShape([8, 10]))
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    check_probability("erasing_prob", erasing_prob)
    # Crop and flip on the 0-255 scale (identity normalisation), the rest here.
    crops = labeled_dataset(source, image_size, batch_size, training=True, seed=seed,
                            shuffle_buffer=shuffle_buffer, drop_remainder=True,
                            repeat=repeat, num_channels=num_channels,
                            crop_scale=crop_scale, mean=(0.0,), std=(1.0 / 255.0,))
    randoms = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)

    def per_image(example, random):
        (image, label) = example
        image_seed = tf.stack([random, tf.constant(seed, tf.int64)])
        ra_seed, erase_seed = split_seed(image_seed, 2)
        image = tf.clip_by_value(image, 0.0, 255.0)
        if rand_augment_ops:
            image = rand_augment(image, ra_seed, rand_augment_ops, rand_augment_magnitude,
                                 rand_augment_std)
        image = _augment.normalize(image, mean, std)
        if erasing_prob > 0:
            image = random_erasing(image, erase_seed, prob=erasing_prob)
        return image, label

    def per_batch(batch, random):
        (images, labels) = batch
        batch_seed = tf.stack([random, tf.constant(seed + 2, tf.int64)])
        images, targets, _ = mixup_cutmix(images, labels, num_classes, batch_seed,
                                          mixup_alpha, cutmix_alpha, switch_prob,
                                          mix_prob, smoothing)
        return images, targets

    ds = tf.data.Dataset.zip(crops.unbatch(), randoms)
    ds = ds.map(per_image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    batch_randoms = tf.data.Dataset.random(seed=seed + 2, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, batch_randoms)
    ds = ds.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
