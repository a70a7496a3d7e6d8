"""RandAugment as the MAE fine-tuning uses it: timm's `rand-m9-mstd0.5-inc1`, as tf ops.

The 15 operations of timm's `_RAND_INCREASING_TRANSFORMS` (AutoContrast,
Equalize, Invert, Rotate, PosterizeIncreasing, SolarizeIncreasing,
SolarizeAdd, ColorIncreasing, ContrastIncreasing, BrightnessIncreasing,
SharpnessIncreasing, ShearX, ShearY, TranslateXRel, TranslateYRel), written
here as tf ops on one float image on the 0-255 scale. `rand_augment`
draws `num_ops` of them uniformly (with replacement); each is applied with
probability 0.5 at a magnitude drawn from N(9, 0.5) clipped to [0, 10],
"increasing" magnitudes (higher is always stronger), with a random sign for
the signed ones. Geometric operations resample as timm's do under the
official `create_transform(..., interpolation='bicubic')`: PIL's bicubic
affine transform, filled with the ImageNet mean colour (124, 116, 104)
(`_affine`).

The operations are selected by name: `_OPS` maps each name to its function,
its key order (timm's) defines `RAND_AUGMENT_OPS`, and a sampled
operation is an index into that one mapping; `apply_op` applies one by
name. `tests/test_rand_augment_reference.py` compares each with PIL as timm
calls it: the point operations exactly, the others within PIL's uint8
rounding (at most 1.5 levels).

Unlike Keras' and keras-cv's `RandAugment` it is stateless (reproducible
per example from the pipeline seed) and has timm's operation set, magnitude
ranges and bicubic resampling; `benchmarks/augment_keras_vs_ours.py`
compares them, speed included.
"""

import functools
import math
import types

import tensorflow as tf

from keras_mae.data import augment as _augment
from keras_mae.data._helpers import check_probability, split_seed

# timm's create_transform gives RandAugment `img_mean=round(255 * mean)` as the fill of
# its geometric operations: (124, 116, 104) for the ImageNet mean.
_FILL = tuple(float(min(255, round(255 * m))) for m in _augment.IMAGENET_MEAN)
_MAX_MAGNITUDE = 10.0


# ------------------------------------------------------------------- helpers

def _blend(image, degenerate, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _grey(image):
    weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    if image.shape[-1] == 3:
        return tf.reduce_sum(image * weights, axis=-1, keepdims=True)
    return image


def _cubic_weights(d):
    """PIL's bicubic weights (its a = -1 kernel) for the taps at -1, 0, 1, 2 from the floor."""
    d2 = d * d
    d3 = d2 * d
    return tf.stack([2 * d2 - d - d3, 1 - 2 * d2 + d3, d + d2 - d3, d3 - d2], axis=-1)


def _affine(image, coefficients):
    """PIL's `Image.transform(size, AFFINE, coefficients, BICUBIC, fillcolor=_FILL)`.

    In PIL's continuous coordinates (pixel `(i, j)` covers `[i, i + 1) x
    [j, j + 1)`) the output pixel centred at `(x, y)` samples the input at
    `(a x + b y + c, d x + e y + f)` for `coefficients` `(a, b, c, d, e,
    f)`: bicubic on the 4 x 4 nearest pixels (PIL's a = -1 kernel, borders
    replicated) where that point lies inside the image, else the fill colour
    (grey, their mean, for one channel), not blended with the image. This is
    timm's geometry under the official `interpolation='bicubic'`; only the
    rounding differs (PIL truncates to uint8, this stays float32).

    Args:
        image: (H, W, C) float32.
        coefficients: 6 float32 scalars.

    Returns:
        float32 (H, W, C), unclipped (bicubic overshoots).
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    # Output pixel centres, homogeneous: (3, H * W); their inputs (x, y): (2, H * W).
    ys = tf.repeat(tf.range(height), width)
    xs = tf.tile(tf.range(width), [height])
    centres = tf.concat([tf.cast(tf.stack([xs, ys]), tf.float32) + 0.5,
                         tf.ones([1, height * width])], axis=0)
    points = tf.reshape(tf.stack(coefficients), [2, 3]) @ centres
    size = tf.cast(tf.stack([[width], [height]]), tf.float32)
    inside = tf.reduce_all((points >= 0) & (points < size), axis=0)
    # Pixel-index coordinates; taps floor - 1 ... floor + 2, clamped to the image.
    points = points - 0.5
    floor = tf.floor(points)
    weights = _cubic_weights(points - floor)  # (2, H * W, 4)
    taps = tf.clip_by_value(tf.cast(floor, tf.int32)[..., None] + tf.constant([-1, 0, 1, 2]),
                            0, tf.cast(size, tf.int32)[..., None] - 1)
    pixels = tf.gather(tf.reshape(image, [height * width, -1]),
                       taps[1][:, :, None] * width + taps[0][:, None, :])  # (H * W, 4, 4, C)
    # Weighted offsets from the tap at (floor, floor): exact where the image is flat.
    centre = pixels[:, 1:2, 1:2]
    along_x = tf.reduce_sum((pixels - centre) * weights[0][:, None, :, None], axis=2)
    out = centre[:, 0, 0] + tf.reduce_sum(along_x * weights[1][..., None], axis=1)
    fill = tf.constant(_FILL if image.shape[-1] == 3 else (round(sum(_FILL) / 3),), tf.float32)
    return tf.reshape(tf.where(inside[:, None], out, fill), shape)


def _geometric(coefficients):
    """The operation resampling by `coefficients(image, level, sign)` with `_affine`.

    The coefficient function stays reachable as the operation's
    `coefficients`: sampled operations share one resampling (`_apply_indexed`).
    """
    def op(image, level, sign):
        return _affine(image, coefficients(image, level, sign))

    op.coefficients = coefficients
    op.__doc__ = coefficients.__doc__
    return op


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


# ---------------------------------------------------------------- operations
# Each takes (image, level, sign): a float (H, W, C) image on the 0-255 scale,
# level = magnitude / 10 in [0, 1] and sign in {-1, 1} (used by the signed ones),
# all float32 tensors; the result may leave [0, 255] (apply_op clips it). The
# geometric ones (rotate, shears, translations) return their 6 PIL affine
# coefficients instead, and enter _OPS wrapped by _geometric.

def _auto_contrast(image, level, sign):
    """timm AutoContrast (PIL `ImageOps.autocontrast`): each channel stretched to [0, 255]."""
    del level, sign
    low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    scale = tf.where(high > low, 255.0 / tf.maximum(high - low, 1e-6), 1.0)
    return tf.where(high > low, (image - low) * scale, image)


def _equalize(image, level, sign):
    """timm Equalize (PIL `ImageOps.equalize`): per-channel histogram equalisation."""
    del level, sign
    channels = tf.unstack(tf.round(image), axis=-1)
    return tf.stack([_equalize_channel(c) for c in channels], axis=-1)


def _invert(image, level, sign):
    """timm Invert: `255 - x`."""
    del level, sign
    return 255.0 - image


def _rotate(image, level, sign):
    """timm Rotate: PIL `rotate(sign * 30 * level)`, degrees anticlockwise about the centre."""
    angle = level * sign * 30.0 * math.pi / 180.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    shape = tf.cast(tf.shape(image), tf.float32)
    cx, cy = shape[1] / 2, shape[0] / 2
    return [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy]


def _posterize(image, level, sign):
    """timm PosterizeIncreasing: keeps the `4 - int(4 * level)` most significant bits."""
    del sign
    bits = 4 - tf.cast(level * 4, tf.int32)
    shift = tf.cast(8 - bits, tf.int32)
    values = tf.cast(tf.round(image), tf.int32)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(values, shift), shift),
                   tf.float32)


def _solarize(image, level, sign):
    """timm SolarizeIncreasing: inverts values >= `256 - 256 * level`."""
    del sign
    threshold = 256.0 - level * 256.0
    return tf.where(image >= threshold, 255.0 - image, image)


def _solarize_add(image, level, sign):
    """timm SolarizeAdd: adds `int(110 * level)` to values below 128 (capped at 255)."""
    del sign
    return tf.where(image < 128.0, tf.minimum(image + tf.floor(level * 110.0), 255.0), image)


def _enhance(image, degenerate, level, sign):
    """PIL `ImageEnhance`: blends from `degenerate` by `1 + sign * 0.9 * level`."""
    return _blend(image, degenerate, 1.0 + level * sign * 0.9)


def _color(image, level, sign):
    """timm ColorIncreasing: saturation, blending from the grey (luma) image."""
    return _enhance(image, _grey(image) + tf.zeros_like(image), level, sign)


def _contrast(image, level, sign):
    """timm ContrastIncreasing: blending from the mean grey level."""
    return _enhance(image, tf.reduce_mean(_grey(image)) + tf.zeros_like(image), level, sign)


def _brightness(image, level, sign):
    """timm BrightnessIncreasing: blending from black."""
    return _enhance(image, tf.zeros_like(image), level, sign)


def _sharpness(image, level, sign):
    """timm SharpnessIncreasing: blending from PIL's 3x3 `SMOOTH` filter (borders kept)."""
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    channels = image.shape[-1]
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
    # Border pixels keep their values, as PIL's smoothing filter.
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    mask = tf.pad(tf.ones_like(smooth[1:-1, 1:-1]), [[1, 1], [1, 1], [0, 0]])
    degenerate = mask * smooth + (1 - mask) * image
    return _enhance(image, degenerate, level, sign)


def _shear_x(image, level, sign):
    """timm ShearX: PIL affine `(1, s, 0, 0, 1, 0)`, `s = sign * 0.3 * level`."""
    one, zero = tf.constant(1.0), tf.constant(0.0)
    return [one, level * sign * 0.3, zero, zero, one, zero]


def _shear_y(image, level, sign):
    """timm ShearY: PIL affine `(1, 0, 0, s, 1, 0)`, `s = sign * 0.3 * level`."""
    one, zero = tf.constant(1.0), tf.constant(0.0)
    return [one, zero, zero, level * sign * 0.3, one, zero]


def _translate_x(image, level, sign):
    """timm TranslateXRel: PIL affine `(1, 0, t W, 0, 1, 0)`, `t = sign * 0.45 * level`."""
    one, zero = tf.constant(1.0), tf.constant(0.0)
    offset = level * sign * 0.45 * tf.cast(tf.shape(image)[1], tf.float32)
    return [one, zero, offset, zero, one, zero]


def _translate_y(image, level, sign):
    """timm TranslateYRel: PIL affine `(1, 0, 0, 0, 1, t H)`, `t = sign * 0.45 * level`."""
    one, zero = tf.constant(1.0), tf.constant(0.0)
    offset = level * sign * 0.45 * tf.cast(tf.shape(image)[0], tf.float32)
    return [one, zero, zero, zero, one, offset]


# The operation set, by name, in the order of timm's _RAND_INCREASING_TRANSFORMS.
_OPS = types.MappingProxyType({
    "auto_contrast": _auto_contrast,
    "equalize": _equalize,
    "invert": _invert,
    "rotate": _geometric(_rotate),
    "posterize": _posterize,
    "solarize": _solarize,
    "solarize_add": _solarize_add,
    "color": _color,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
    "shear_x": _geometric(_shear_x),
    "shear_y": _geometric(_shear_y),
    "translate_x": _geometric(_translate_x),
    "translate_y": _geometric(_translate_y),
})
RAND_AUGMENT_OPS = tuple(_OPS)


def _finish(out, image):
    return tf.ensure_shape(tf.clip_by_value(out, 0.0, 255.0), image.shape)


def apply_op(name, image, level, sign=1.0):
    """Applies the RandAugment operation `name` once, at `level` in [0, 1].

    Args:
        name: one of `RAND_AUGMENT_OPS`.
        image: (H, W, C) on the 0-255 scale, C in {1, 3}.
        level: magnitude / 10, a float in [0, 1] (scalar tensor or number).
        sign: -1 or 1, the direction of the signed operations (rotation,
            shear, translation, enhancement factors); ignored by the others.

    Returns:
        float32 (H, W, C), clipped to [0, 255].

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.randaugment import apply_op
    img = tf.fill([8, 8, 3], 100.0)
    float(apply_op("invert", img, 0.9)[0, 0, 0])  # 155.0
    ```
    """
    if name not in _OPS:
        raise ValueError(f"unknown RandAugment operation; one of {RAND_AUGMENT_OPS}. Received: "
                         f"name={name!r}")
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    level = tf.cast(level, tf.float32)
    sign = tf.cast(sign, tf.float32)
    return _finish(_OPS[name](image, level, sign), image)


def _apply_indexed(index, image, level, sign):
    """Applies operation number `index` (an int32 scalar tensor) of `_OPS`.

    As `apply_op` by name, but with one `_affine` for all geometric
    operations (a second switch picks their coefficients): a copy per
    geometric operation would slow every call, even with `prob=0`, by the
    untaken branches of a switch in a tf.data function.
    """
    ops = tuple(_OPS.values())
    geometric = [i for i, op in enumerate(ops) if hasattr(op, "coefficients")]
    others = [i for i in range(len(ops)) if i not in geometric]
    # index -> branch of the outer switch (geometric: the last), and of the inner one
    branch = [others.index(i) if i in others else len(others) for i in range(len(ops))]
    inner = [geometric.index(i) if i in geometric else 0 for i in range(len(ops))]

    def coefficients(op):
        return tf.stack(op.coefficients(image, level, sign))

    def resample():
        chosen = tf.switch_case(tf.gather(inner, index),
                                [functools.partial(coefficients, ops[i]) for i in geometric])
        return _affine(image, tf.unstack(chosen))

    branches = [functools.partial(ops[i], image, level, sign) for i in others] + [resample]
    return _finish(tf.switch_case(tf.gather(branch, index), branches), image)


def _draw_ops(seed, num_ops, magnitude, magnitude_std, prob):
    """The random choices of `rand_augment`, one tuple per operation slot.

    Returns:
        list of `num_ops` tuples (index into `_OPS` int32, level =
        magnitude / 10 float32, sign float32 in {-1, 1}, applied bool), all
        scalars.
    """
    choices = []
    for op_seed in split_seed(seed, num_ops) if num_ops else []:
        draws = tf.random.stateless_uniform([3], op_seed)
        noise = tf.random.stateless_normal([], op_seed + 1)
        index = tf.minimum(tf.cast(draws[0] * len(_OPS), tf.int32), len(_OPS) - 1)
        level = tf.clip_by_value(magnitude + magnitude_std * noise, 0.0,
                                 _MAX_MAGNITUDE) / _MAX_MAGNITUDE
        sign = tf.where(draws[1] < 0.5, -1.0, 1.0)
        choices.append((index, level, sign, draws[2] < prob))
    return choices


def rand_augment(image, seed, num_ops=2, magnitude=9.0, magnitude_std=0.5, prob=0.5):
    """RandAugment on one image (timm's `rand-m{magnitude}-mstd{std}-inc1`).

    Draws `num_ops` operations uniformly (with replacement) from
    `RAND_AUGMENT_OPS`; each is applied with probability `prob` at a
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
    ```python
    import tensorflow as tf
    from keras_mae.data.randaugment import rand_augment
    img = tf.fill([8, 8, 3], 100.0)
    rand_augment(img, tf.constant([1, 2])).shape  # TensorShape([8, 8, 3])
    ```
    """
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0. Received: num_ops={num_ops!r}")
    if not 0 <= magnitude <= _MAX_MAGNITUDE:
        raise ValueError(f"magnitude must be in [0, 10]. Received: magnitude={magnitude!r}")
    if magnitude_std < 0:
        raise ValueError(f"magnitude_std must be >= 0. Received: magnitude_std={magnitude_std!r}")
    check_probability("prob", prob)
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    for index, level, sign, applied in _draw_ops(seed, num_ops, magnitude, magnitude_std, prob):
        image = tf.cond(applied,
                        lambda i=image, x=index, lv=level, s=sign: _apply_indexed(x, i, lv, s),
                        lambda i=image: i)
    return image
