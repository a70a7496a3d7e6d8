"""Fine-tuning augmentations: RandAugment, random erasing, mixup/cutmix; the pipeline wiring them.

The fine-tuning recipe of the MAE paper (Appendix A.2, Table 9; official
`main_finetune.py` with timm's transforms) augments each image with
RandomResizedCrop + flip, RandAugment (9, 0.5), normalisation, random erasing
(p = 0.25, per-pixel normal noise), then each batch with mixup (alpha 0.8) or
cutmix (alpha 1.0), switching with probability 0.5, on label-smoothed (0.1)
one-hot targets. :func:`finetune_dataset` builds exactly that chain with
``tf.data``; every piece is also usable on its own.

All randomness is stateless and driven by explicit ``(2,)`` int seeds, so a
pipeline built twice with the same ``seed`` yields the same batches.

RandAugment: this module's own implementation of the 15 operations of timm's
``rand-m9-mstd0.5-inc1`` policy (AutoContrast, Equalize, Invert, Rotate,
Posterize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness,
ShearX, ShearY, TranslateXRel, TranslateYRel) with 2 operations per image,
each applied with probability 0.5, magnitude drawn from N(9, 0.5) clipped to
[0, 10], "increasing" magnitudes (higher is always stronger), geometric
operations filled with the ImageNet mean colour (124, 116, 104), as timm's
`create_transform` configures it for the official fine-tuning. One difference
remains: geometric operations interpolate bilinearly (TF's
projective transform has no bicubic), where the official run asks timm for
bicubic. Measured on this project's 2-core CPU (TF
2.21, keras-cv 0.9, 1,024 uint8 32 px images, batches of 64, tf.data, second
pass): keras-cv's ``RandAugment`` (2 ops, rate 0.5) does run under Keras 3 in
a batched ``map``, at 560 img/s; this per-image implementation at 1,040 img/s
(the pipeline without augmentation: 25,000 img/s). This one is used: about
twice as fast, stateless (reproducible per example from the pipeline seed)
and with timm's operation set and magnitude ranges.
"""

import math

import tensorflow as tf

from keras_mae.data import augment as _augment
from keras_mae.data.pipeline import labeled_dataset

RAND_AUGMENT_OPS = (
    "auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize",
    "solarize_add", "color", "contrast", "brightness", "sharpness", "shear_x",
    "shear_y", "translate_x", "translate_y",
)
# timm's create_transform gives RandAugment `img_mean=round(255 * mean)` as the fill of
# its geometric operations: (124, 116, 104) for the ImageNet mean.
_FILL = tuple(float(min(255, round(255 * m))) for m in _augment.IMAGENET_MEAN)
_MAX_MAGNITUDE = 10.0


def _seeds(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), n))


def _check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


# ---------------------------------------------------------------- RandAugment

def _blend(image, degenerate, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _grey(image):
    weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    if image.shape[-1] == 3:
        return tf.reduce_sum(image * weights, axis=-1, keepdims=True)
    return image


def _affine(image, matrix):
    """Applies a 3x3 output->input pixel mapping (row-major, first 8 entries).

    Pixels mapped from outside the image get the per-channel `_FILL` (grey,
    their mean, for one channel): the transform runs on `image - fill` with
    fill 0, exact because bilinear interpolation is linear.
    """
    transform = tf.reshape(tf.cast(matrix, tf.float32), [1, 9])[:, :8]
    fill = tf.constant(_FILL if image.shape[-1] == 3 else (round(sum(_FILL) / 3),), tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=(image - fill)[None], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    return out[0] + fill


def _about_centre(image, matrix):
    """Conjugates a 3x3 mapping so that it acts about the image centre."""
    shape = tf.cast(tf.shape(image), tf.float32)
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    to_centre = tf.stack([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    from_centre = tf.stack([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    return to_centre @ matrix @ from_centre


def _equalize_channel(channel):
    values = tf.cast(channel, tf.int32)
    histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    nonzero = tf.boolean_mask(histogram, histogram > 0)
    step = (tf.reduce_sum(histogram) - nonzero[-1]) // 255

    def equalized():
        lut = (tf.cumsum(histogram) - histogram + step // 2) // tf.maximum(step, 1)
        lut = tf.clip_by_value(lut, 0, 255)
        return tf.cast(tf.gather(lut, values), tf.float32)

    return tf.cond(step > 0, equalized, lambda: channel)


def _apply_op(index, image, level, sign):
    """Applies op number `index` of RAND_AUGMENT_OPS at `level` in [0, 1]."""
    signed = level * sign

    def auto_contrast():
        low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
        high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
        scale = tf.where(high > low, 255.0 / tf.maximum(high - low, 1e-6), 1.0)
        return tf.where(high > low, (image - low) * scale, image)

    def equalize():
        channels = tf.unstack(tf.round(image), axis=-1)
        return tf.stack([_equalize_channel(c) for c in channels], axis=-1)

    def rotate():
        angle = signed * 30.0 * math.pi / 180.0
        c, s = tf.cos(angle), tf.sin(angle)
        matrix = tf.stack([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return _affine(image, _about_centre(image, matrix))

    def posterize():
        bits = 4 - tf.cast(level * 4, tf.int32)
        shift = tf.cast(8 - bits, tf.int32)
        values = tf.cast(tf.round(image), tf.int32)
        return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(values, shift), shift),
                       tf.float32)

    def solarize():
        threshold = 256.0 - level * 256.0
        return tf.where(image >= threshold, 255.0 - image, image)

    def solarize_add():
        return tf.where(image < 128.0, tf.minimum(image + level * 110.0, 255.0), image)

    def enhance(degenerate):
        return _blend(image, degenerate, 1.0 + signed * 0.9)

    def sharpness():
        kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
        channels = image.shape[-1]
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
        smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
        # Border pixels keep their values, as PIL's smoothing filter.
        smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
        mask = tf.pad(tf.ones_like(smooth[1:-1, 1:-1]), [[1, 1], [1, 1], [0, 0]])
        degenerate = mask * smooth + (1 - mask) * image
        return enhance(degenerate)

    def shear(axis):
        amount = signed * 0.3
        one, zero = tf.constant(1.0), tf.constant(0.0)
        # Rows map output (x, y, 1) to input x and y; axis 1 shears along x.
        rows = ([[one, amount, zero], [zero, one, zero], [zero, zero, one]] if axis == 1
                else [[one, zero, zero], [amount, one, zero], [zero, zero, one]])
        return _affine(image, tf.stack([tf.stack(row) for row in rows]))

    def translate(axis):
        size = tf.cast(tf.shape(image)[1 - axis], tf.float32)
        offset = signed * 0.45 * size
        dx, dy = (offset, 0.0) if axis == 0 else (0.0, offset)
        matrix = tf.stack([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
        return _affine(image, matrix)

    branches = [
        auto_contrast, equalize, lambda: 255.0 - image, rotate, posterize, solarize,
        solarize_add, lambda: enhance(_grey(image) + tf.zeros_like(image)),
        lambda: enhance(tf.reduce_mean(_grey(image)) + tf.zeros_like(image)),
        lambda: enhance(tf.zeros_like(image)), sharpness, lambda: shear(1),
        lambda: shear(0), lambda: translate(0), lambda: translate(1),
    ]
    out = tf.switch_case(index, branches)
    return tf.ensure_shape(tf.clip_by_value(out, 0.0, 255.0), image.shape)


def rand_augment(image, seed, num_ops=2, magnitude=9.0, magnitude_std=0.5, prob=0.5):
    """RandAugment on one image (timm's ``rand-m{magnitude}-mstd{std}-inc1``).

    Draws ``num_ops`` operations uniformly (with replacement) from
    ``RAND_AUGMENT_OPS``; each is applied with probability ``prob`` at a
    magnitude drawn from N(magnitude, magnitude_std) clipped to [0, 10], with a
    random sign for the signed ones (rotation, shear, translation,
    enhancement factors).

    Args:
        image: (H, W, C) tensor on the 0-255 scale, C in {1, 3}.
        seed: int tensor of shape (2,).
        num_ops: int >= 0, operations per image.
        magnitude: float in [0, 10].
        magnitude_std: float >= 0.
        prob: probability of applying each drawn operation.

    Returns:
        float32 (H, W, C) on the 0-255 scale.

    Example:
        >>> img = tf.fill([8, 8, 3], 100.0)
        >>> rand_augment(img, tf.constant([1, 2])).shape
        TensorShape([8, 8, 3])
    """
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0, got {num_ops!r}")
    if not 0 <= magnitude <= _MAX_MAGNITUDE:
        raise ValueError(f"magnitude must be in [0, 10], got {magnitude!r}")
    if magnitude_std < 0:
        raise ValueError(f"magnitude_std must be >= 0, got {magnitude_std!r}")
    _check_probability("prob", prob)
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    for op_seed in _seeds(seed, num_ops) if num_ops else []:
        draws = tf.random.stateless_uniform([3], op_seed)
        noise = tf.random.stateless_normal([], op_seed + 1)
        index = tf.minimum(tf.cast(draws[0] * len(RAND_AUGMENT_OPS), tf.int32),
                           len(RAND_AUGMENT_OPS) - 1)
        level = tf.clip_by_value(magnitude + magnitude_std * noise, 0.0,
                                 _MAX_MAGNITUDE) / _MAX_MAGNITUDE
        sign = tf.where(draws[1] < 0.5, -1.0, 1.0)
        image = tf.cond(draws[2] < prob,
                        lambda i=image, x=index, lv=level, s=sign: _apply_op(x, i, lv, s),
                        lambda i=image: i)
    return image


# ------------------------------------------------------------- random erasing

def random_erasing(image, seed, prob=0.25, area=(0.02, 1 / 3), log_ratio=(math.log(0.3),
                   math.log(1 / 0.3)), attempts=10):
    """Replaces a random box by per-pixel N(0, 1) noise (timm ``RandomErasing``, mode "pixel").

    With probability ``prob``, up to ``attempts`` boxes with an area fraction
    uniform in ``area`` and a log aspect ratio uniform in ``log_ratio`` are
    drawn; the first that fits strictly inside the image is erased (none if
    none fits). Applied to normalised images, so the noise has the data's
    scale.

    Args:
        image: (H, W, C) float normalised image.
        seed: int tensor of shape (2,).
        prob: probability of erasing.
        area: (min, max) fraction of the image area.
        log_ratio: (min, max) log of height / width.
        attempts: int >= 1.

    Returns:
        float32 (H, W, C); at most ``area[1] * H * W`` pixels differ.

    Example:
        >>> img = tf.zeros([16, 16, 3])
        >>> random_erasing(img, tf.constant([0, 3]), prob=1.0).shape
        TensorShape([16, 16, 3])
    """
    _check_probability("prob", prob)
    if not 0 < area[0] <= area[1] <= 1:
        raise ValueError(f"area must satisfy 0 < min <= max <= 1, got {area!r}")
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    gate_seed, area_seed, ratio_seed, place_seed, noise_seed = _seeds(seed, 5)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    total = tf.cast(height * width, tf.float32)
    target = total * tf.random.stateless_uniform([attempts], area_seed, area[0], area[1])
    ratio = tf.exp(tf.random.stateless_uniform([attempts], ratio_seed, log_ratio[0],
                                               log_ratio[1]))
    box_h = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    box_w = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    erase = tf.reduce_any(fits) & (tf.random.stateless_uniform([], gate_seed) < prob)
    h, w = box_h[first], box_w[first]
    place = tf.random.stateless_uniform([2], place_seed)
    top = tf.cast(place[0] * tf.cast(height - h + 1, tf.float32), tf.int32)
    left = tf.cast(place[1] * tf.cast(width - w + 1, tf.float32), tf.int32)
    rows = tf.range(height)[:, None, None]
    cols = tf.range(width)[None, :, None]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w) & erase
    noise = tf.random.stateless_normal(shape, noise_seed)
    return tf.where(inside, noise, image)


# -------------------------------------------------------------- mixup / cutmix

def one_hot_smoothed(labels, num_classes, smoothing=0.0):
    """Integer labels (B,) -> (B, num_classes) targets: 1 - s + s/K on the label, s/K elsewhere."""
    _check_probability("smoothing", smoothing)
    off = smoothing / num_classes
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes,
                      on_value=1.0 - smoothing + off, off_value=off)


def _sample_beta(alpha, seed):
    a_seed, b_seed = _seeds(seed, 2)
    x = tf.random.stateless_gamma([], a_seed, alpha=alpha)
    y = tf.random.stateless_gamma([], b_seed, alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def cutmix_box(height, width, lam, seed):
    """A box covering about ``1 - lam`` of the image, centre uniform, clipped at the borders.

    Args:
        height, width: int tensors.
        lam: float scalar tensor in [0, 1].
        seed: int tensor (2,).

    Returns:
        int32 (4,): top, bottom, left, right (exclusive ends).
    """
    cut = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(height, tf.float32) * cut, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * cut, tf.int32)
    centre = tf.random.stateless_uniform([2], seed)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    top = tf.clip_by_value(cy - cut_h // 2, 0, height)
    bottom = tf.clip_by_value(cy + cut_h // 2, 0, height)
    left = tf.clip_by_value(cx - cut_w // 2, 0, width)
    right = tf.clip_by_value(cx + cut_w // 2, 0, width)
    return tf.stack([top, bottom, left, right])


def mixup_cutmix(images, labels, num_classes, seed, mixup_alpha=0.8, cutmix_alpha=1.0,
                 switch_prob=0.5, prob=1.0, smoothing=0.1):
    """Mixes a batch with its reverse, by mixup or cutmix (timm ``Mixup``, mode "batch").

    One coefficient per batch: with probability ``prob`` the batch is mixed;
    cutmix is chosen with probability ``switch_prob`` (when both alphas are >
    0). Mixup: ``lam ~ Beta(mixup_alpha)``, ``x = lam x + (1 - lam) x[::-1]``.
    Cutmix: ``lam ~ Beta(cutmix_alpha)`` sets the box (:func:`cutmix_box`),
    the box is pasted from ``x[::-1]`` and ``lam`` becomes ``1 - box area /
    image area``. Targets: ``lam * y + (1 - lam) * y[::-1]`` with
    label-smoothed one-hot ``y``, so each row sums to 1.

    Args:
        images: (B, H, W, C) float.
        labels: (B,) int.
        num_classes: int.
        seed: int tensor (2,).
        mixup_alpha, cutmix_alpha: float >= 0 (0 disables that method).
        switch_prob: probability of cutmix when both are enabled.
        prob: probability of mixing a batch at all.
        smoothing: label smoothing.

    Returns:
        (images (B, H, W, C) float32, targets (B, num_classes) float32, lam
        float32 scalar).

    Example:
        >>> x, y, lam = mixup_cutmix(tf.zeros([4, 8, 8, 3]), tf.range(4), 4,
        ...                          tf.constant([0, 1]))
        >>> y.shape
        TensorShape([4, 4])
    """
    for name, value in (("switch_prob", switch_prob), ("prob", prob)):
        _check_probability(name, value)
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"alphas must be >= 0, got mixup_alpha={mixup_alpha!r}, "
                         f"cutmix_alpha={cutmix_alpha!r}")
    images = tf.cast(images, tf.float32)
    targets = one_hot_smoothed(labels, num_classes, smoothing)
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return images, targets, tf.constant(1.0)
    gate_seed, mix_seed, cut_seed, box_seed = _seeds(seed, 4)
    gates = tf.random.stateless_uniform([2], gate_seed)
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = gates[1] < switch_prob
    else:
        use_cutmix = tf.constant(cutmix_alpha > 0)
    mix = gates[0] < prob
    lam_mixup = _sample_beta(mixup_alpha, mix_seed) if mixup_alpha > 0 else tf.constant(1.0)
    lam_cut = _sample_beta(cutmix_alpha, cut_seed) if cutmix_alpha > 0 else tf.constant(1.0)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    box = cutmix_box(height, width, lam_cut, box_seed)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])
    box_area = tf.cast((box[1] - box[0]) * (box[3] - box[2]), tf.float32)
    lam_cut = 1.0 - box_area / tf.cast(height * width, tf.float32)
    flipped = images[::-1]
    cut_images = tf.where(inside[None, :, :, None], flipped, images)
    mixed_images = lam_mixup * images + (1.0 - lam_mixup) * flipped
    lam = tf.where(mix, tf.where(use_cutmix, lam_cut, lam_mixup), 1.0)
    out = tf.where(mix, tf.where(use_cutmix, cut_images, mixed_images), images)
    targets = lam * targets + (1.0 - lam) * targets[::-1]
    return out, targets, lam


# ------------------------------------------------------------------ pipeline

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
    _check_probability("erasing_prob", erasing_prob)
    # Crop and flip on the 0-255 scale (identity normalisation), the rest here.
    crops = labeled_dataset(source, image_size, batch_size, training=True, seed=seed,
                            shuffle_buffer=shuffle_buffer, drop_remainder=True,
                            repeat=repeat, num_channels=num_channels,
                            crop_scale=crop_scale, mean=(0.0,), std=(1.0 / 255.0,))
    randoms = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)

    def per_image(example, random):
        (image, label) = example
        image_seed = tf.stack([random, tf.constant(seed, tf.int64)])
        ra_seed, erase_seed = _seeds(image_seed, 2)
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
