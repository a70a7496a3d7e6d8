"""RandAugment op by op against a PIL transcription of timm 0.3.2's, and its sampling.

What the official MAE fine-tuning runs: `main_finetune.py` builds its training
transform with timm 0.3.2's `create_transform(input_size, is_training=True,
auto_augment='rand-m9-mstd0.5-inc1', interpolation='bicubic',
mean=IMAGENET_DEFAULT_MEAN, ...)`. In `transforms_imagenet_train` that gives
RandAugment the hparams `img_mean = tuple(min(255, round(255 * x)) for x in
mean)` = (124, 116, 104), the fill of the geometric operations, and, as the
interpolation is not 'random', `interpolation = _pil_interp('bicubic') =
Image.BICUBIC`: every Rotate, Shear and Translate resamples bicubically (the
random choice between bilinear and bicubic is only timm's default when no
interpolation is given). `rand_augment_transform` reads m9 (magnitude 9),
mstd0.5 (hparam `magnitude_std`) and inc1 (`_RAND_INCREASING_TRANSFORMS`);
`RandAugment` draws its 2 operations with `np.random.choice(ops, 2,
replace=True)`; each `AugmentOp` is skipped when `random.random() > 0.5`,
draws `random.gauss(9, 0.5)` clipped to [0, 10] and maps it to its argument
(`_rotate_level_to_arg` etc., `_randomly_negate` giving the signed ones a
random sign).

`_TIMM` below transcribes each operation with PIL as timm calls it, the sign
made an argument. Tolerances, measured on `_test_image()` with Pillow 13 (the
differences ours - PIL, in levels of 0-255, at magnitudes 3 to 10, both signs):

* exact: invert, posterize, solarize, solarize_add, equalize (integer lookup
  tables on integer pixels).
* auto_contrast: in [0, 1] (PIL truncates its lookup table to integers; ours
  is not quantised): measured max 1.0, mean 0.49.
* color, contrast, brightness, sharpness: in [-0.5, 1.5], mean <= 0.6. PIL
  rounds its degenerate image (the "L" conversion, the mean grey, the SMOOTH
  filter) and truncates the blend: measured -0.45 to 1.42, mean <= 0.58.
* rotate, shear_x, shear_y, translate_x, translate_y: in [0, 1] (same bicubic
  kernel, coordinates and fill as PIL; PIL truncates to uint8): measured max
  1.0, mean <= 0.49. (The bilinear TF projective transform used before
  differed by a mean of 0.5-3.3 levels and up to 73 at borders.)
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from keras_mae.data import randaugment
from keras_mae.data.randaugment import RAND_AUGMENT_OPS, apply_op, rand_augment

# timm 0.3.2 auto_augment._RAND_INCREASING_TRANSFORMS, in its order.
_RAND_INCREASING_TRANSFORMS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
    "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
    "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
    "TranslateYRel",
)
_FILL = tuple(min(255, round(255 * x)) for x in (0.485, 0.456, 0.406))  # timm img_mean
_RESAMPLE = Image.BICUBIC  # _pil_interp('bicubic'), fixed by create_transform


# ------------------------------------------------- timm's operations, with PIL

def _posterize(img, bits):
    if bits >= 8:
        return img
    # ImageOps.posterize's lookup table (Pillow >= 10 refuses bits=0, which the
    # Pillow of timm 0.3.2 accepted: magnitude 10 gives a black image).
    return img.point([i & ~(2 ** (8 - bits) - 1) for i in range(256)] * len(img.getbands()))


def _solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _affine(img, coefficients):
    return img.transform(img.size, Image.AFFINE, coefficients, resample=_RESAMPLE,
                         fillcolor=_FILL)


def _enhance_factor(m, sign):  # _enhance_increasing_level_to_arg
    return 1.0 + sign * (m / 10) * 0.9


# Our name -> (timm name, fn(PIL image, magnitude in [0, 10], sign)).
_TIMM = {
    "auto_contrast": ("AutoContrast", lambda img, m, s: ImageOps.autocontrast(img)),
    "equalize": ("Equalize", lambda img, m, s: ImageOps.equalize(img)),
    "invert": ("Invert", lambda img, m, s: ImageOps.invert(img)),
    "rotate": ("Rotate", lambda img, m, s: img.rotate(
        s * (m / 10) * 30.0, resample=_RESAMPLE, fillcolor=_FILL)),
    "posterize": ("PosterizeIncreasing", lambda img, m, s: _posterize(
        img, 4 - int((m / 10) * 4))),
    "solarize": ("SolarizeIncreasing", lambda img, m, s: ImageOps.solarize(
        img, 256 - int((m / 10) * 256))),
    "solarize_add": ("SolarizeAdd", lambda img, m, s: _solarize_add(img, int((m / 10) * 110))),
    "color": ("ColorIncreasing", lambda img, m, s: ImageEnhance.Color(img).enhance(
        _enhance_factor(m, s))),
    "contrast": ("ContrastIncreasing", lambda img, m, s: ImageEnhance.Contrast(img).enhance(
        _enhance_factor(m, s))),
    "brightness": ("BrightnessIncreasing", lambda img, m, s: ImageEnhance.Brightness(
        img).enhance(_enhance_factor(m, s))),
    "sharpness": ("SharpnessIncreasing", lambda img, m, s: ImageEnhance.Sharpness(
        img).enhance(_enhance_factor(m, s))),
    "shear_x": ("ShearX", lambda img, m, s: _affine(img, (1, s * (m / 10) * 0.3, 0, 0, 1, 0))),
    "shear_y": ("ShearY", lambda img, m, s: _affine(img, (1, 0, 0, s * (m / 10) * 0.3, 1, 0))),
    "translate_x": ("TranslateXRel", lambda img, m, s: _affine(
        img, (1, 0, s * (m / 10) * 0.45 * img.size[0], 0, 1, 0))),
    "translate_y": ("TranslateYRel", lambda img, m, s: _affine(
        img, (1, 0, 0, 0, 1, s * (m / 10) * 0.45 * img.size[1]))),
}

# (lowest, highest ours - PIL, highest mean |ours - PIL|), in levels; see the docstring.
_EXACT = (0.0, 0.0, 0.0)
_TRUNCATED = (0.0, 1.0, 0.55)
_ENHANCE = (-0.5, 1.5, 0.6)
_TOLERANCE = {
    "auto_contrast": _TRUNCATED, "equalize": _EXACT, "invert": _EXACT, "rotate": _TRUNCATED,
    "posterize": _EXACT, "solarize": _EXACT, "solarize_add": _EXACT, "color": _ENHANCE,
    "contrast": _ENHANCE, "brightness": _ENHANCE, "sharpness": _ENHANCE,
    "shear_x": _TRUNCATED, "shear_y": _TRUNCATED, "translate_x": _TRUNCATED,
    "translate_y": _TRUNCATED,
}
# Magnitudes 9 +- 0.5 is what the training draws; non-integer ones exercise the int() of timm.
_MAGNITUDES = (3.0, 6.5, 8.7, 9.0, 9.6, 10.0)


def _test_image(height=40, width=48, seed=0):
    """A uint8 (H, W, 3) natural-looking image: smooth gradients, shapes, noise, in [8, 232].

    Not square, so that width and height cannot be mixed up; not spanning 0-255,
    so that autocontrast changes it.
    """
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    y, x = y / height, x / width
    image = np.stack([40 + 150 * x + 30 * np.sin(6 * y), 60 + 120 * y + 20 * np.cos(5 * x),
                      90 + 60 * (1 - x) * y], axis=-1)
    image[(x - 0.68) ** 2 + (y - 0.35) ** 2 < 0.04] = (215, 190, 60)
    image[(x > 0.12) & (x < 0.4) & (y > 0.55) & (y < 0.85)] = (25, 40, 120)
    image[np.abs(x - y) < 0.03] = (200, 200, 200)
    image = image + rng.normal(0, 6, image.shape)
    return np.clip(np.round(image), 8, 232).astype(np.uint8)


_IMAGE = _test_image()


def _ours(name, magnitude, sign, image=_IMAGE):
    return apply_op(name, tf.constant(image, tf.float32), tf.constant(magnitude / 10, tf.float32),
                    tf.constant(sign, tf.float32)).numpy().astype(np.float64)


def _timm(name, magnitude, sign, image=_IMAGE):
    return np.asarray(_TIMM[name][1](Image.fromarray(image), magnitude, sign), np.float64)


def test_operation_set_and_order_are_timms():
    assert tuple(_TIMM) == RAND_AUGMENT_OPS
    assert tuple(_TIMM[name][0] for name in RAND_AUGMENT_OPS) == _RAND_INCREASING_TRANSFORMS
    assert _FILL == (124, 116, 104)


@pytest.mark.parametrize("name", RAND_AUGMENT_OPS)
def test_operation_matches_timm(name):
    low, high, mean_max = _TOLERANCE[name]
    for magnitude in _MAGNITUDES:
        for sign in (-1.0, 1.0):
            diff = _ours(name, magnitude, sign) - _timm(name, magnitude, sign)
            where = f"{name} magnitude {magnitude} sign {sign:+g}"
            assert diff.min() >= low - 1e-3, f"{where}: ours - PIL down to {diff.min():.3f}"
            assert diff.max() <= high + 1e-3, f"{where}: ours - PIL up to {diff.max():.3f}"
            assert np.abs(diff).mean() <= mean_max + 1e-6, (
                f"{where}: mean |ours - PIL| {np.abs(diff).mean():.3f}")


@pytest.mark.parametrize("name", RAND_AUGMENT_OPS)
def test_operation_changes_the_image_at_magnitude_9(name):
    for sign in (-1.0, 1.0):
        ours = _ours(name, 9.0, sign)
        assert np.abs(ours - _IMAGE).mean() > 1.0, f"{name} {sign:+g} is (nearly) the identity"
        assert np.abs(_timm(name, 9.0, sign) - _IMAGE).mean() > 1.0  # the image suits the op


def test_apply_op_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown RandAugment operation"):
        apply_op("cutout", _IMAGE.astype("float32"), 0.5)


def test_rand_augment_applies_its_drawn_operations_by_name():
    """The output is the chain of the drawn (index -> name, level, sign) operations that apply."""
    image = tf.constant(_IMAGE[:24, :28], tf.float32)
    applied_any = 0
    for s in range(24):
        seed = tf.constant([s, 5], tf.int64)
        expected = image
        for index, level, sign, applied in randaugment._draw_ops(seed, 2, 9.0, 0.5, 0.5):
            if bool(applied):
                applied_any += 1
                expected = apply_op(RAND_AUGMENT_OPS[int(index)], expected, level, sign)
        np.testing.assert_array_equal(rand_augment(image, seed).numpy(), expected.numpy())
    assert applied_any > 10


def _draws(n, num_ops, magnitude, magnitude_std, prob, stream=7):
    """(n, num_ops) arrays of op index, level, sign and applied, drawn in a tf.data map."""
    def draw(i):
        choices = randaugment._draw_ops(tf.stack([i, tf.constant(stream, tf.int64)]), num_ops,
                                        magnitude, magnitude_std, prob)
        return tuple(tf.stack([c[k] for c in choices]) for k in range(4))

    ds = tf.data.Dataset.range(n).map(draw).batch(n)
    return [x.numpy() for x in next(iter(ds))]


def _within_sigmas(count, n, p, sigmas=4.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def _ks(a, b):
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.max(np.abs(cdf(a) - cdf(b))))


def test_sampling_matches_timms_policy():
    """rand-m9-mstd0.5, 2 ops: uniform with replacement, N(9, 0.5) clipped, p 0.5, random signs."""
    n = 6000
    index, level, sign, applied = _draws(n, 2, 9.0, 0.5, 0.5)
    slots = index.size
    counts = np.bincount(index.ravel(), minlength=len(RAND_AUGMENT_OPS))
    assert len(counts) == len(RAND_AUGMENT_OPS)
    p = 1 / len(RAND_AUGMENT_OPS)
    for name, count in zip(RAND_AUGMENT_OPS, counts):
        assert _within_sigmas(count, slots, p), f"{name} drawn {count} times of {slots}"
    # with replacement and independent: the two slots agree with probability 1/15
    assert _within_sigmas(np.sum(index[:, 0] == index[:, 1]), n, p)
    assert _within_sigmas(np.sum(applied), slots, 0.5)
    assert _within_sigmas(np.sum(sign < 0), slots, 0.5)
    assert set(np.unique(sign)) == {-1.0, 1.0}
    # the magnitude: random.gauss(9, 0.5) clipped to [0, 10], drawn per slot
    magnitude = level.ravel() * 10
    reference = np.clip(np.random.RandomState(0).normal(9.0, 0.5, slots), 0, 10)
    assert _ks(magnitude, reference) < 1.95 * math.sqrt(2 / slots)  # KS at significance 1e-3
    assert magnitude.min() >= 0 and magnitude.max() <= 10 + 1e-5
    clipped = 1 - 0.5 * (1 + math.erf(2 / math.sqrt(2)))  # P(N(9, 0.5) > 10): exactly 10
    assert _within_sigmas(np.sum(np.abs(magnitude - 10) < 1e-5), slots, clipped)
    assert np.corrcoef(magnitude[::2], magnitude[1::2])[0, 1] < 0.05  # independent per slot


def test_sampling_follows_its_arguments():
    index, level, sign, applied = _draws(3000, 3, 4.0, 2.0, 0.2, stream=8)
    assert index.shape == (3000, 3)
    assert _within_sigmas(np.sum(applied), applied.size, 0.2)
    magnitude = level.ravel() * 10
    reference = np.clip(np.random.RandomState(1).normal(4.0, 2.0, magnitude.size), 0, 10)
    assert _ks(magnitude, reference) < 1.95 * math.sqrt(2 / magnitude.size)
    _, level, _, _ = _draws(200, 2, 7.0, 0.0, 0.5)
    np.testing.assert_allclose(level, 0.7, rtol=1e-6)
