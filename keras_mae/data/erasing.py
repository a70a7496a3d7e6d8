"""Random erasing as the MAE fine-tuning uses it: timm `RandomErasing` (p 0.25, mode "pixel")."""

import math

import tensorflow as tf

from keras_mae.data._helpers import check_probability, split_seed


def random_erasing(image, seed, prob=0.25, area=(0.02, 1 / 3), log_ratio=(math.log(0.3),
                   math.log(1 / 0.3)), attempts=10):
    """Replaces a random box by per-pixel N(0, 1) noise (timm `RandomErasing`, mode "pixel").

    With probability `prob`, up to `attempts` boxes with an area fraction
    uniform in `area` and a log aspect ratio uniform in `log_ratio` are
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
        float32 (H, W, C); at most `area[1] * H * W` pixels differ.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.erasing import random_erasing
    img = tf.zeros([16, 16, 3])
    random_erasing(img, tf.constant([0, 3]), prob=1.0).shape  # TensorShape([16, 16, 3])
    ```
    """
    check_probability("prob", prob)
    if not 0 < area[0] <= area[1] <= 1:
        raise ValueError(f"area must satisfy 0 < min <= max <= 1. Received: area={area!r}")
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    gate_seed, area_seed, ratio_seed, place_seed, noise_seed = split_seed(seed, 5)
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
