import math

import numpy as np
import pytest
import tensorflow as tf

from keras_mae.data.erasing import random_erasing
from keras_mae.data.finetune_pipeline import finetune_dataset
from keras_mae.data.mixing import mixup_cutmix, one_hot_smoothed
from keras_mae.data.randaugment import RAND_AUGMENT_OPS, apply_op, rand_augment


def seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def labelled_batch(n=6, size=16, classes=5):
    rng = np.random.RandomState(0)
    images = tf.constant(rng.rand(n, size, size, 3).astype("float32"))
    labels = tf.constant(np.arange(n) % classes)
    return images, labels


def test_one_hot_smoothed_rows_sum_to_one():
    y = one_hot_smoothed(tf.constant([0, 2]), 4, smoothing=0.1).numpy()
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [0.925, 0.025, 0.025, 0.025], rtol=1e-6)


def test_mixup_mixes_images_and_targets_with_one_coefficient():
    images, labels = labelled_batch()
    x, y, lam = mixup_cutmix(images, labels, 5, seed(3), mixup_alpha=0.8, cutmix_alpha=0.0,
                             smoothing=0.1)
    lam = float(lam)
    assert 0.0 <= lam <= 1.0
    np.testing.assert_allclose(x.numpy(), lam * images.numpy() + (1 - lam) * images.numpy()[::-1],
                               rtol=1e-5, atol=1e-6)
    smooth = one_hot_smoothed(labels, 5, 0.1).numpy()
    np.testing.assert_allclose(y.numpy(), lam * smooth + (1 - lam) * smooth[::-1], rtol=1e-5)
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, rtol=1e-5)


def test_cutmix_lambda_is_the_kept_area():
    images, labels = labelled_batch()
    for s in range(5):
        x, y, lam = mixup_cutmix(images, labels, 5, seed(s), mixup_alpha=0.0,
                                 cutmix_alpha=1.0, smoothing=0.0)
        pasted = np.any(x.numpy() != images.numpy(), axis=(0, 3))  # (H, W) where the box is
        flipped_differs = np.any(images.numpy() != images.numpy()[::-1], axis=(0, 3))
        assert np.all(flipped_differs)
        kept = 1.0 - pasted.sum() / pasted.size
        assert float(lam) == pytest.approx(kept, abs=1e-6)
        expected = float(lam) * np.eye(5)[labels.numpy()] + (1 - float(lam)) * np.eye(5)[
            labels.numpy()[::-1]]
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y.numpy().sum(1), 1.0, rtol=1e-5)


def test_switch_and_determinism():
    images, labels = labelled_batch()
    first = mixup_cutmix(images, labels, 5, seed(7))
    again = mixup_cutmix(images, labels, 5, seed(7))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = mixup_cutmix(images, labels, 5, seed(8))
    assert float(other[2]) != float(first[2])
    # switch_prob 1 -> always cutmix: pixels are either kept or pasted, never blended
    x, _, _ = mixup_cutmix(images, labels, 5, seed(1), switch_prob=1.0)
    same = np.isclose(x.numpy(), images.numpy()) | np.isclose(x.numpy(), images.numpy()[::-1])
    assert same.all()
    # prob 0 -> untouched images, smoothed targets
    x, y, lam = mixup_cutmix(images, labels, 5, seed(1), prob=0.0)
    np.testing.assert_array_equal(x.numpy(), images.numpy())
    assert float(lam) == 1.0


def test_random_erasing_area_and_determinism():
    image = tf.fill([20, 20, 3], 5.0)
    erased_any = False
    for s in range(20):
        out = random_erasing(image, seed(s), prob=1.0).numpy()
        changed = np.any(out != 5.0, axis=-1)
        assert changed.sum() <= math.ceil(20 * 20 / 3) + 20  # max area, rounding of sides
        erased_any |= bool(changed.any())
        again = random_erasing(image, seed(s), prob=1.0).numpy()
        np.testing.assert_array_equal(out, again)
        if changed.any():
            rows, cols = np.where(changed)
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert box == changed.sum()  # one rectangle
            assert changed.sum() >= 0.02 * 400 * 0.5
    assert erased_any
    untouched = random_erasing(image, seed(0), prob=0.0).numpy()
    np.testing.assert_array_equal(untouched, image.numpy())


def test_rand_augment_every_op_and_determinism():
    rng = np.random.RandomState(1)
    image = tf.constant(rng.randint(0, 256, (12, 12, 3)).astype("float32"))
    for name in RAND_AUGMENT_OPS:
        out = apply_op(name, image, tf.constant(0.9), tf.constant(1.0))
        assert out.shape == image.shape
        assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255
    inverted = apply_op("invert", image, tf.constant(0.5), tf.constant(1.0))
    np.testing.assert_allclose(inverted.numpy(), 255 - image.numpy())
    a = rand_augment(image, seed(4)).numpy()
    b = rand_augment(image, seed(4)).numpy()
    np.testing.assert_array_equal(a, b)
    outs = [rand_augment(image, seed(s), prob=1.0).numpy() for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    np.testing.assert_array_equal(rand_augment(image, seed(4), num_ops=0).numpy(),
                                  image.numpy())


def test_rand_augment_ops_are_selected_by_name():
    from keras_mae.data import randaugment

    assert RAND_AUGMENT_OPS == tuple(randaugment._OPS)
    assert len(set(RAND_AUGMENT_OPS)) == 15
    grey = tf.constant(np.random.RandomState(2).randint(0, 256, (10, 14, 1)).astype("float32"))
    for index, name in enumerate(RAND_AUGMENT_OPS):
        for image in (grey, tf.tile(grey, [1, 1, 3])):
            by_name = apply_op(name, image, 0.8, -1.0).numpy()
            # the index a sampled op carries
            by_index = randaugment._apply_indexed(tf.constant(index), image, tf.constant(0.8),
                                                  tf.constant(-1.0)).numpy()
            np.testing.assert_array_equal(by_name, by_index)
            assert by_name.shape == image.shape
    with pytest.raises(ValueError, match="unknown"):
        apply_op("Rotate", grey, 0.5)


def test_finetune_dataset_is_deterministic_with_soft_targets():
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (16, 16, 16, 3)).astype("uint8")
    y = np.arange(16) % 4
    make = lambda: finetune_dataset((x, y), 16, 8, num_classes=4, seed=3)  # noqa: E731
    first = [(a.numpy(), b.numpy()) for a, b in make()]
    second = [(a.numpy(), b.numpy()) for a, b in make()]
    assert len(first) == 2
    for (a1, b1), (a2, b2) in zip(first, second):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
        assert a1.shape == (8, 16, 16, 3) and b1.shape == (8, 4)
        np.testing.assert_allclose(b1.sum(1), 1.0, rtol=1e-5)


def test_bad_arguments():
    images, labels = labelled_batch()
    with pytest.raises(ValueError, match="switch_prob"):
        mixup_cutmix(images, labels, 5, seed(0), switch_prob=2.0)
    with pytest.raises(ValueError, match="magnitude"):
        rand_augment(images[0], seed(0), magnitude=11)
    with pytest.raises(ValueError, match="num_classes"):
        finetune_dataset("digits", 16, 8, num_classes=0)


def _mixed_labels(size=64, classes=64):
    rng = np.random.RandomState(1)
    return (rng.randint(0, 256, (size, 8, 8, 3)).astype("uint8"),
            np.arange(size) % classes)


def _plain_mix(x, y, **kwargs):
    args = dict(num_classes=64, seed=5, shuffle_buffer=0, rand_augment_ops=0, erasing_prob=0.0,
                mixup_alpha=0.8, cutmix_alpha=0.0, smoothing=0.0,
                reshuffle_each_iteration=False)
    args.update(kwargs)
    return finetune_dataset((x, y), 8, **args)


def test_finetune_mixes_each_group_of_32_with_its_own_draw():
    x, y = _mixed_labels()
    images, targets = next(iter(_plain_mix(x, y, batch_size=64)))
    targets = targets.numpy()
    lams = []
    for i in range(64):
        # unshuffled: row i holds image i; its partner is its mirror inside its group of 32
        partner = (i // 32) * 32 + 31 - i % 32
        want = np.zeros(64)
        lam = targets[i, i]
        want[i] += lam
        want[partner] += 1 - lam
        np.testing.assert_allclose(targets[i], want, atol=1e-6, err_msg=f"row {i}")
        lams.append(lam)
    assert abs(lams[0] - lams[32]) > 1e-3  # two groups, two coefficients
    assert np.allclose(lams[:32], lams[0]) and np.allclose(lams[32:], lams[32])
    whole = next(iter(_plain_mix(x, y, batch_size=64, mix_group_size=0)))[1].numpy()
    assert whole[0, 63] > 0  # the whole batch mixed with its reverse


def test_finetune_shards_and_resumed_steps_draw_what_one_worker_draws():
    x, y = _mixed_labels(128)
    common = dict(batch_size=64, mixup_alpha=0.8, cutmix_alpha=1.0, smoothing=0.1,
                  shuffle_buffer=1000, rand_augment_ops=2, erasing_prob=0.25, epoch=3)
    whole = [(a.numpy(), b.numpy()) for a, b in _plain_mix(x, y, **common)]
    parts = [[(a.numpy(), b.numpy()) for a, b in _plain_mix(x, y, num_shards=2, shard_index=w,
                                                            **common)] for w in (0, 1)]
    assert len(whole) == 2
    for step in range(2):
        for k in (0, 1):
            np.testing.assert_allclose(
                np.concatenate([parts[0][step][k], parts[1][step][k]]), whole[step][k],
                atol=1e-5)
    resumed = [(a.numpy(), b.numpy()) for a, b in _plain_mix(x, y, start_step=1, **common)]
    assert len(resumed) == 1
    np.testing.assert_allclose(resumed[0][0], whole[1][0], atol=1e-5)
    np.testing.assert_array_equal(resumed[0][1], whole[1][1])
    other_epoch = next(iter(_plain_mix(x, y, **dict(common, epoch=4))))
    assert not np.allclose(other_epoch[0].numpy(), whole[0][0])
    with pytest.raises(ValueError, match="mix_group_size=24"):
        _plain_mix(x, y, batch_size=64, mix_group_size=24)
