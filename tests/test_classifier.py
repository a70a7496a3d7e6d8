import keras
import numpy as np
import pytest
from conftest import random_images, to_numpy

from keras_mae.ops import interpolate_pos_embed
from keras_mae.models import ViTEncoder
from keras_mae.models.classifier import ViTClassifier
from keras_mae.optimizers import LayerDecayAdamW

ARCH = dict(image_size=16, patch_size=8, hidden_dim=16, depth=2, num_heads=2, seed=0)


def tiny_encoder(**overrides):
    encoder = ViTEncoder(**{**ARCH, **overrides})
    encoder.build()
    return encoder


def test_classifier_uses_the_encoder_object_and_pools():
    encoder = tiny_encoder()
    images = random_images(3, size=16)
    cls_model = ViTClassifier(encoder, 5, pooling="cls")
    assert cls_model.encoder is encoder
    np.testing.assert_allclose(to_numpy(cls_model.features(images)),
                               to_numpy(encoder(images))[:, 0], rtol=1e-5, atol=1e-6)
    assert to_numpy(cls_model(images)).shape == (3, 5)
    copy = encoder.copy(drop_path_rate=0.1)
    np.testing.assert_array_equal(to_numpy(copy(images)), to_numpy(encoder(images)))
    avg = ViTClassifier(copy, 5, pooling="avg")
    assert avg.encoder.drop_path_rate == 0.1
    assert avg.encoder.blocks[-1].drop_path.rate == pytest.approx(0.1)
    # avg: fc_norm(mean of pre-norm patch tokens); fc_norm starts as a plain LayerNorm
    x = avg.encoder.embed_patches(avg.encoder.patchify(images))
    cls = avg.encoder.cls_token + avg.encoder.position_embedding.cls_row
    x = keras.ops.concatenate([keras.ops.broadcast_to(cls, (3, 1, 16)), x], axis=1)
    for block in avg.encoder.blocks:
        x = block(x)
    mean = to_numpy(x)[:, 1:].mean(1)
    expected = (mean - mean.mean(-1, keepdims=True)) / np.sqrt(mean.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(to_numpy(avg.features(images)), expected, rtol=1e-4, atol=1e-4)
    assert not avg.encoder.norm.trainable and encoder.norm.trainable
    # the copy holds its own variables
    avg.encoder.cls_token.assign(np.zeros((1, 1, 16), "float32"))
    assert np.abs(to_numpy(encoder.cls_token)).sum() > 0


def test_head_initialisation():
    model = ViTClassifier(ViTEncoder(**ARCH), 3, head_init_std=0.01, head_batch_norm=True)
    model.build()
    kernel = to_numpy(model.head.kernel)
    assert 0.005 < kernel.std() < 0.015 and np.abs(kernel).max() <= 0.02 + 1e-6
    assert np.all(to_numpy(model.head.bias) == 0)
    assert model.head_norm.center is False and model.head_norm.scale is False
    assert model.head_norm.epsilon == 1e-6


def test_layer_decay_multipliers_on_real_paths():
    model = ViTClassifier(ViTEncoder(**ARCH, name="encoder"), 4, pooling="avg",
                          name="vit_classifier")
    model.build()
    optimizer = LayerDecayAdamW(1e-3, num_layers=2, layer_decay=0.5, weight_decay=0.05)
    optimizer.build(model.trainable_variables)
    multipliers = optimizer.learning_rate_multipliers
    expected = {
        "vit_classifier/encoder/cls_token": 0.125,
        "vit_classifier/encoder/patch_embedding/projection/kernel": 0.125,
        "vit_classifier/encoder/patch_embedding/projection/bias": 0.125,
        "vit_classifier/encoder/encoder_block_0/attention/qkv/kernel": 0.25,
        "vit_classifier/encoder/encoder_block_0/norm1/gamma": 0.25,
        "vit_classifier/encoder/encoder_block_1/fc2/bias": 0.5,
        "vit_classifier/fc_norm/gamma": 1.0,
        "vit_classifier/head/kernel": 1.0,
        "vit_classifier/head/bias": 1.0,
    }
    for path, value in expected.items():
        assert multipliers[path] == value, path
    # every trainable variable is assigned; the bypassed encoder norm is frozen
    assert set(multipliers) == {v.path for v in model.trainable_variables}
    assert not any("encoder_norm" in p for p in multipliers)
    assert len(multipliers) == 2 + 1 + 2 * 12 + 4


def test_other_image_size_interpolates_positions():
    encoder = tiny_encoder()
    model = ViTClassifier(encoder.copy(image_size=24), 2)
    table = to_numpy(model.encoder.position_embedding.table)
    assert table.shape == (1 + 9, 16)
    expected = interpolate_pos_embed(to_numpy(encoder.position_embedding.table), (3, 3))
    np.testing.assert_allclose(table, expected, rtol=1e-6, atol=1e-6)
    assert to_numpy(model(random_images(1, size=24))).shape == (1, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling='max'"):
        ViTClassifier(ViTEncoder(**ARCH), 3, pooling="max")
    with pytest.raises(ValueError, match="num_classes"):
        ViTClassifier(ViTEncoder(**ARCH), 0)
    with pytest.raises(ValueError, match="ViTEncoder.*encoder='encoder.keras'"):
        ViTClassifier("encoder.keras", 3)
    with pytest.raises(ValueError, match="ViTClassifier: the dtype policy 'mixed_bfloat16' differs"):
        ViTClassifier(ViTEncoder(**ARCH), 3, dtype="mixed_bfloat16")
    model = ViTClassifier(tiny_encoder(), 2)
    with pytest.raises(ValueError, match="16"):
        model(random_images(1, size=24))


@pytest.mark.parametrize("pooling", ["avg", "cls"])
def test_feature_model_predicts_the_inference_features(pooling):
    model = ViTClassifier(tiny_encoder(drop_path_rate=0.2), 5, pooling=pooling)
    images = random_images(6, size=16)
    want = to_numpy(model.features(images, training=False))
    got = model.feature_model().predict(images, batch_size=4, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
