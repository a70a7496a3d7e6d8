"""Helpers shared by the recipes: flags' checks, encoder and data loading, atomic writes, reports.

The recipes (`pretrain.py`, `linear_probe.py`, `finetune.py`) import from here
and never from each other.
"""

import argparse
import json
import os
import sys
import time

from recipes.flags import str2bool


# glibc's malloc kept on its heap (one arena, no mmap, no trim). XLA:CPU allocates a
# training step's temporaries as one buffer at every step, which glibc otherwise maps
# and unmaps each time (`benchmarks/train_throughput.py`: 233,000-255,000 page faults
# and 0.4-0.5 s of system time a step at the tiny config; JAX 1.18-1.37x faster kept).
HEAP_KEPT_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                 "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30)}


def configured_backend(environ=None):
    """The Keras backend a new process will use, read as Keras does, without importing it."""
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    path = os.path.join(os.path.expanduser(environ.get("KERAS_HOME", "~/.keras")), "keras.json")
    try:
        with open(path) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def restart_with_heap_kept():
    """On JAX, runs this command again, once, with `HEAP_KEPT_ENV` set from the start.

    glibc reads these settings when a process starts; set later (`mallopt`)
    they miss the threads that have already allocated. So a recipe's command
    line calls this first, before anything imports Keras: the process
    replaces itself (`os.execve`: same pid, arguments and directory) with
    the settings added. Nothing happens on another backend, off Linux with
    glibc, when started otherwise than as a script, or when any of the
    three variables is already set (set one, e.g. `MALLOC_ARENA_MAX=8`, to
    keep glibc's own behaviour).
    """
    if configured_backend() != "jax" or not sys.platform.startswith("linux"):
        return
    if any(name in os.environ for name in HEAP_KEPT_ENV) or not os.path.isfile(sys.argv[0]):
        return
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **HEAP_KEPT_ENV))


def parse_jit_compile(value, backend=None, replicas=1, torch_compile=False):
    """`"auto"`, true or false (from a flag or a config) -> Keras' `jit_compile`.

    `"auto"` means XLA on JAX, and on TensorFlow with one replica (on a CPU,
    Keras' own "auto" leaves TensorFlow uncompiled, about 1.5x slower); with
    several TensorFlow replicas it stays Keras' "auto", because XLA has no
    cross-replica collectives on CPUs. On PyTorch it means `torch.compile`
    when `torch_compile` (the MAE's own compiled step; pretraining) and eager
    otherwise.
    """
    if value == "auto":
        import keras

        backend = backend or keras.backend.backend()
        if backend == "tensorflow" and replicas > 1:
            return "auto"
        return backend in ("tensorflow", "jax") or (backend == "torch" and torch_compile)
    if isinstance(value, bool):
        return value
    try:
        return str2bool(str(value))
    except argparse.ArgumentTypeError:
        raise ValueError(f"--jit-compile must be auto, true or false. Received: {value!r}")


def check_output_dir(path):
    """Creates the output directory and proves it writable, before any compute."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"Output directory {path!r} is not writable: {error}") from error


def validate_common(config):
    """Checks the shared numeric fields; raises ValueError naming the flag."""
    for name in ("epochs", "batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int. Received: {value!r}")
    if not isinstance(config.image_size, int) or config.image_size < 0:
        raise ValueError(f"--image-size must be an int >= 0 (0: the encoder's). "
                         f"Received: {config.image_size!r}")
    if not config.base_lr > 0:
        raise ValueError(f"--base-lr must be positive. Received: {config.base_lr!r}")
    if config.warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs must be >= 0. Received: {config.warmup_epochs!r}")
    if not 0 < config.crop_pct <= 1:
        raise ValueError(f"--crop-pct must be in (0, 1]. Received: {config.crop_pct!r}")
    if config.pooling not in ("cls", "avg"):
        raise ValueError(f"--pooling must be cls or avg. Received: {config.pooling!r}")


def check_encoder_source(config):
    """Fails fast on a missing encoder file, preset folder or architecture file."""
    if config.encoder != "random":
        if os.path.isdir(config.encoder):
            if not os.path.isfile(os.path.join(config.encoder, "config.json")):
                raise ValueError(f"--encoder {config.encoder!r} is a folder without a "
                                 "config.json (expected a preset folder)")
        elif not os.path.isfile(config.encoder):
            raise ValueError(f"--encoder {config.encoder!r}: file not found (expected an "
                             "encoder.keras or a preset/ folder written by recipes/pretrain.py, "
                             "a KerasHub ViTBackbone preset folder, or 'random')")
        elif not config.encoder.endswith(".keras"):
            raise ValueError(f"--encoder {config.encoder!r} is not a .keras file")
    elif config.encoder_config and not os.path.isfile(config.encoder_config):
        raise ValueError(f"--encoder-config {config.encoder_config!r}: file not found")


def random_encoder_arguments(config):
    """ViTEncoder arguments of `--encoder random` (from a config.json or a model name)."""
    from keras_mae.models import CONFIGS, split_arguments

    model, overrides, image_size = config.model, dict(config.model_overrides), None
    if config.encoder_config:
        with open(config.encoder_config) as f:
            pretrain = json.load(f)
        model = pretrain.get("model", model)
        overrides = {**pretrain.get("model_overrides", {}), **overrides}
        image_size = pretrain.get("image_size")
    if model not in CONFIGS:
        raise ValueError(f"Unknown model {model!r}. Known: {sorted(CONFIGS)}")
    arguments = {**CONFIGS[model], **overrides}
    if image_size:
        arguments["image_size"] = image_size
    if config.image_size:
        arguments["image_size"] = config.image_size
    arguments["seed"] = config.seed
    return split_arguments(**arguments)[0]


def _model_of_preset(directory):
    """The model of a keras_mae preset folder, or the encoder of a KerasHub `ViTBackbone` one."""
    with open(os.path.join(directory, "config.json")) as f:
        module = json.load(f).get("module", "")
    if module.startswith("keras_hub"):
        import keras_hub

        from keras_mae.convert import from_keras_hub

        return from_keras_hub(keras_hub.models.Backbone.from_preset(directory))
    from keras_mae import presets

    return presets.from_preset(directory)


def load_encoder(config):
    """The `ViTEncoder` named by `--encoder`: a `.keras` file, a preset folder, or `random`."""
    import keras

    from keras_mae.models import ViTEncoder

    if config.encoder == "random":
        encoder = ViTEncoder(**random_encoder_arguments(config))
        encoder.build()
        return encoder
    if os.path.isdir(config.encoder):
        encoder = _model_of_preset(config.encoder)
    else:
        encoder = keras.saving.load_model(config.encoder)
    if not isinstance(encoder, ViTEncoder):
        encoder = getattr(encoder, "encoder", None)
        if not isinstance(encoder, ViTEncoder):
            raise ValueError(f"--encoder {config.encoder!r} holds neither a ViTEncoder nor a "
                             "model with an `encoder` attribute")
    return encoder


def other_split(config, train):
    """`--dataset` at `--eval-split`; a folder has no other split: `train` itself (its bad files left out)."""
    from keras_mae import data

    if os.path.isdir(os.path.expanduser(config.dataset)):
        return train
    return data.load_source(config.dataset, split=config.eval_split, data_dir=config.data_dir)


def load_sources(config):
    """(train source, eval source, num_classes, note); raises for unlabelled data."""
    from keras_mae import data

    train = data.load_source(config.dataset, split=config.split, data_dir=config.data_dir,
                             skip_bad_images=config.skip_bad_images)
    note = ""
    if config.eval_dataset:
        evaluation = data.load_source(config.eval_dataset, split=config.eval_split,
                                      data_dir=config.data_dir)
    else:
        evaluation = other_split(config, train)
        if evaluation.name == train.name:
            note = "eval set is the training set (pass --eval-dataset for a held-out one)"
    for which, source in (("--dataset", train), ("eval dataset", evaluation)):
        if not source.has_labels:
            raise ValueError(f"{which} {source.name!r} has no labels; classification needs "
                             "labelled data (class sub-folders, or 'y' in the .npz)")
        if source.num_examples is None:
            raise ValueError(f"{which} {source.name!r} has unknown size; pass a sized source")
    counts = [s.num_classes for s in (train, evaluation) if s.num_classes is not None]
    if not counts:
        raise ValueError(f"cannot tell the number of classes of {train.name!r}")
    return train, evaluation, max(counts), note


def image_side(config, encoder):
    """The square image side for the data: `--image-size` or the encoder's."""
    height, width = encoder.image_size
    if height != width:
        raise ValueError(f"Only square encoders are supported here. Received image_size="
                         f"{encoder.image_size}")
    return config.image_size or int(height)


def topk_accuracy(logits, labels, k):
    """Fraction of rows whose label is among the k largest logits (k capped at the classes)."""
    import numpy as np

    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def dataset_labels(dataset):
    import numpy as np

    return np.concatenate([labels.numpy() for _, labels in dataset])


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    from keras_mae import files

    files.write_text(path, text)


def save_atomic(obj, path, method="save"):
    """`obj.save(path)` (or `obj.save_weights(path)` with `method="save_weights"`) through a rename."""
    from keras_mae import files

    with files.atomic_path(path) as tmp:
        getattr(obj, method)(tmp)


def warmup_cosine(config, steps_per_epoch, peak):
    from keras_mae import optimizers

    total = config.epochs * steps_per_epoch
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total)
    return optimizers.WarmupCosineDecay(peak, total, warmup, min_lr=min(config.min_lr, peak))


def verbosity():
    return 1 if sys.stdout.isatty() else 2


def report(output_dir, model, model_file, logits, labels, started, log):
    """Writes `metrics.json` (top-1/top-5 of `logits`) and the model, atomically; logs and returns the figures."""
    metrics = {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}
    write_atomic(os.path.join(output_dir, "metrics.json"), json.dumps(metrics, indent=2))
    save_atomic(model, os.path.join(output_dir, model_file))
    result = {**metrics, "eval_images": int(len(labels)),
              "seconds": round(time.time() - started, 1)}
    log(f"done: {json.dumps(result)}")
    return result


def record_skipped(source, output_dir, log):
    """Logs the files `--skip-bad-images` left out and lists them in `output_dir/bad_images.txt`."""
    if not source.skipped:
        return
    path = os.path.join(output_dir, "bad_images.txt")
    write_atomic(path, "".join(f"{file}\t{problem}\n" for file, problem in source.skipped))
    log(f"  bad images     {len(source.skipped)} skipped (listed in {path})")


def bad_image_message(error):
    """The message for a file that did not decode during training, or None for another error."""
    from keras_mae.data.image_files import failed_file

    failed = failed_file(error)
    if failed is None:
        return None
    return (f"cannot decode image file {failed[0]!r} ({failed[1]}). Leave such files "
            "out with --skip-bad-images true, or list them all first with "
            "`python -m keras_mae.data.image_files FOLDER`")


def run_main(function):
    """Runs `function()`; a bad value or image file is printed as `error: ...` with exit status 2."""
    try:
        function()
    except (ValueError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001  TensorFlow's errors are imported lazily
        message = bad_image_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
