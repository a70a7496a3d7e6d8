"""Preset folders of whole keras_mae models (KerasHub's layout)."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import random_images, random_noise, tiny_mae, to_numpy

from keras_mae import presets
from keras_mae.models import MaskedAutoencoder, ViTClassifier, ViTEncoder


def perturbed(model, seed=0):
    """Random values in every weight, so that a weight not restored is noticed."""
    rng = np.random.RandomState(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.1, variable.shape).astype("float32"))
    return model


def test_masked_autoencoder_round_trips_through_a_preset(tmp_path):
    model = perturbed(tiny_mae(mask_ratio=0.5, norm_pix_loss=True))
    directory = str(tmp_path / "mae")
    presets.save_to_preset(model, directory)
    assert sorted(os.listdir(directory)) == ["config.json", "metadata.json", "model.weights.h5"]
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    assert config["class_name"] == "MaskedAutoencoder"
    assert config["config"]["encoder"]["class_name"] == "ViTEncoder"
    assert "build_config" not in json.dumps(config)
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["parameter_count"] == model.count_params()
    assert metadata["keras_version"] == keras.version()
    loaded = presets.from_preset(directory)
    assert isinstance(loaded, MaskedAutoencoder) and loaded.mask_ratio == 0.5
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    images, noise = random_images(2), random_noise(2, 16)
    np.testing.assert_array_equal(to_numpy(loaded(images, noise=noise)["pred"]),
                                  to_numpy(model(images, noise=noise)["pred"]))
    # others continue pretraining from it, at their own mask ratio
    again = presets.from_preset(directory, mask_ratio=0.75, seed=1)
    assert again.mask_ratio == 0.75 and again.num_visible == 4
    again.compile(optimizer=keras.optimizers.AdamW(1e-3))
    assert np.isfinite(float(again.train_on_batch(images)))


def test_keras_hub_uploader_accepts_the_folder(tmp_path):
    import keras_hub
    directory = presets.save_to_preset(tiny_mae(), str(tmp_path / "mae"))
    # The upload validates the folder first, then reads the URI: no network is reached.
    with pytest.raises(ValueError, match="Unknown URI"):
        keras_hub.upload_preset("local://mae", directory)
    os.remove(os.path.join(directory, "model.weights.h5"))
    with pytest.raises(FileNotFoundError, match="weights file is missing"):
        keras_hub.upload_preset("local://mae", directory)


def test_encoder_and_classifier_presets(tmp_path):
    encoder = perturbed(ViTEncoder(image_size=16, patch_size=8, hidden_dim=16, depth=1,
                                   num_heads=2))
    classifier = perturbed(ViTClassifier(encoder.copy(), 3, head_batch_norm=True), seed=1)
    images = random_images(2, size=16)
    for name, model in (("encoder", encoder), ("classifier", classifier)):
        directory = presets.save_to_preset(model, str(tmp_path / name))
        loaded = presets.from_preset(directory)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(to_numpy(loaded(images)), to_numpy(model(images)))


def test_class_methods_load_a_preset_as_the_class_asks(tmp_path):
    """keras-hub's pattern: `Class.from_preset` on the model saved, or a task on its encoder."""
    from keras_mae.models import Task

    mae = perturbed(tiny_mae(mask_ratio=0.5))
    directory = mae.save_to_preset(str(tmp_path / "mae"))
    images = random_images(2)
    same = MaskedAutoencoder.from_preset(directory, mask_ratio=0.75)
    assert type(same) is MaskedAutoencoder and same.mask_ratio == 0.75
    assert type(Task.from_preset(directory)) is MaskedAutoencoder
    encoder = ViTEncoder.from_preset(directory)
    assert type(encoder) is ViTEncoder
    np.testing.assert_array_equal(to_numpy(encoder(images)), to_numpy(mae.encoder(images)))
    classifier = ViTClassifier.from_preset(directory, num_classes=4, pooling="cls")
    assert classifier.num_classes == 4 and classifier.pooling == "cls"
    np.testing.assert_array_equal(to_numpy(classifier.encoder(images)), to_numpy(mae.encoder(images)))
    encoder_dir = encoder.save_to_preset(str(tmp_path / "encoder"))
    assert ViTClassifier.from_preset(encoder_dir, num_classes=2).num_classes == 2
    with pytest.raises(ValueError, match="task class"):
        Task.from_preset(encoder_dir)
    with pytest.raises(ValueError, match="takes no arguments.*mask_ratio"):
        ViTEncoder.from_preset(directory, mask_ratio=0.5)
    with pytest.raises(ValueError, match="Unknown preset config fields.*colour"):
        MaskedAutoencoder.from_preset(directory, colour=1)


def test_nothing_saved_is_overwritten_by_accident(tmp_path):
    directory = str(tmp_path / "mae")
    first = perturbed(tiny_mae(), seed=0)
    presets.save_to_preset(first, directory)
    with pytest.raises(ValueError, match="is not empty; pass overwrite=True"):
        presets.save_to_preset(tiny_mae(hidden_dim=64), directory)
    # still the first model
    np.testing.assert_array_equal(to_numpy(presets.from_preset(directory).weights[0]),
                                  to_numpy(first.weights[0]))
    second = perturbed(tiny_mae(), seed=1)
    presets.save_to_preset(second, directory, overwrite=True)
    np.testing.assert_array_equal(to_numpy(presets.from_preset(directory).weights[0]),
                                  to_numpy(second.weights[0]))
    assert sorted(os.listdir(tmp_path)) == ["mae"]  # no temporary folder left behind


def test_bad_presets_are_named(tmp_path):
    with pytest.raises(ValueError, match="No preset folder at"):
        presets.from_preset(str(tmp_path / "missing"))
    directory = presets.save_to_preset(tiny_mae(), str(tmp_path / "mae"))
    with pytest.raises(ValueError, match=r"Unknown preset config fields \['width'\]"):
        presets.from_preset(directory, width=3)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"module": "keras_hub.src.models.vit.vit_backbone",
                   "class_name": "ViTBackbone", "config": {}}, f)
    with pytest.raises(ValueError, match="does not hold a keras_mae model.*ViTBackbone"):
        presets.from_preset(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        presets.from_preset(directory)
