import numpy as np
import pytest

from conftest import gradients_of_weighted_sum, to_numpy
from keras_mae import ops as mae_ops


def reference_patchify_nchw(images_nhwc, p):
    """The official layout written with numpy on NCHW input: 'nchpwq->nhwpqc'."""
    x = np.transpose(images_nhwc, (0, 3, 1, 2))
    n, c, hh, ww = x.shape
    h, w = hh // p, ww // p
    x = x.reshape(n, c, h, p, w, p)
    x = np.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, h * w, p * p * c)


@pytest.mark.parametrize("shape,p", [((2, 32, 32, 3), 4), ((1, 16, 24, 1), 8), ((3, 12, 6, 5), 3)])
def test_patchify_matches_official_layout_and_inverts(shape, p):
    x = np.random.RandomState(0).rand(*shape).astype("float32")
    patches = to_numpy(mae_ops.patchify(x, p))
    np.testing.assert_array_equal(patches, reference_patchify_nchw(x, p))
    grid = (shape[1] // p, shape[2] // p)
    back = to_numpy(mae_ops.unpatchify(patches, p, grid, shape[3]))
    np.testing.assert_array_equal(back, x)


def test_patchify_rejects_indivisible_sides():
    with pytest.raises(ValueError, match=r"divisible by the patch size 8.*\(30, 32\)"):
        mae_ops.patchify(np.zeros((1, 30, 32, 3), "float32"), 8)


def test_unpatchify_rejects_wrong_grid():
    with pytest.raises(ValueError, match="grid"):
        mae_ops.unpatchify(np.zeros((1, 10, 48), "float32"), 4, (3, 3), 3)


def test_sincos_table_layout():
    dim, grid = 16, (3, 5)
    table = mae_ops.sincos_2d_table(dim, grid)
    assert table.shape == (1 + 15, dim) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0], 0.0)
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter) / quarter)
    for row in range(grid[0]):
        for col in range(grid[1]):
            expected = np.concatenate([
                np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)
            ])
            np.testing.assert_allclose(table[1 + row * grid[1] + col], expected, atol=1e-6)


def test_sincos_requires_width_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4.*18"):
        mae_ops.sincos_2d_table(18, (2, 2))


def test_norm_pix_target_uses_unbiased_variance():
    x = np.random.RandomState(0).rand(2, 5, 48).astype("float32") * 3 + 1
    t = to_numpy(mae_ops.norm_pix_target(x))
    np.testing.assert_allclose(t.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(t.var(-1, ddof=1), 1.0, atol=1e-4)
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(t, expected, rtol=1e-5, atol=1e-5)


def test_masked_patch_loss_is_official_formula_and_ignores_visible():
    rng = np.random.RandomState(0)
    target = rng.rand(3, 8, 6).astype("float32")
    pred = rng.rand(3, 8, 6).astype("float32")
    mask = np.zeros((3, 8), "float32")
    for i in range(3):
        mask[i, rng.permutation(8)[:6]] = 1
    per_image = to_numpy(mae_ops.masked_patch_loss(target, pred, mask))
    per_patch = ((pred - target) ** 2).mean(-1)
    official = (per_patch * mask).sum() / mask.sum()
    np.testing.assert_allclose(per_image.mean(), official, rtol=1e-6)
    changed = pred.copy()
    changed[mask == 0] = 100.0
    np.testing.assert_allclose(to_numpy(mae_ops.masked_patch_loss(target, changed, mask)), per_image, rtol=1e-6)
    changed[0, np.argmax(mask[0])] += 1.0
    assert to_numpy(mae_ops.masked_patch_loss(target, changed, mask))[0] != pytest.approx(per_image[0])


@pytest.mark.parametrize("bad", [0, -2, (4,), (4, 0), "32", 3.5, True])
def test_to_pair_rejects(bad):
    with pytest.raises(ValueError, match="image_size"):
        mae_ops.to_pair(bad)


def test_gather_tokens_is_a_per_sample_row_gather_with_scatter_add_gradient():
    rng = np.random.RandomState(0)
    tokens = rng.randn(3, 7, 5).astype("float32")
    ids = np.array([[6, 0, 3, 3], [1, 2, 4, 5], [0, 0, 0, 6]], "int32")  # repeats add up
    out = to_numpy(mae_ops.gather_tokens(tokens, ids))
    np.testing.assert_array_equal(out, np.take_along_axis(tokens, ids[:, :, None], axis=1))
    weights = rng.randn(3, 4, 5).astype("float32")
    expected = np.zeros_like(tokens)
    for b in range(3):
        np.add.at(expected[b], ids[b], weights[b])
    (grad,) = gradients_of_weighted_sum(lambda t: mae_ops.gather_tokens(t, ids), [tokens], weights)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)
