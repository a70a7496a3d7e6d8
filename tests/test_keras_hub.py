"""Conversion between `ViTEncoder` and KerasHub's `ViTBackbone`, and KerasHub presets.

Tiny models with every weight random (norm scales away from 1, biases away
from 0) so that a weight left uncopied changes the outputs; nothing is
downloaded.
"""

import math

import keras
import numpy as np
import pytest

from conftest import random_images, to_numpy
from keras_mae import ops as mae_ops
from keras_mae.models import ViTEncoder

keras_hub = pytest.importorskip("keras_hub")

from keras_mae.convert import from_keras_hub, save_keras_hub_preset, to_keras_hub  # noqa: E402

TOLERANCE = 1e-5
PRESET_TOLERANCE = 1e-6

SQUARE = dict(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4)
# Non-square, 2 channels, mlp_ratio 3 and an epsilon large enough that
# dropping it changes the outputs well beyond TOLERANCE.
WIDE = dict(
    image_size=(16, 32), patch_size=8, num_channels=2, hidden_dim=32, depth=1,
    num_heads=2, mlp_ratio=3.0, layer_norm_epsilon=1e-2,
)
ARCHS = {"square": SQUARE, "wide": WIDE}


def randomize(weights, seed=0):
    """Sets every weight random: kernels with unit-variance outputs, norm scales
    near 1, biases, offsets, tokens and tables of a few tenths."""
    rng = np.random.RandomState(seed)
    for variable in weights:
        shape = tuple(variable.shape)
        noise = rng.randn(*shape).astype("float32")
        name = variable.path.split("/")[-1]
        if name == "gamma":
            value = 1.0 + 0.2 * noise
        elif name != "kernel":  # biases, offsets, class token, position table
            value = 0.3 * noise
        elif len(shape) == 3:  # attention: query/key/value (D, H, d), output (H, d, D)
            value = noise / np.sqrt(shape[0] * shape[1] if "output" in variable.path else shape[0])
        else:  # Dense (in, out), Conv2D (p, p, C, D)
            value = noise / np.sqrt(math.prod(shape[:-1]))
        variable.assign(value)


def random_encoder(arch=SQUARE, seed=0, **overrides):
    encoder = ViTEncoder(**{**arch, **overrides}, seed=0)
    encoder.build()
    randomize(encoder.trainable_weights, seed)  # the sin-cos table stays
    return encoder


def random_backbone(seed=0, **overrides):
    config = dict(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=4,
        hidden_dim=32, mlp_dim=64,
    )
    config.update(overrides)
    backbone = keras_hub.models.ViTBackbone(**config)
    randomize(backbone.weights, seed)
    return backbone


def images_for(encoder, n=3, seed=0):
    return random_images(n, encoder.image_size, encoder.num_channels, seed=seed)


def max_diff(a, b):
    return float(np.abs(to_numpy(a) - to_numpy(b)).max())


def assert_same_weights(encoder, other):
    """Every variable of two encoders of one architecture equal, exactly."""
    assert len(encoder.weights) == len(other.weights)
    for ours, theirs in zip(encoder.weights, other.weights):
        assert ours.path.split("/", 1)[1] == theirs.path.split("/", 1)[1]
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs), err_msg=ours.path)


def hub_layers(backbone):
    return (backbone.get_layer("vit_patching_and_embedding"),
            backbone.get_layer("vit_encoder"))


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_to_keras_hub_equals_encoder(arch):
    encoder = random_encoder(arch)
    backbone = to_keras_hub(encoder)
    height, width = encoder.image_size
    assert tuple(backbone.image_shape) == (height, width, encoder.num_channels)
    assert tuple(backbone.patch_size) == (8, 8)
    assert backbone.num_layers == encoder.depth and backbone.num_heads == encoder.num_heads
    assert backbone.mlp_dim == int(encoder.hidden_dim * encoder.mlp_ratio)
    assert backbone.layer_norm_epsilon == encoder.layer_norm_epsilon
    images = images_for(encoder)
    expected = to_numpy(encoder(images))
    assert expected.shape == (3, 1 + encoder.num_patches, encoder.hidden_dim)
    assert max_diff(backbone(images), expected) <= TOLERANCE


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_round_trip_keeps_every_weight(arch):
    # Catches weights with no effect on the outputs too (the key bias, which
    # softmax cancels).
    encoder = random_encoder(arch, seed=1)
    back = from_keras_hub(to_keras_hub(encoder))
    config, back_config = encoder.get_config(), back.get_config()
    for key in ("name", "seed", "dtype"):
        config.pop(key), back_config.pop(key)
    assert back_config == config
    assert_same_weights(encoder, back)
    images = images_for(encoder)
    assert max_diff(back(images), encoder(images)) <= TOLERANCE


def test_learned_table_needs_keep_position_table():
    backbone = random_backbone()
    with pytest.raises(ValueError, match="keep_position_table=True") as error:
        from_keras_hub(backbone)
    assert "sin-cos" in str(error.value)

    encoder = from_keras_hub(backbone, keep_position_table=True)
    images = images_for(encoder)
    expected = to_numpy(backbone(images))
    assert max_diff(encoder(images), expected) <= TOLERANCE
    table = encoder.position_embedding.table
    embedding, _ = hub_layers(backbone)
    np.testing.assert_array_equal(
        to_numpy(table), to_numpy(embedding.position_embedding.embeddings))
    assert not table.trainable
    assert all(v is not table for v in encoder.trainable_weights)
    # Back to KerasHub with the learned table, class-token row included.
    assert max_diff(to_keras_hub(encoder)(images), expected) <= TOLERANCE


def test_class_token_row_folds_into_the_class_token():
    encoder = random_encoder()
    backbone = to_keras_hub(encoder)
    embedding, _ = hub_layers(backbone)
    table = to_numpy(embedding.position_embedding.embeddings).copy()
    table[0] = np.random.RandomState(3).randn(table.shape[1])
    embedding.position_embedding.embeddings.assign(table)
    converted = from_keras_hub(backbone)
    sincos = mae_ops.sincos_2d_table(encoder.hidden_dim, encoder.grid)
    np.testing.assert_array_equal(to_numpy(converted.position_embedding.table), sincos)
    images = images_for(encoder)
    assert max_diff(converted(images), backbone(images)) <= TOLERANCE


def test_backbone_without_biases():
    backbone = random_backbone(use_mha_bias=False, use_mlp_bias=False, use_patch_bias=False)
    encoder = from_keras_hub(backbone, keep_position_table=True)
    images = images_for(encoder)
    assert max_diff(encoder(images), backbone(images)) <= TOLERANCE
    np.testing.assert_array_equal(to_numpy(encoder.blocks[0].attention.qkv.bias), 0.0)


def test_mlp_dim_not_a_round_ratio():
    # 61 / 28 * 28 rounds below 61: the ratio needs nudging to keep the width.
    backbone = random_backbone(hidden_dim=28, num_heads=4, mlp_dim=61, num_layers=1)
    encoder = from_keras_hub(backbone, keep_position_table=True)
    assert encoder.blocks[0].mlp_hidden_dim == 61
    images = images_for(encoder)
    assert max_diff(encoder(images), backbone(images)) <= TOLERANCE


def test_channels_first():
    encoder = random_encoder(WIDE)
    backbone = to_keras_hub(encoder, data_format="channels_first")
    assert tuple(backbone.image_shape) == (2, 16, 32)
    images = images_for(encoder)
    expected = to_numpy(encoder(images))
    assert max_diff(backbone(np.transpose(images, (0, 3, 1, 2))), expected) <= TOLERANCE
    assert max_diff(from_keras_hub(backbone)(images), expected) <= TOLERANCE


def test_drop_path_needs_opt_in():
    encoder = random_encoder(drop_path_rate=0.1)
    with pytest.raises(ValueError, match="drop_path_rate=0.1") as error:
        to_keras_hub(encoder)
    assert "ignore_drop_path=True" in str(error.value)
    backbone = to_keras_hub(encoder, ignore_drop_path=True)
    images = images_for(encoder)
    assert max_diff(backbone(images), encoder(images, training=False)) <= TOLERANCE


def test_dropout_needs_opt_in():
    backbone = random_backbone(dropout_rate=0.1, num_layers=1)
    with pytest.raises(ValueError, match="dropout_rate=0.1") as error:
        from_keras_hub(backbone, keep_position_table=True)
    assert "ignore_dropout=True" in str(error.value)
    encoder = from_keras_hub(backbone, keep_position_table=True, ignore_dropout=True)
    images = images_for(encoder)
    assert max_diff(encoder(images), backbone(images, training=False)) <= TOLERANCE


def test_bad_encoders():
    with pytest.raises(ValueError, match="Received: str"):
        to_keras_hub("encoder")
    with pytest.raises(ValueError, match="not built"):
        to_keras_hub(ViTEncoder(**SQUARE))
    with pytest.raises(ValueError, match="data_format='nhwc'"):
        to_keras_hub(random_encoder(), data_format="nhwc")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(use_class_token=False), "use_class_token=False"),
        (dict(patch_size=(8, 4)), r"patch_size=\(8, 4\)"),
        (dict(num_heads=3), "num_heads=3"),
        (dict(hidden_dim=30, num_heads=3), "hidden_dim=30"),
    ],
)
def test_bad_backbones(overrides, message):
    backbone = keras_hub.models.ViTBackbone(
        **{**dict(image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=4,
                  hidden_dim=32, mlp_dim=64), **overrides}
    )
    with pytest.raises(ValueError, match=message):
        from_keras_hub(backbone, keep_position_table=True)


def test_not_a_backbone():
    with pytest.raises(ValueError, match="Received: ViTEncoder"):
        from_keras_hub(random_encoder())


def fit_two_steps(classifier, images, learning_rate=1e-3):
    """Two `fit` steps; returns the loss and the fraction of weights that moved."""
    before = [to_numpy(w).copy() for w in classifier.trainable_weights]
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate))
    labels = np.arange(len(images)) % 3
    history = classifier.fit(images, labels, batch_size=len(images) // 2, epochs=1,
                             shuffle=False, verbose=0)
    moved = [not np.array_equal(b, to_numpy(w))
             for b, w in zip(before, classifier.trainable_weights)]
    return history.history["loss"][-1], np.mean(moved)


def test_preset_round_trip_and_fit(tmp_path):
    encoder = random_encoder()
    backbone = to_keras_hub(encoder)
    backbone.save_to_preset(str(tmp_path))
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path))
    assert isinstance(loaded, keras_hub.models.ViTBackbone)
    images = images_for(encoder, n=4)
    assert max_diff(loaded(images), backbone(images)) <= PRESET_TOLERANCE
    back = from_keras_hub(keras_hub.models.Backbone.from_preset(str(tmp_path)))
    assert_same_weights(encoder, back)
    assert max_diff(back(images), encoder(images)) <= TOLERANCE

    classifier = keras_hub.models.ViTImageClassifier(backbone=loaded, num_classes=3)
    loss, moved = fit_two_steps(classifier, images)
    assert np.isfinite(loss)
    assert moved == 1.0


def test_save_keras_hub_preset(tmp_path):
    encoder = random_encoder()
    save_keras_hub_preset(encoder, str(tmp_path))
    classifier = keras_hub.models.ViTImageClassifier.from_preset(str(tmp_path), num_classes=3)
    pixels = np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)).astype("float32")
    normalised = ((pixels / 255.0 - np.array(mae_ops.IMAGENET_MEAN))
                  / np.array(mae_ops.IMAGENET_STD)).astype("float32")
    assert max_diff(classifier.preprocessor(pixels), normalised) <= TOLERANCE
    assert max_diff(classifier.backbone(normalised), encoder(normalised)) <= TOLERANCE
    # Larger images are resized to the encoder's size.
    assert classifier.predict(pixels[:2].repeat(2, axis=1), verbose=0).shape == (2, 3)
    loss, moved = fit_two_steps(classifier, pixels)
    assert np.isfinite(loss)
    assert moved == 1.0
    # a second encoder does not replace the preset unless asked to
    with pytest.raises(ValueError, match="is not empty; pass overwrite=True"):
        save_keras_hub_preset(encoder, str(tmp_path))
    save_keras_hub_preset(encoder, str(tmp_path), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "image_converter.json", "metadata.json", "model.weights.h5",
        "preprocessor.json"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_pixel_value=0), "max_pixel_value=0"),
        (dict(mean=(0.5, 0.5)), r"mean=\(0.5, 0.5\)"),
        (dict(std=(0.2, 0.0, 0.2)), r"std=\(0.2, 0.0, 0.2\)"),
    ],
)
def test_save_keras_hub_preset_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        save_keras_hub_preset(random_encoder(), str(tmp_path), **kwargs)
    assert not list(tmp_path.iterdir())
