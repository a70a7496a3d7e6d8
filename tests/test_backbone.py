"""One `ViTEncoder` object shared by the tasks: nesting, serialisation, copies."""

import keras
import numpy as np
import pytest
from conftest import random_images, random_noise, tiny_mae, to_numpy

import keras_mae
from keras_mae.models import MaskedAutoencoder, ViTClassifier, ViTEncoder

ARCH = dict(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4, seed=0)
DECODER = dict(decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2)


def test_tasks_use_the_encoder_object_and_nest_its_config(tmp_path):
    encoder = ViTEncoder(**ARCH, name="backbone")
    mae = MaskedAutoencoder(encoder, **DECODER, mask_ratio=0.5, norm_pix_loss=True, seed=3)
    classifier = ViTClassifier(encoder, 4, pooling="cls")
    assert mae.encoder is encoder and classifier.encoder is encoder
    config = mae.get_config()
    assert config["encoder"]["class_name"] == "ViTEncoder"
    assert config["encoder"]["config"]["hidden_dim"] == 32
    assert not {"hidden_dim", "depth", "patch_size", "image_size"} & set(config)
    images = random_images(2)
    before = to_numpy(classifier.features(images))
    # training the MAE trains the classifier's encoder: they are one object
    mae.compile(optimizer=keras.optimizers.SGD(0.5))
    mae.fit(images, epochs=1, batch_size=2, verbose=0)
    assert np.abs(to_numpy(classifier.features(images)) - before).max() > 1e-3
    # the .keras file rebuilds the same model (one encoder, with its weights)
    path = str(tmp_path / "mae.keras")
    mae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.encoder, ViTEncoder) and loaded.encoder.name == "backbone"
    assert loaded.get_config() == config
    assert len(loaded.weights) == len(mae.weights)
    noise = random_noise(2, 16)
    np.testing.assert_array_equal(to_numpy(loaded(images, noise=noise)["pred"]),
                                  to_numpy(mae(images, noise=noise)["pred"]))


def test_a_model_saved_before_its_first_call_keeps_its_weights(tmp_path):
    model = ViTClassifier(ViTEncoder(**ARCH), 3, head_init_std=0.5)
    path = str(tmp_path / "classifier.keras")
    model.save(path)
    images = random_images(2)
    np.testing.assert_array_equal(to_numpy(keras.saving.load_model(path)(images)),
                                  to_numpy(model(images)))


def test_copy_is_independent_and_resizes_positions():
    encoder = ViTEncoder(**ARCH)
    copy = encoder.copy(drop_path_rate=0.2, seed=5)
    assert copy.name == encoder.name and copy.seed == 5
    assert copy.blocks[-1].drop_path.rate == pytest.approx(0.2)
    images = random_images(2)
    np.testing.assert_array_equal(to_numpy(copy(images)), to_numpy(encoder(images)))
    copy.cls_token.assign(np.zeros((1, 1, 32), "float32"))
    assert np.abs(to_numpy(encoder.cls_token)).sum() > 0
    mixed = ViTEncoder(**ARCH, dtype="mixed_bfloat16")
    assert mixed.copy().dtype_policy.name == "mixed_bfloat16"
    assert mixed.copy(dtype="float32").dtype_policy.name == "float32"
    larger = encoder.copy(image_size=(48, 40))
    assert larger.grid == (6, 5) and larger.position_embedding.table.shape == (31, 32)
    assert to_numpy(larger(random_images(1, size=(48, 40)))).shape == (1, 31, 32)


def test_relative_weights_do_not_depend_on_where_the_encoder_was_built():
    alone = ViTEncoder(**ARCH)
    alone.build()
    inside = MaskedAutoencoder(ViTEncoder(**ARCH, name="other"), **DECODER).encoder
    assert inside.weights[0].path.startswith("masked_autoencoder")
    assert sorted(alone.relative_weights()) == sorted(inside.relative_weights())
    assert "encoder_block_1/attention/qkv/kernel" in alone.relative_weights()


def test_factories_split_flat_arguments():
    model = keras_mae.models.build("mae_vit_tiny_patch4", depth=1, decoder_depth=1,
                                   mask_ratio=0.6, seed=7, dtype="mixed_bfloat16")
    assert (model.encoder.depth, model.decoder_depth, model.mask_ratio) == (1, 1, 0.6)
    assert model.seed == model.encoder.seed == 7
    assert model.dtype_policy.name == model.encoder.dtype_policy.name == "mixed_bfloat16"
    with pytest.raises(ValueError, match=r"Unknown model arguments \['width'\]"):
        keras_mae.models.split_arguments(width=3)


def test_bad_encoder_and_dtype_are_named():
    with pytest.raises(ValueError, match="MaskedAutoencoder: `encoder` must be .* encoder=64"):
        MaskedAutoencoder(64)
    with pytest.raises(ValueError, match="policy 'mixed_float16' differs from its encoder's 'float32'"):
        MaskedAutoencoder(ViTEncoder(**ARCH), **DECODER, dtype="mixed_float16")


def test_official_layout_does_not_depend_on_the_encoder_name_or_build_place():
    from keras_mae.convert import load_official_state_dict, to_official_state_dict

    reference = tiny_mae()
    state = to_official_state_dict(reference)
    encoder = ViTEncoder(**ARCH, name="backbone")
    encoder.build()  # variables under "backbone/", not "masked_autoencoder/encoder/"
    other = MaskedAutoencoder(encoder, **DECODER)
    load_official_state_dict(other, state)
    again = to_official_state_dict(other)
    assert sorted(again) == sorted(state)
    for key in state:
        np.testing.assert_array_equal(again[key], state[key])
