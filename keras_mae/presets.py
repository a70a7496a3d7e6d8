"""Preset folders for keras_mae models, in KerasHub's layout.

A preset is a folder that KerasHub's tools (`keras_hub.upload_preset` to Kaggle
or Hugging Face, its preset validation) accept as they do their own:
```
preset/
  config.json         the model, `keras.saving.serialize_keras_object` (no
                      build or compile config), the encoder nested in it
  model.weights.h5    `model.save_weights`
  metadata.json       keras_version, keras_hub_version (when installed),
                      keras_mae_version, parameter_count, date_saved, tasks
```
It holds a whole `MaskedAutoencoder` (encoder and decoder), so a pretraining
run can be shared and continued by others, or a `ViTEncoder` / `ViTClassifier`.
For a KerasHub `ViTBackbone` preset, which KerasHub loads without keras_mae,
convert the encoder first (`keras_mae.convert.to_keras_hub`).

The model config carries keras_mae's `format_version`; a preset of a version
this code does not read is refused, naming its `config.json`
(`keras_mae.formats.check_format_version`).

The folder is written under a temporary name and renamed when complete
(`keras_mae.files.atomic_folder`); an existing preset is replaced only with
`overwrite=True`.
"""

import datetime
import json
import os

import keras

from keras_mae import files
from keras_mae.formats import check_format_version

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def _keras_hub_version():
    try:
        import keras_hub
    except ImportError:
        return None
    return keras_hub.__version__


def _strip_build_configs(config):
    if isinstance(config, dict):
        return {k: _strip_build_configs(v) for k, v in config.items()
                if k not in ("build_config", "compile_config")}
    if isinstance(config, list):
        return [_strip_build_configs(v) for v in config]
    return config


def save_to_preset(model, directory, overwrite=False):
    """Writes `model` to a preset folder (config.json, model.weights.h5, metadata.json).

    Args:
        model: a built keras_mae model (`MaskedAutoencoder`, `ViTEncoder`,
            `ViTClassifier`).
        directory: the preset folder to create.
        overwrite: replace an existing, non-empty `directory`.

    Returns:
        `directory`.

    Raises:
        ValueError: `directory` holds files and `overwrite` is False, or the
            model is not built.

    Example:
    ```python
    import keras_mae
    model = keras_mae.models.mae_vit_tiny_patch4(depth=1, decoder_depth=1)
    keras_mae.presets.save_to_preset(model, "mae_tiny")
    same = keras_mae.presets.from_preset("mae_tiny")
    ```
    """
    from keras_mae import __version__

    directory = os.fspath(directory)
    if not getattr(model, "built", False):
        raise ValueError(f"Build {type(model).__name__} before saving it to a preset "
                         f"(call it once, or `model.build()`); {directory!r} was not written.")
    config = _strip_build_configs(keras.saving.serialize_keras_object(model))
    metadata = {
        "keras_version": keras.version(),
        "keras_hub_version": _keras_hub_version(),
        "keras_mae_version": __version__,
        "parameter_count": model.count_params(),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": [],
    }
    with files.atomic_folder(directory, overwrite=overwrite) as tmp:
        model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        files.write_text(os.path.join(tmp, CONFIG_FILE), json.dumps(config, indent=4))
        files.write_text(os.path.join(tmp, METADATA_FILE), json.dumps(metadata, indent=4))
    return directory


def load_preset_config(directory):
    """The `(config, metadata)` dicts of a preset folder, checked."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"No preset folder at {directory!r}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not os.path.isfile(os.path.join(directory, name)):
            raise ValueError(f"Preset folder {directory!r} has no {name}")
    loaded = []
    for name in (CONFIG_FILE, METADATA_FILE):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            loaded.append({})
            continue
        try:
            with open(path) as f:
                loaded.append(json.load(f))
        except json.JSONDecodeError as error:
            raise ValueError(f"Preset file {path} is not valid JSON: {error}") from error
    config, metadata = loaded
    module = config.get("module", "") if isinstance(config, dict) else ""
    if not module.startswith("keras_mae"):
        raise ValueError(
            f"{os.path.join(directory, CONFIG_FILE)} does not hold a keras_mae model "
            f"(class {config.get('class_name') if isinstance(config, dict) else config!r}, "
            f"module {module!r}); a KerasHub backbone loads with "
            "`keras_hub.models.Backbone.from_preset`."
        )
    check_format_version(config.get("config", {}), os.path.join(directory, CONFIG_FILE))
    return config, metadata


def from_preset(directory, **overrides):
    """Loads the keras_mae model of a preset folder, weights included.

    Args:
        directory: a folder written by `save_to_preset` (or downloaded after
            `keras_hub.upload_preset`).
        **overrides: top-level config fields to change before building
            (e.g. `mask_ratio=0.9`, `seed=1`); architecture fields are the
            saved ones.

    Returns:
        The model (`MaskedAutoencoder`, `ViTEncoder`, `ViTClassifier`).

    Example:
    ```python
    import keras_mae
    keras_mae.presets.save_to_preset(keras_mae.models.mae_vit_tiny_patch4(depth=1), "mae_tiny")
    model = keras_mae.presets.from_preset("mae_tiny", mask_ratio=0.9)
    ```
    """
    config, _ = load_preset_config(directory)
    if overrides:
        unknown = sorted(set(overrides) - set(config["config"]))
        if unknown:
            raise ValueError(f"Unknown preset config fields {unknown}. "
                             f"Known: {sorted(config['config'])}")
        config = {**config, "config": {**config["config"], **overrides}}
    model = keras.saving.deserialize_keras_object(config)
    if not model.built:
        model.build()
    weights = os.path.join(os.fspath(directory), WEIGHTS_FILE)
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py raises OSError, Keras ValueError
        raise ValueError(f"Cannot load preset weights {weights}: {error}") from error
    return model


class PresetMethods:
    """`from_preset` and `save_to_preset` as methods, keras-hub's pattern (`ViTEncoder` and the tasks).

    `Class.from_preset(directory, **kwargs)` loads the preset's model when it
    is a `Class` (`kwargs` then change top-level config fields, as in
    `from_preset`); asked of a preset holding another model, an encoder
    class returns that model's encoder, and a task class builds itself on it
    (`kwargs` are then the task's arguments, e.g. `num_classes`).

    Example:
    ```python
    import keras_mae
    mae = keras_mae.models.mae_vit_tiny_patch4(depth=1, decoder_depth=1)
    mae.save_to_preset("mae_tiny_preset")
    encoder = keras_mae.models.ViTEncoder.from_preset("mae_tiny_preset")
    classifier = keras_mae.models.ViTClassifier.from_preset("mae_tiny_preset", num_classes=10)
    ```
    """

    @classmethod
    def from_preset(cls, directory, **kwargs):
        config, _ = load_preset_config(directory)
        saved = keras.saving.get_registered_object(config.get("registered_name"))
        if isinstance(saved, type) and issubclass(saved, cls):
            return from_preset(directory, **kwargs)
        model = from_preset(directory)
        encoder = getattr(model, "encoder", model)
        if isinstance(encoder, cls):
            if kwargs:
                raise ValueError(f"{cls.__name__}.from_preset takes no arguments for the encoder of "
                                 f"a {type(model).__name__} preset. Received: {sorted(kwargs)}")
            return encoder
        if cls.__dict__.get("abstract", False):
            raise ValueError(f"{directory!r} holds a {type(model).__name__}; load it with a "
                             f"task class (e.g. keras_mae.models.ViTClassifier.from_preset).")
        return cls(encoder, **kwargs)

    def save_to_preset(self, directory, overwrite=False):
        """`keras_mae.presets.save_to_preset(self, directory, overwrite)`."""
        return save_to_preset(self, directory, overwrite=overwrite)
