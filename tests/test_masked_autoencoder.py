import keras
import numpy as np
import pytest

import keras_mae
from conftest import random_images, random_noise, tiny_mae, to_numpy
from keras_mae import ops as mae_ops
from keras_mae.losses import MaskedReconstructionLoss


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_base_parameter_counts_match_official():
    model = keras_mae.models.mae_vit_base_patch16()
    model.build()
    assert count(model.trainable_weights) == 111_655_680
    assert count(model.encoder.trainable_weights) == 85_647_360
    # fixed sin-cos tables are weights but not trainable
    assert count(model.non_trainable_weights) >= 197 * 768 + 197 * 512


@pytest.mark.parametrize(
    "name,width,blocks,patch",
    [("mae_vit_tiny_patch4", 192, 12, 4), ("mae_vit_small_patch8", 384, 12, 8),
     ("mae_vit_large_patch16", 1024, 24, 16), ("mae_vit_huge_patch14", 1280, 32, 14)],
)
def test_config_factories(name, width, blocks, patch):
    model = getattr(keras_mae.models, name)(mask_ratio=0.5, seed=3, norm_pix_loss=True)
    assert (model.encoder.hidden_dim, model.encoder.depth, model.encoder.patch_size) == (width, blocks, patch)
    assert (model.mask_ratio, model.seed, model.norm_pix_loss) == (0.5, 3, True)


def test_unknown_config_name():
    with pytest.raises(ValueError, match="mae_vit_gigantic"):
        keras_mae.models.build("mae_vit_gigantic")


def test_outputs_and_noise_determinism():
    model = tiny_mae()
    x = random_images(3)
    noise = random_noise(3, 16)
    a = model(x, noise=noise, training=False)
    b = model(x, noise=noise, training=False)
    assert tuple(a["pred"].shape) == (3, 16, 8 * 8 * 3)
    assert tuple(a["mask"].shape) == (3, 16) and tuple(a["ids_restore"].shape) == (3, 16)
    for key in a:
        np.testing.assert_array_equal(to_numpy(a[key]), to_numpy(b[key]))
    np.testing.assert_array_equal(to_numpy(a["mask"]).sum(1), 12)
    expected = (np.argsort(np.argsort(noise, 1), 1) >= 4).astype("float32")
    np.testing.assert_array_equal(to_numpy(a["mask"]), expected)


def test_mask_ratio_for_one_call():
    model = tiny_mae()
    x, noise = random_images(3), random_noise(3, 16)
    half = model(x, noise=noise, mask_ratio=0.5, training=False)
    assert tuple(half["pred"].shape) == (3, 16, 8 * 8 * 3)
    expected = (np.argsort(np.argsort(noise, 1), 1) >= 8).astype("float32")
    np.testing.assert_array_equal(to_numpy(half["mask"]), expected)
    # the model's own ratio is untouched, for later calls and for training
    assert model.mask_ratio == 0.75 and model.random_masking.mask_ratio == 0.75
    np.testing.assert_array_equal(to_numpy(model(x, noise=noise)["mask"]).sum(1), 12)
    # same noise: the patches kept at 0.75 are among those kept at 0.5
    kept_75 = to_numpy(model(x, noise=noise)["mask"]) == 0
    assert np.all(to_numpy(half["mask"])[kept_75] == 0)


def test_same_seed_same_masks():
    x = random_images(4)
    m1 = to_numpy(tiny_mae(seed=7)(x)["mask"])
    m2 = to_numpy(tiny_mae(seed=7)(x)["mask"])
    m3 = to_numpy(tiny_mae(seed=8)(x)["mask"])
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_compute_loss_equals_reference_and_ignores_visible(norm_pix):
    model = tiny_mae(norm_pix_loss=norm_pix)
    x = random_images(2)
    out = model(x, noise=random_noise(2, 16))
    loss = float(to_numpy(model.compute_loss(x=x, y_pred=out)))
    pred, mask = to_numpy(out["pred"]), to_numpy(out["mask"])
    target = to_numpy(mae_ops.patchify(x, 8))
    if norm_pix:
        target = (target - target.mean(-1, keepdims=True)) / np.sqrt(
            target.var(-1, ddof=1, keepdims=True) + 1e-6)
    per_patch = ((pred - target) ** 2).mean(-1)
    assert loss == pytest.approx((per_patch * mask).sum() / mask.sum(), rel=1e-5)
    if not norm_pix:  # the loss on its own targets raw pixels by default (official norm_pix_loss=False)
        default = MaskedReconstructionLoss()(mae_ops.patchify(x, 8), {"pred": pred, "mask": mask})
        assert float(to_numpy(default)) == pytest.approx(loss, rel=1e-5)
    pred_changed = np.where(mask[..., None] == 0, 1e3, pred)
    changed = model.compute_loss(x=x, y_pred={"pred": pred_changed, "mask": mask})
    assert float(to_numpy(changed)) == pytest.approx(loss, rel=1e-6)


def test_visible_patches_feed_decoder_in_place():
    """The decoder sees the encoded visible tokens at their own positions."""
    model = tiny_mae()
    x = random_images(2)
    noise = random_noise(2, 16)
    base = to_numpy(model(x, noise=noise)["pred"])
    mask = to_numpy(model(x, noise=noise)["mask"])
    # changing a removed patch's pixels must not change any prediction
    x2 = x.copy()
    patch = np.argmax(mask[0])
    row, col = divmod(patch, 4)
    x2[0, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 1.0
    np.testing.assert_allclose(to_numpy(model(x2, noise=noise)["pred"]), base, atol=1e-6)
    # changing a visible patch's pixels changes predictions
    patch = np.argmin(mask[0])
    row, col = divmod(patch, 4)
    x2[0, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 1.0
    assert np.abs(to_numpy(model(x2, noise=noise)["pred"]) - base).max() > 1e-4


def test_fit_lowers_loss_on_fixed_batch_for_every_batch_format():
    import tensorflow as tf

    model = tiny_mae(norm_pix_loss=False)
    x = random_images(8)
    noise = random_noise(8, 16)

    def fixed_loss():
        return float(to_numpy(model.compute_loss(x=x, y_pred=model(x, noise=noise))))

    before = fixed_loss()
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, beta_2=0.95, weight_decay=0.05))
    history = model.fit(x, batch_size=4, epochs=6, verbose=0)
    model.fit(x, np.arange(8), batch_size=4, epochs=2, verbose=0)
    model.fit(tf.data.Dataset.from_tensor_slices({"images": x, "labels": np.arange(8)}).batch(4),
              epochs=2, verbose=0)
    after = fixed_loss()
    assert after < 0.6 * before, (before, after)
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(after, rel=0.5)


def test_compile_rejects_a_loss():
    with pytest.raises(ValueError, match="loss='mse'"):
        tiny_mae().compile(optimizer="adam", loss="mse")


def test_encoder_runs_on_all_patches_and_saves_alone(tmp_path):
    model = tiny_mae()
    x = random_images(2)
    model(x)
    tokens = to_numpy(model.encoder(x))
    assert tokens.shape == (2, 17, 32)
    path = str(tmp_path / "encoder.keras")
    model.encoder.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), tokens, atol=1e-6)
    # with mask_ratio 0 and identity noise, the MAE's latent path equals the encoder
    encoder = model.encoder
    patches = encoder.patchify(x)
    latent = to_numpy(encoder.encode_tokens(encoder.embed_patches(patches)))
    np.testing.assert_allclose(latent, tokens, atol=1e-6)


@pytest.mark.parametrize(
    "images,match",
    [
        (np.zeros((2, 32, 32), "float32"), "rank 4"),
        (np.zeros((2, 32, 32, 1), "float32"), "3 channels"),
        (np.zeros((2, 30, 32, 3), "float32"), "divisible by the patch size 8"),
        (np.zeros((2, 64, 64, 3), "float32"), r"size \(32, 32\)"),
        (np.zeros((0, 32, 32, 3), "float32"), "empty batch"),
        (np.zeros((2, 32, 32, 3), "uint8"), "dtype=uint8"),
    ],
)
def test_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        tiny_mae()(images)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(mask_ratio=1.0), "mask_ratio=1.0"),
        (dict(mask_ratio=-0.5), "mask_ratio=-0.5"),
        (dict(mask_ratio=0.99), "no visible patch"),
        (dict(image_size=30), r"image_size=\(30, 30\)"),
        (dict(num_heads=5), "num_heads=5"),
        (dict(decoder_num_heads=3), "num_heads=3"),
        (dict(depth=0), "depth=0"),
    ],
)
def test_bad_config(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_mae(**overrides)


def test_bad_noise_shape():
    with pytest.raises(ValueError, match=r"noise.shape=\(2, 15\)"):
        tiny_mae()(random_images(2), noise=np.zeros((2, 15), "float32"))


def test_initialisation_as_official():
    model = tiny_mae()
    model.build()
    cls = to_numpy(model.encoder.cls_token)
    assert 0.005 < cls.std() < 0.05
    block = model.encoder.blocks[0]
    np.testing.assert_array_equal(to_numpy(block.fc1.bias), 0.0)
    np.testing.assert_array_equal(to_numpy(block.norm1.gamma), 1.0)
    kernel = to_numpy(block.fc1.kernel)
    limit = np.sqrt(6.0 / (32 + 128))
    assert np.abs(kernel).max() <= limit
