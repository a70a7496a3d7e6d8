"""The format version of the files keras_mae writes: model configs (`.keras`, presets), checkpoints.

Each file carries `format_version`; one without it is read as version 1, and one of a later
version is refused with an error naming the file and the versions this code reads.
"""

import json
import os
import re
import zipfile

import keras
import numpy as np
import pytest
from conftest import random_images, tiny_mae, to_numpy

from keras_mae import checkpoint, presets
from keras_mae.models import ViTClassifier, ViTEncoder
from keras_mae.formats import FORMAT_VERSION, READABLE_FORMAT_VERSIONS

ARCH = dict(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4, seed=0)
FUTURE = max(READABLE_FORMAT_VERSIONS) + 1
REFUSED = (rf"is of keras_mae format version {FUTURE}; this keras_mae reads format versions "
           rf"\[1\]\..* Received: format_version={FUTURE}")


def _edit_json(path, edit):
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, "w") as f:
        json.dump(data, f)


def _edit_keras_config(path, edit):
    """Rewrites the `config.json` inside a `.keras` file."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _set_version(version):
    def edit(config):
        config["format_version"] = version
    return edit


def _drop_versions(config):
    """Removes every `format_version`, at any depth (as in a file written before they existed)."""
    if isinstance(config, dict):
        config.pop("format_version", None)
        for value in config.values():
            _drop_versions(value)
    elif isinstance(config, list):
        for value in config:
            _drop_versions(value)


def test_configs_and_states_carry_the_format_version(tmp_path):
    assert FORMAT_VERSION == 1 and READABLE_FORMAT_VERSIONS == (1,)
    mae = tiny_mae()
    config = mae.get_config()
    assert config["format_version"] == 1
    assert config["encoder"]["config"]["format_version"] == 1
    assert ViTClassifier(mae.encoder, 3).get_config()["format_version"] == 1
    folder = checkpoint.save_checkpoint(str(tmp_path), mae, 1, 0, 1)
    state = checkpoint.read_state(folder)
    assert state["format_version"] == 1
    assert not [key for key in state["model_config"] if "format_version" in key]


def test_keras_file_of_a_future_version_is_refused_and_one_without_a_version_loads(tmp_path):
    encoder = ViTEncoder(**ARCH)
    classifier = ViTClassifier(encoder, 3)
    images = random_images(2)
    expected = to_numpy(classifier(images))
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)

    _edit_keras_config(path, lambda c: _set_version(FUTURE)(c["config"]))
    with pytest.raises(ValueError, match="The saved ViTClassifier config " + REFUSED):
        keras.saving.load_model(path)

    def future_encoder(config):
        config["config"]["format_version"] = FORMAT_VERSION
        config["config"]["encoder"]["config"]["format_version"] = FUTURE

    _edit_keras_config(path, future_encoder)
    with pytest.raises(ValueError, match="The saved ViTEncoder config " + REFUSED):
        keras.saving.load_model(path)

    _edit_keras_config(path, _drop_versions)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(images)), expected)
    assert loaded.get_config()["format_version"] == FORMAT_VERSION


def test_preset_of_a_future_version_is_refused_naming_its_config(tmp_path):
    directory = str(tmp_path / "mae")
    presets.save_to_preset(tiny_mae(), directory)
    config_path = os.path.join(directory, presets.CONFIG_FILE)
    _edit_json(config_path, lambda c: _set_version(FUTURE)(c["config"]))
    with pytest.raises(ValueError, match=re.escape(config_path) + " " + REFUSED):
        presets.from_preset(directory)
    _edit_json(config_path, _drop_versions)
    assert presets.from_preset(directory).get_config()["format_version"] == FORMAT_VERSION


def test_checkpoint_of_a_future_version_is_refused_naming_its_state(tmp_path):
    model = tiny_mae()
    folder = checkpoint.save_checkpoint(str(tmp_path), model, 3, 0, 3)
    state_path = os.path.join(folder, checkpoint.STATE)
    _edit_json(state_path, _set_version(FUTURE))
    with pytest.raises(ValueError, match="Checkpoint state " + re.escape(state_path) + " " + REFUSED):
        checkpoint.restore_checkpoint(folder, model)
    _edit_json(state_path, _drop_versions)
    assert checkpoint.restore_checkpoint(folder, model)["global_step"] == 3
