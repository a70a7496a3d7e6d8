"""Batch mixing as the MAE fine-tuning uses it: timm `Mixup` (mixup 0.8, cutmix 1.0, "batch").

Plus the label-smoothed one-hot targets it mixes (smoothing 0.1 in the paper).
"""

import tensorflow as tf

from keras_mae.data._helpers import check_probability, split_seed


def one_hot_smoothed(labels, num_classes, smoothing=0.0):
    """Integer labels -> label-smoothed one-hot targets.

    Args:
        labels: (B,) int.
        num_classes: K.
        smoothing: s in [0, 1].

    Returns:
        float32 (B, K): `1 - s + s / K` on the label, `s / K` elsewhere.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.mixing import one_hot_smoothed
    one_hot_smoothed(tf.constant([1]), 4, 0.1).numpy()
    # array([[0.025, 0.925, 0.025, 0.025]], dtype=float32)
    ```
    """
    check_probability("smoothing", smoothing)
    off = smoothing / num_classes
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes,
                      on_value=1.0 - smoothing + off, off_value=off)


def _sample_beta(alpha, seed):
    a_seed, b_seed = split_seed(seed, 2)
    x = tf.random.stateless_gamma([], a_seed, alpha=alpha)
    y = tf.random.stateless_gamma([], b_seed, alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def cutmix_box(height, width, lam, seed):
    """A box covering about `1 - lam` of the image, centre uniform, clipped at the borders.

    Args:
        height, width: int tensors.
        lam: float scalar tensor in [0, 1].
        seed: int tensor (2,).

    Returns:
        int32 (4,): top, bottom, left, right (exclusive ends).

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.mixing import cutmix_box
    box = cutmix_box(tf.constant(16), tf.constant(16), tf.constant(0.75),
                     tf.constant([0, 1]))
    box.shape  # TensorShape([4])
    ```
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


def check_mix_arguments(mixup_alpha, cutmix_alpha, switch_prob, prob, smoothing):
    """Raises `ValueError` naming the value unless the arguments of `mixup_cutmix` are valid.

    Args:
        mixup_alpha, cutmix_alpha: float >= 0.
        switch_prob, prob, smoothing: numbers in [0, 1].

    Example:
    ```python
    from keras_mae.data.mixing import check_mix_arguments
    check_mix_arguments(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=1.0,
                        smoothing=0.1)
    ```
    """
    for name, value in (("switch_prob", switch_prob), ("prob", prob), ("smoothing", smoothing)):
        check_probability(name, value)
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"alphas must be >= 0. Received: mixup_alpha={mixup_alpha!r}, "
                         f"cutmix_alpha={cutmix_alpha!r}")


def mixup_cutmix(images, labels, num_classes, seed, mixup_alpha=0.8, cutmix_alpha=1.0,
                 switch_prob=0.5, prob=1.0, smoothing=0.1):
    """Mixes a batch with its reverse, by mixup or cutmix (timm `Mixup`, mode "batch").

    One coefficient per batch: with probability `prob` the batch is mixed;
    cutmix is chosen with probability `switch_prob` (when both alphas are >
    0). Mixup: `lam ~ Beta(mixup_alpha)`, `x = lam x + (1 - lam) x[::-1]`.
    Cutmix: `lam ~ Beta(cutmix_alpha)` sets the box (`cutmix_box`),
    the box is pasted from `x[::-1]` and `lam` becomes `1 - box area /
    image area`. Targets: `lam * y + (1 - lam) * y[::-1]` with
    label-smoothed one-hot `y`, so each row sums to 1.

    Args:
        images: (B, H, W, C) float.
        labels: (B,) int.
        num_classes: int.
        seed: int tensor (2,).
        mixup_alpha: float >= 0 (0 disables mixup).
        cutmix_alpha: float >= 0 (0 disables cutmix).
        switch_prob: probability of cutmix when both are enabled.
        prob: probability of mixing a batch at all.
        smoothing: label smoothing.

    Returns:
        (images (B, H, W, C) float32, targets (B, num_classes) float32, lam
        float32 scalar).

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.mixing import mixup_cutmix
    x, y, lam = mixup_cutmix(tf.zeros([4, 8, 8, 3]), tf.range(4), 4,
                             tf.constant([0, 1]))
    y.shape  # TensorShape([4, 4])
    ```
    """
    check_mix_arguments(mixup_alpha, cutmix_alpha, switch_prob, prob, smoothing)
    images = tf.cast(images, tf.float32)
    targets = one_hot_smoothed(labels, num_classes, smoothing)
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return images, targets, tf.constant(1.0)
    gate_seed, mix_seed, cut_seed, box_seed = split_seed(seed, 4)
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

    # Only the chosen mix is computed: each is a pass over the whole batch.
    # tf.reverse, not images[::-1]: a negative-stride slice of a batch of
    # images is several times slower.
    def cut():
        return tf.where(inside[None, :, :, None], tf.reverse(images, [0]), images), lam_cut

    def blend():
        return lam_mixup * images + (1.0 - lam_mixup) * tf.reverse(images, [0]), lam_mixup

    out, lam = tf.cond(mix, lambda: tf.cond(use_cutmix, cut, blend),
                       lambda: (images, tf.constant(1.0)))
    targets = lam * targets + (1.0 - lam) * targets[::-1]
    return out, targets, lam
