"""Per-image augmentations for MAE pretraining and evaluation, as tf ops.

Every function takes and returns a single image of shape (H, W, C) (no batch
axis) so it can run inside `tf.data.Dataset.map`. Randomness comes from
stateless ops driven by an explicit `seed` of shape (2,) int32/int64, so a
pipeline that derives one seed per example is reproducible.

Outputs of the resizing functions are float32 on the 0-255 scale, clipped to
[0, 255] (bicubic interpolation overshoots); `normalize` then maps them
to zero-mean, unit-variance float32 inputs.

Crop boxes are drawn per image by `sample_crop_box`, the reference
RandomResizedCrop distribution (uniform area, log-uniform aspect ratio, 10
attempts, centre-crop fallback), which TF's bounding-box sampler does not
follow (uniform aspect ratio, whole-image fallback); resizing is bicubic by
default, antialiased only when shrinking and asked for. `normalize`
folds (W, C) into one axis before applying the per-channel constants, which
is faster than broadcasting them over the innermost axis;
`benchmarks/pipeline_throughput.py` measures the whole pipeline.
"""

import math

import tensorflow as tf

from keras_mae.ops import IMAGENET_MEAN, IMAGENET_STD

_METHODS = ("bicubic", "bilinear", "nearest", "area", "lanczos3", "lanczos5",
            "gaussian", "mitchellcubic")
_ATTEMPTS = 10


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int. Received: size={size!r}")


def _check_range(name, value, upper=None):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max). Received: {name}={value!r}")
    if not 0 < low <= high or (upper is not None and high > upper):
        bound = f" <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must satisfy 0 < min <= max{bound}. Received: {name}={value!r}")
    return low, high


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}. Received: method={method!r}")


def _resize(image, size_hw, method, antialias):
    """Resizes to size_hw as float32 in [0, 255]; antialiases only shrinking."""
    image = tf.cast(image, tf.float32)
    size_hw = tf.convert_to_tensor(size_hw, tf.int32)
    plain = lambda: tf.image.resize(image, size_hw, method=method)
    if antialias:
        # The antialiasing kernel is slower even at scale 1; enlarging does
        # not need it.
        shrinks = tf.reduce_any(size_hw < tf.shape(image)[:2])
        out = tf.cond(shrinks, lambda: tf.image.resize(
            image, size_hw, method=method, antialias=True), plain)
    else:
        out = plain()
    return tf.clip_by_value(out, 0.0, 255.0)


def sample_crop_box(image_shape, seed, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """Draws a RandomResizedCrop box for an image of the given shape.

    Tries 10 boxes with area uniform in `scale` times the image area and
    aspect ratio (width / height) log-uniform in `ratio`; the first box that
    fits is placed at a uniform random offset. If none fits, the largest
    centred box whose aspect ratio is clamped to `ratio` is used.

    Args:
        image_shape: int tensor (H, W, ...) or (H, W).
        seed: int tensor of shape (2,).
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio, width / height.

    Returns:
        int32 tensor (4,): top, left, height, width.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import sample_crop_box
    box = sample_crop_box(tf.constant([32, 48, 3]), tf.constant([1, 2]))
    box.shape  # TensorShape([4])
    ```
    """
    scale = _check_range("scale", scale, upper=1.0)
    ratio = _check_range("ratio", ratio)
    shape = tf.cast(image_shape, tf.int32)
    height, width = shape[0], shape[1]
    h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    area = h_f * w_f * tf.random.stateless_uniform(
        [_ATTEMPTS], seeds[0], scale[0], scale[1])
    aspect = tf.exp(tf.random.stateless_uniform(
        [_ATTEMPTS], seeds[1], math.log(ratio[0]), math.log(ratio[1])))
    cand_w = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    cand_h = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (cand_w > 0) & (cand_w <= width) & (cand_h > 0) & (cand_h <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)

    in_ratio = w_f / h_f
    fb_w = tf.where(in_ratio > ratio[1],
                    tf.cast(tf.round(h_f * ratio[1]), tf.int32), width)
    fb_h = tf.where(in_ratio < ratio[0],
                    tf.cast(tf.round(w_f / ratio[0]), tf.int32), height)

    found = tf.reduce_any(fits)
    crop_h = tf.where(found, cand_h[first], fb_h)
    crop_w = tf.where(found, cand_w[first], fb_w)
    offsets = tf.random.stateless_uniform([2], seeds[2])
    room = tf.cast(tf.stack([height - crop_h + 1, width - crop_w + 1]), tf.float32)
    random_off = tf.minimum(tf.cast(offsets * room, tf.int32),
                            tf.cast(room, tf.int32) - 1)
    centre_off = tf.stack([(height - crop_h) // 2, (width - crop_w) // 2])
    off = tf.where(found, random_off, centre_off)
    return tf.stack([off[0], off[1], crop_h, crop_w])


def random_resized_crop(image, size, seed, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                        method="bicubic", antialias=False):
    """Crops a random box of the image and resizes it to (size, size).

    The box follows the reference RandomResizedCrop (see
    `sample_crop_box`); a different `seed` gives a different box.

    Args:
        image: (H, W, C) tensor, any real dtype on the 0-255 scale.
        size: output side, positive int.
        seed: int tensor of shape (2,) (stateless randomness).
        scale: (min, max) fraction of the image area, in (0, 1].
        ratio: (min, max) aspect ratio, width / height.
        method: `tf.image.resize` method, default "bicubic".
        antialias: filter when downsampling (closer to PIL, slower).

    Returns:
        float32 tensor (size, size, C) with values clipped to [0, 255].

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import random_resized_crop
    img = tf.zeros([40, 50, 3], tf.uint8)
    random_resized_crop(img, 16, tf.constant([0, 1])).shape  # TensorShape([16, 16, 3])
    ```
    """
    _check_size(size)
    _check_method(method)
    image = tf.convert_to_tensor(image)
    box = sample_crop_box(tf.shape(image), seed, scale, ratio)
    return resize_crop(crop_to_box(image, box), size, method, antialias)


def crop_to_box(image, box):
    """The window `box` = (top, left, height, width) of an (H, W, C) image; C stays static.

    Args:
        image: (H, W, C) tensor.
        box: int tensor (4,): top, left, height, width.

    Returns:
        (height, width, C) tensor of the image's dtype.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import crop_to_box
    window = crop_to_box(tf.zeros([40, 50, 3]), tf.constant([5, 10, 20, 30]))
    window.shape  # TensorShape([20, 30, 3])
    ```
    """
    return image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]


def resize_crop(crop, size, method="bicubic", antialias=False):
    """Resizes a crop to (size, size): the second half of `random_resized_crop`.

    Args:
        crop: (h, w, C) tensor on the 0-255 scale.
        size: output side, positive int.
        method: `tf.image.resize` method, default "bicubic".
        antialias: filter when downsampling.

    Returns:
        float32 tensor (size, size, C) with values clipped to [0, 255].

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import resize_crop
    resize_crop(tf.zeros([30, 20, 3], tf.uint8), 16).shape  # TensorShape([16, 16, 3])
    ```
    """
    _check_size(size)
    _check_method(method)
    crop = tf.convert_to_tensor(crop)
    out = _resize(crop, [size, size], method, antialias)
    return tf.ensure_shape(out, [size, size, crop.shape[-1]])


def random_flip_left_right(image, seed):
    """Mirrors the image horizontally with probability 1/2.

    Args:
        image: (H, W, C) tensor.
        seed: int tensor of shape (2,).

    Returns:
        Tensor of the same shape and dtype.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import random_flip_left_right
    img = tf.reshape(tf.range(6.0), [1, 6, 1])
    random_flip_left_right(img, tf.constant([0, 0])).shape  # TensorShape([1, 6, 1])
    ```
    """
    return tf.image.stateless_random_flip_left_right(image, seed)


def center_crop_resize(image, size, crop_pct=0.875, method="bicubic", antialias=True):
    """Evaluation transform: resize shorter side to size / crop_pct, centre-crop.

    The shorter side becomes `int(size / crop_pct)` and the longer side is
    scaled by the same factor (truncated to an int), then the central
    (size, size) window is kept (top = round((h - size) / 2)).

    Args:
        image: (H, W, C) tensor on the 0-255 scale.
        size: output side, positive int.
        crop_pct: fraction of the resized shorter side kept, in (0, 1].
        method: `tf.image.resize` method, default "bicubic".
        antialias: filter when downsampling (default True, like PIL).

    Returns:
        float32 tensor (size, size, C) with values clipped to [0, 255].

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import center_crop_resize
    img = tf.zeros([48, 64, 3], tf.uint8)
    center_crop_resize(img, 28).shape  # TensorShape([28, 28, 3])
    ```
    """
    _check_size(size)
    _check_method(method)
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) \
            or not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be a number in (0, 1]. Received: crop_pct={crop_pct!r}")
    image = tf.convert_to_tensor(image)
    short = int(size / crop_pct)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    h_f, w_f = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    long_over_short = tf.maximum(h_f, w_f) / tf.minimum(h_f, w_f)
    other = tf.cast(tf.math.floor(short * long_over_short), tf.int32)
    new_h = tf.where(height <= width, short, other)
    new_w = tf.where(height <= width, other, short)
    resized = _resize(image, tf.stack([new_h, new_w]), method, antialias)
    top = tf.cast(tf.round(tf.cast(new_h - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - size, tf.float32) / 2.0), tf.int32)
    out = tf.slice(resized, tf.stack([top, left, 0]), tf.stack([size, size, -1]))
    return tf.ensure_shape(out, [size, size, image.shape[-1]])


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Maps a 0-255 image to float32 `(image / 255 - mean) / std`.

    `mean` and `std` have one value per channel (or a single value). For a
    1-channel image with 3-value constants, their averages are used.

    Args:
        image: (..., C) tensor on the 0-255 scale (uint8 or float).
        mean: per-channel means on the 0-1 scale.
        std: per-channel standard deviations on the 0-1 scale, all > 0.

    Returns:
        float32 tensor of the same shape.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.augment import normalize
    img = tf.fill([2, 2, 3], 127.5)
    float(normalize(img, mean=(0.5,), std=(0.5,)).numpy().max())  # 0.0
    ```
    """
    mean = tuple(float(m) for m in tf.nest.flatten(mean))
    std = tuple(float(s) for s in tf.nest.flatten(std))
    if not mean or len(mean) != len(std):
        raise ValueError(f"mean and std must be non-empty and of equal length. "
                         f"Received: mean={mean!r}, std={std!r}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive. Received: std={std!r}")
    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if len(mean) > 1 and channels == 1:
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    elif len(mean) > 1 and channels is None:
        raise ValueError(f"image channel count must be static to apply "
                         f"{len(mean)} mean/std values. Received: image.shape={image.shape}")
    elif len(mean) > 1 and channels != len(mean):
        raise ValueError(f"image has {channels} channels but mean/std have "
                         f"{len(mean)} values. Received: mean={mean!r}, std={std!r}")
    scale = tf.constant([1.0 / (255.0 * v) for v in std], tf.float32)
    offset = tf.constant([-m / v for m, v in zip(mean, std)], tf.float32)
    x = tf.cast(image, tf.float32)
    if len(mean) == 1 or image.shape.rank is None or image.shape.rank < 2:
        return x * scale + offset
    # Broadcasting a 3-vector over the innermost axis is much slower than a
    # long contiguous one, so fold (W, C) into one axis and tile the constants.
    shape = tf.shape(x)
    width = shape[-2]
    flat = tf.reshape(x, tf.concat([shape[:-2], [-1]], 0))
    out = flat * tf.tile(scale, [width]) + tf.tile(offset, [width])
    return tf.ensure_shape(tf.reshape(out, shape), image.shape)
