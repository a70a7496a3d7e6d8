"""Invariants checked over many shapes and values (hypothesis; bounded and derandomized for CI)."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from conftest import to_numpy
from keras_mae import layers, ops as mae_ops
from keras_mae.data import augment
from keras_mae.data.order import epoch_key, epoch_records
from keras_mae.data.sources import from_arrays

BOUNDED = settings(max_examples=20, derandomize=True, deadline=None, database=None)


@BOUNDED
@given(batch=st.integers(1, 3), length=st.integers(2, 40), ratio=st.floats(0.0, 0.95),
       seed=st.integers(0, 2**16))
def test_masking_keeps_k_tokens_and_ids_restore_inverts_the_shuffle(batch, length, ratio, seed):
    keep = int(length * (1 - ratio))
    if keep < 1:
        return
    tokens = np.tile(np.arange(length, dtype="float32")[None, :, None], (batch, 1, 2))
    noise = np.random.RandomState(seed).rand(batch, length).astype("float32")
    visible, mask, ids_restore = (to_numpy(t) for t in layers.RandomMasking(ratio)(tokens, noise=noise))
    assert visible.shape == (batch, keep, 2) and mask.shape == (batch, length)
    ids_shuffle = np.argsort(noise, axis=1, kind="stable")
    for b in range(batch):
        kept = visible[b, :, 0].astype(int)
        np.testing.assert_array_equal(kept, ids_shuffle[b, :keep])  # lowest noise kept, in order
        np.testing.assert_array_equal(np.sort(ids_restore[b]), np.arange(length))
        np.testing.assert_array_equal(ids_shuffle[b][ids_restore[b]], np.arange(length))
        assert mask[b].sum() == length - keep
        np.testing.assert_array_equal(np.flatnonzero(mask[b] == 0), np.sort(kept))


@BOUNDED
@given(grid_h=st.integers(1, 5), grid_w=st.integers(1, 5), patch=st.integers(1, 6),
       channels=st.sampled_from([1, 3]))
def test_patchify_and_unpatchify_invert_each_other(grid_h, grid_w, patch, channels):
    images = np.random.RandomState(grid_h * 31 + grid_w).rand(
        2, grid_h * patch, grid_w * patch, channels).astype("float32")
    patches = to_numpy(mae_ops.patchify(images, patch))
    assert patches.shape == (2, grid_h * grid_w, patch * patch * channels)
    # patch k holds the pixels of row k // grid_w, column k % grid_w of the grid
    k = grid_h * grid_w - 1
    row, col = divmod(k, grid_w)
    np.testing.assert_array_equal(
        patches[0, k], images[0, row * patch:(row + 1) * patch, col * patch:(col + 1) * patch].ravel())
    restored = to_numpy(mae_ops.unpatchify(patches, patch, (grid_h, grid_w), channels))
    np.testing.assert_array_equal(restored, images)


@BOUNDED
@given(height=st.integers(4, 300), width=st.integers(4, 300), low=st.floats(0.05, 0.9),
       ratio_low=st.floats(0.3, 1.0), ratio_span=st.floats(1.0, 3.0), seed=st.integers(0, 2**20))
def test_crop_boxes_lie_inside_the_image_with_the_requested_area_and_ratio(
        height, width, low, ratio_low, ratio_span, seed):
    scale, ratio = (low, 1.0), (ratio_low, ratio_low * ratio_span)
    top, left, h, w = (int(v) for v in augment.sample_crop_box(
        tf.constant([height, width, 3]), tf.constant([seed, 7]), scale=scale, ratio=ratio))
    assert 1 <= h and 1 <= w and 0 <= top and 0 <= left
    assert top + h <= height and left + w <= width
    fallback = (top, left) == ((height - h) // 2, (width - w) // 2)
    # a sampled box: area and ratio drawn within the bounds, then each side rounded
    area_ok = scale[0] * height * width - (h + w + 1) / 2 <= h * w
    ratio_ok = (w - 0.5) / (h + 0.5) <= ratio[1] + 1e-6 and ratio[0] - 1e-6 <= (w + 0.5) / (h - 0.5)
    assert fallback or (area_ok and ratio_ok), (top, left, h, w)


@BOUNDED
@given(values=st.lists(st.integers(0, 254), min_size=1, max_size=30),
       fraction=st.floats(0.0, 0.999))
def test_float_images_become_uint8_by_rounding(values, fraction):
    # k + fraction over 255: rounding and truncation differ whenever fraction >= 0.5
    x = ((np.asarray(values, np.float64) + fraction) / 255.0).astype("float32").reshape(-1, 1, 1, 1)
    source = from_arrays(x)
    got = np.stack([element["images"].numpy() for element in source.dataset])
    np.testing.assert_array_equal(got, np.round(x.astype(np.float64) * 255.0).astype(np.uint8))


@BOUNDED
@given(num_examples=st.integers(1, 80), batch=st.integers(1, 16), shards=st.sampled_from([1, 2, 4]),
       epoch=st.integers(0, 3), drop=st.booleans())
def test_every_record_is_read_once_per_epoch_across_workers(num_examples, batch, shards, epoch,
                                                            drop):
    batch *= shards
    if shards > 1:
        drop = True
    key = epoch_key(5, 0, epoch)
    read = [int(i) for shard in range(shards)
            for i, _ in epoch_records(num_examples, batch, key, num_shards=shards, shard_index=shard,
                                      drop_remainder=drop)]
    expected = num_examples - num_examples % batch if drop else num_examples
    assert len(read) == expected and len(set(read)) == expected
    assert set(read) <= set(range(num_examples))


@settings(max_examples=6, derandomize=True, deadline=None, database=None)
@given(rate=st.floats(0.1, 0.9), branch=st.sampled_from(["attention", "mlp"]))
def test_stochastic_depth_drops_each_residual_branch_at_its_rate(rate, branch):
    block = layers.TransformerBlock(8, 2, drop_path_rate=rate, seed=3)
    x = np.random.RandomState(0).rand(2000, 3, 8).astype("float32")
    block(x[:1])
    silent = block.fc2 if branch == "attention" else block.attention.proj
    for weight in silent.weights:  # only the other branch adds anything
        weight.assign(np.zeros(weight.shape, "float32"))
    out = to_numpy(block(x, training=True))
    dropped = np.all(np.abs(out - x) < 1e-7, axis=(1, 2)).mean()
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / len(x)) + 1e-3, (branch, dropped)
    kept = ~np.all(np.abs(out - x) < 1e-7, axis=(1, 2))
    inference = to_numpy(block(x))
    # a kept branch is scaled by 1 / (1 - rate), as timm's DropPath
    np.testing.assert_allclose((out - x)[kept], ((inference - x) / (1 - rate))[kept], rtol=1e-3,
                               atol=1e-5)
