"""The pretraining and evaluation transforms against the official ones, by value and by distribution.

Official MAE pretraining (`main_pretrain.py`): `RandomResizedCrop(size, scale=(0.2, 1.0),
interpolation=3)` (bicubic), `RandomHorizontalFlip()`, `Normalize(mean=[0.485, 0.456,
0.406], std=[0.229, 0.224, 0.225])`. Evaluation (`util/datasets.py`): `Resize(int(size /
(224 / 256)), interpolation=3)` on the shorter side, `CenterCrop(size)`. torchvision's
RandomResizedCrop draws, up to 10 times, an area uniform in `scale` x the image area and
an aspect ratio log-uniform in `ratio`, `w = round(sqrt(area * ratio))`, `h = round(sqrt(area
/ ratio))`, and keeps the first box that fits; else the whole image clamped to `ratio`.
"""

import math

import numpy as np
import tensorflow as tf
from PIL import Image

from benchmarks.pil_reference import torchvision_crop_box
from keras_mae.data import (IMAGENET_MEAN, IMAGENET_STD, center_crop_resize, from_arrays,
                            pretrain_dataset, sample_crop_box)


def _torchvision_boxes(height, width, n, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), seed=0):
    """(n, 2) crop (h, w) drawn as torchvision's RandomResizedCrop.get_params, in numpy."""
    rng = np.random.RandomState(seed)
    return np.array([torchvision_crop_box(height, width, rng, scale, ratio)[2:]
                     for _ in range(n)], np.float64)


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.max(np.abs(cdf(a) - cdf(b))))


def _our_boxes(height, width, n, **kwargs):
    ds = tf.data.Dataset.range(n).map(
        lambda i: sample_crop_box(tf.constant([height, width, 3]), tf.stack([i, 11]), **kwargs))
    return next(iter(ds.batch(n))).numpy()


# KS critical value for two samples of 2000 at significance 1e-3: 1.95 * sqrt(2 / 2000)
KS_LIMIT = 0.062


def test_crop_box_distribution_is_torchvisions():
    n = 2000
    for height, width in ((64, 64), (20, 90)):  # the second often needs the fallback box
        ours = _our_boxes(height, width, n)[:, 2:].astype(np.float64)
        want = _torchvision_boxes(height, width, n)
        area = lambda b: b[:, 0] * b[:, 1] / (height * width)  # noqa: E731
        aspect = lambda b: np.log(b[:, 1] / b[:, 0])  # noqa: E731
        assert _ks(area(ours), area(want)) < KS_LIMIT, (height, width)
        assert _ks(aspect(ours), aspect(want)) < KS_LIMIT, (height, width)
    # the same test tells the official pretraining range from timm's default (0.08, 1)
    other = _torchvision_boxes(64, 64, n, scale=(0.08, 1.0))
    ours = _our_boxes(64, 64, n)[:, 2:].astype(np.float64)
    assert _ks(ours[:, 0] * ours[:, 1], other[:, 0] * other[:, 1]) > KS_LIMIT


def _ramp(height, width):
    """R = x, G = y ramps on 0..255, B constant: an output pixel tells where it was sampled."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([x / (width - 1) * 255, y / (height - 1) * 255,
                     np.full_like(x, 128.0)], -1).round().astype(np.uint8)


def test_pretrain_pipeline_crops_flips_and_normalises_as_the_official_transform():
    height = width = 64
    size, n = 32, 1500
    source = from_arrays(np.repeat(_ramp(height, width)[None], n, 0))
    batch = next(iter(pretrain_dataset(source, size, n, seed=3, shuffle_buffer=0)))
    pixels = batch.numpy() * np.array(IMAGENET_STD) * 255 + np.array(IMAGENET_MEAN) * 255
    # slope of the ramps in the interior (bicubic reproduces a linear ramp exactly there)
    inner = pixels[:, 8:-8, 8:-8]
    dx = np.median(np.diff(inner[..., 0], axis=2), axis=(1, 2))
    dy = np.median(np.diff(inner[..., 1], axis=1), axis=(1, 2))
    flipped = dx < 0
    # RandomHorizontalFlip(p=0.5): 3 standard deviations of a binomial of 1500
    assert abs(flipped.mean() - 0.5) < 3 * math.sqrt(0.25 / n)
    widths = np.abs(dx) * size * (width - 1) / 255
    heights = dy * size * (height - 1) / 255
    want = _torchvision_boxes(height, width, n, seed=1)
    assert _ks(widths * heights / (height * width), want[:, 0] * want[:, 1] / 4096) < 0.07
    assert _ks(np.log(widths / heights), np.log(want[:, 1] / want[:, 0])) < 0.07
    # the blue channel, constant 128, normalised with the published ImageNet constants
    np.testing.assert_allclose(batch.numpy()[..., 2], (128 / 255 - 0.406) / 0.225, atol=2e-3)


def test_imagenet_constants_are_the_published_ones():
    np.testing.assert_array_equal(np.array(IMAGENET_MEAN), [0.485, 0.456, 0.406])
    np.testing.assert_array_equal(np.array(IMAGENET_STD), [0.229, 0.224, 0.225])


def test_eval_transform_matches_pil_resize_and_centre_crop():
    """Resize(int(224 / 0.875) = 256 on the shorter side, bicubic) + CenterCrop(224), scaled down."""
    rng = np.random.RandomState(0)
    # a smooth image, so that the two bicubic kernels (TF's and PIL's, both a = -0.5) agree
    coarse = rng.randint(0, 256, (6, 8, 3)).astype(np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((80, 60), Image.BICUBIC))
    size, crop_pct = 28, 0.875
    short = int(size / crop_pct)  # 32
    resized = Image.fromarray(image).resize((int(short * 80 / 60), short), Image.BICUBIC)
    left = int(round((resized.width - size) / 2.0))
    top = int(round((resized.height - size) / 2.0))
    want = np.asarray(resized, np.float64)[top:top + size, left:left + size]
    ours = center_crop_resize(image, size, crop_pct=crop_pct).numpy()
    assert ours.shape == want.shape
    assert np.abs(ours - want).mean() < 1.0 and np.abs(ours - want).max() < 6.0
    # one pixel of offset, or another ratio, is far from it
    shifted = np.asarray(resized, np.float64)[top + 1:top + 1 + size, left:left + size]
    assert np.abs(ours - shifted).mean() > 2.0


def _timm_erasing_boxes(height, width, n, seed=0):
    """(n, 2) erased (h, w) of timm's RandomErasing(probability=1, mode="pixel"), in numpy."""
    rng = np.random.RandomState(seed)
    boxes = []
    for _ in range(n):
        box = (0, 0)
        for _ in range(10):
            target = rng.uniform(0.02, 1 / 3) * height * width
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                box = (h, w)
                break
        boxes.append(box)
    return np.array(boxes, np.float64)


def test_random_erasing_is_timms_pixel_mode():
    from keras_mae.data import random_erasing

    height, width, n = 24, 32, 1500
    image = tf.fill([height, width, 3], 5.0)
    erased = next(iter(tf.data.Dataset.range(n).map(
        lambda i: random_erasing(image, tf.stack([i, 5]), prob=1.0)).batch(n))).numpy()
    changed = erased != 5.0
    rows, cols = changed.any(axis=(2, 3)), changed.any(axis=(1, 3))
    sizes = np.stack([rows.sum(1), cols.sum(1)], 1).astype(np.float64)
    # one rectangle, every channel of it replaced
    np.testing.assert_array_equal(changed.sum(axis=(1, 2, 3)), sizes[:, 0] * sizes[:, 1] * 3)
    want = _timm_erasing_boxes(height, width, n)
    assert _ks(sizes[:, 0] * sizes[:, 1], want[:, 0] * want[:, 1]) < KS_LIMIT
    assert _ks(np.log(sizes[:, 0] / sizes[:, 1]), np.log(want[:, 0] / want[:, 1])) < KS_LIMIT
    # the fill is per-pixel, per-channel N(0, 1) noise
    noise = erased[changed]
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1.0) < 0.02
    assert np.mean(np.abs(np.diff(erased[0][changed[0]].reshape(-1, 3), axis=1)) > 0) > 0.99
    # probability 0.25: 3 standard deviations of a binomial
    gated = next(iter(tf.data.Dataset.range(n).map(
        lambda i: random_erasing(image, tf.stack([i, 6]), prob=0.25)).batch(n))).numpy()
    rate = np.mean((gated != 5.0).any(axis=(1, 2, 3)))
    assert abs(rate - 0.25) < 3 * math.sqrt(0.25 * 0.75 / n)


def test_rand_augment_geometric_fill_is_timms_mean_colour():
    """timm's create_transform(..., mean=IMAGENET_DEFAULT_MEAN): fillcolor round(255 * mean)."""
    from keras_mae.data.randaugment import apply_op

    image = tf.fill([16, 16, 3], 200.0)
    moved = apply_op("translate_x", image, 1.0, 1.0).numpy()
    # a shift of 0.45 x 16 = 7.2 columns: 7 columns of fill on one side, 8 of image on the other
    if moved[0, 0, 0] == 200.0:
        moved = moved[:, ::-1]
    exposed = moved[:, :7].reshape(-1, 3)
    np.testing.assert_allclose(exposed, np.broadcast_to([124.0, 116.0, 104.0], exposed.shape))
    np.testing.assert_allclose(moved[:, 8:], 200.0)
