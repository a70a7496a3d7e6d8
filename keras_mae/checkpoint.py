"""Resumable training checkpoints, written atomically.

Layout of a checkpoint folder:
```
checkpoint/
  latest                  text: the name of the newest complete step folder
  step_00000123/
    state.weights.h5      model and optimizer variables (`model.save_weights`)
    state.json            {"format_version", "global_step", "epoch", "step_in_epoch",
                           "model_config", "seed_states"}
```
A step folder is written under a temporary name and renamed when complete;
`latest` is replaced atomically after that. A kill at any moment leaves the
previous checkpoint usable, and a half-written folder is never read.
A `state.json` of a format version this code does not read is refused
(`keras_mae.formats.check_format_version`).
"""

import json
import os
import shutil

import keras

from keras_mae import files
from keras_mae import keras_internals
from keras_mae.formats import FORMAT_VERSION, check_format_version

LATEST = "latest"
WEIGHTS = "state.weights.h5"
STATE = "state.json"


def model_config_of(model):
    """The JSON-comparable config identifying a model's architecture.

    Nested objects other than the dtype policy are flattened with dotted keys:
    a `MaskedAutoencoder`'s encoder width is `"encoder.hidden_dim"`. Format
    versions are left out (the state records its own).
    """
    config = _flatten(json.loads(json.dumps(model.get_config(), sort_keys=True, default=str)))
    return {key: value for key, value in config.items()
            if key.rsplit(".", 1)[-1] != "format_version"}


def _flatten(config, prefix=""):
    flat = {}
    for key, value in config.items():
        nested = isinstance(value, dict) and "class_name" in value and "config" in value
        if nested and key != "dtype":
            flat.update(_flatten(value["config"], f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _seed_generators(model):
    """`{key: SeedGenerator}` of every random layer, so masks resume exactly.

    Weight files do not hold `keras.random.SeedGenerator` states; without them a
    resumed run would draw the masks of a fresh run. Keys are
    `"{position}/{layer name}"` in the model's layer order (layer paths are not
    set until a layer is first called).
    """
    found = {}
    layers = keras_internals.sublayers(model)
    for position, layer in enumerate(layers):
        generator = getattr(layer, "seed_generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            found[f"{position}/{layer.name}"] = generator
    return found


def seed_states(model):
    """`{layer key: [int, int]}`: the current states of the model's seed generators."""
    return {path: [int(v) for v in keras.ops.convert_to_numpy(g.state.value)]
            for path, g in _seed_generators(model).items()}


def restore_seed_states(model, states):
    """Assigns saved seed-generator states (keys absent on either side are skipped)."""
    for key, generator in _seed_generators(model).items():
        if key in states:
            generator.state.assign(keras.ops.convert_to_tensor(states[key], generator.state.dtype))


def save_checkpoint(directory, model, global_step, epoch, step_in_epoch, keep=2):
    """Writes a checkpoint of `model` (and its optimizer) and returns its folder.

    Args:
        directory: the checkpoint folder (created if needed).
        model: a compiled Keras model.
        global_step: int, optimizer micro-steps done so far.
        epoch: int, the epoch in progress (0-based).
        step_in_epoch: int, steps done in that epoch.
        keep: int, how many step folders to keep.
    """
    os.makedirs(directory, exist_ok=True)
    name = f"step_{global_step:08d}"
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_weights(os.path.join(tmp, WEIGHTS))
    state = {
        "format_version": FORMAT_VERSION,
        "global_step": int(global_step),
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "model_config": model_config_of(model),
        "seed_states": seed_states(model),
    }
    files.write_text(os.path.join(tmp, STATE), json.dumps(state, indent=2, sort_keys=True))
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    files.write_text(os.path.join(directory, LATEST), name)
    steps = sorted(d for d in os.listdir(directory) if d.startswith("step_"))
    for old in steps[:-keep]:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
    return final


def latest_checkpoint(directory):
    """The newest complete step folder in `directory`, or None."""
    pointer = os.path.join(directory, LATEST)
    if not os.path.exists(pointer):
        return None
    with open(pointer) as f:
        name = f.read().strip()
    folder = os.path.join(directory, name)
    if not os.path.isdir(folder):
        raise ValueError(f"Checkpoint pointer {pointer} names a missing folder {folder!r}")
    return folder


def read_state(folder):
    """The `state.json` of a step folder, with a clear error when unreadable.

    Raises:
        ValueError: naming the file, when it cannot be read or is of a format
            version this code does not read.
    """
    path = os.path.join(folder, STATE)
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read checkpoint state {path}: {error}") from error
    check_format_version(state, f"Checkpoint state {path}")
    return state


def restore_checkpoint(folder, model):
    """Loads model and optimizer variables from a step folder; returns its state.

    Raises `ValueError` naming the file when the checkpoint belongs to another
    architecture, cannot be read, or is of a format version this code does
    not read.
    """
    state = read_state(folder)
    expected = model_config_of(model)
    saved = state.get("model_config", {})
    ignore = {"name", "seed", "trainable", "dtype"}
    diff = sorted(
        key for key in set(expected) | set(saved)
        if key.rsplit(".", 1)[-1] not in ignore and expected.get(key) != saved.get(key)
    )
    weights = os.path.join(folder, WEIGHTS)
    if diff:
        details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs model {expected.get(k)!r}" for k in diff)
        raise ValueError(f"Checkpoint {weights} is of another model config ({details})")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py raises OSError, Keras ValueError
        raise ValueError(f"Cannot load checkpoint {weights}: {error}") from error
    restore_seed_states(model, state.get("seed_states", {}))
    return state


class StepCheckpoint(keras.callbacks.Callback):
    """Saves a resumable checkpoint every `every_steps` steps and at each epoch end.

    Args:
        directory: checkpoint folder.
        every_steps: int >= 1.
        start_step: the global step the current `fit` starts from.
        steps_per_epoch: int, to tell the epoch and position of a step.
    """

    def __init__(self, directory, every_steps, start_step, steps_per_epoch):
        super().__init__()
        if not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"`every_steps` must be an int >= 1. Received: {every_steps!r}")
        self.directory = directory
        self.every_steps = every_steps
        self.global_step = start_step
        self.steps_per_epoch = steps_per_epoch
        self.last_saved = None
        self.last_folder = None

    def save(self):
        """Writes a checkpoint of the current step (once per step) and returns its folder."""
        if self.last_saved != self.global_step:
            epoch, step_in_epoch = divmod(self.global_step, self.steps_per_epoch)
            self.last_folder = save_checkpoint(self.directory, self.model, self.global_step,
                                               epoch, step_in_epoch)
            self.last_saved = self.global_step
        return self.last_folder

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        if self.global_step % self.every_steps == 0 and self.global_step % self.steps_per_epoch:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()
