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
    for name in ("epochs", "batch_size", "accum_steps", "eval_every_epochs",
                 "checkpoint_every_steps"):
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
    if not 0 <= config.crop_pct <= 1:
        raise ValueError(f"--crop-pct must be in [0, 1] (0: the official rule). "
                         f"Received: {config.crop_pct!r}")
    if isinstance(config.train_images, bool) or not isinstance(config.train_images, int) \
            or config.train_images < 0:
        raise ValueError(f"--train-images must be an int >= 0 (0: all). "
                         f"Received: {config.train_images!r}")
    if config.pooling not in ("cls", "avg"):
        raise ValueError(f"--pooling must be cls or avg. Received: {config.pooling!r}")


def eval_crop_pct(config, image_size):
    """`--crop-pct`, or for 0 the official rule: 224/256 up to 224 px, 1.0 above (`util/datasets.py`)."""
    if config.crop_pct:
        return config.crop_pct
    return 224 / 256 if image_size <= 224 else 1.0


def distributed_run(config, output_dir, strategy, tpu_address, body):
    """Runs `body(dist, replicas, write_dir)` under the `--strategy` named `strategy`.

    The strategy is made first (a multi-worker strategy must exist before any
    TensorFlow op runs). The chief writes into `output_dir`; other workers
    write into a temporary folder, deleted at the end, and restore from the
    chief's checkpoints in `output_dir` (a file system all workers share).
    Raises `ValueError` when the global batch does not split over the replicas.
    """
    import shutil
    import tempfile

    import keras

    from keras_mae import distribute

    dist = distribute.get_strategy(strategy, tpu_address=tpu_address)
    replicas = distribute.num_replicas(dist)
    # initialisers repeat run to run (every replica draws the same weights)
    keras.utils.set_random_seed(config.seed)
    if config.batch_size % replicas:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) must be divisible "
                         f"by the {replicas} replicas of --strategy {strategy}")
    chief = distribute.is_chief()
    write_dir = output_dir if chief else tempfile.mkdtemp(prefix="keras-mae-worker-")
    try:
        return body(dist, replicas, write_dir)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def compile_and_restore(model, optimizer, loss, config, dist, replicas, output_dir):
    """Compiles `model` for `dist` (`--jit-compile` resolved) and restores its newest checkpoint.

    Call it inside `distribute.scope(dist)`. Returns `(global step, folder)`.
    """
    from keras_mae import distribute

    model.compile(optimizer=optimizer, loss=loss,
                  jit_compile=parse_jit_compile(config.jit_compile, replicas=replicas))
    distribute.configure_model(model, dist)
    return restore_latest(model, output_dir)


def restore_latest(model, output_dir):
    """Restores the newest checkpoint under `output_dir/checkpoint`; returns `(global step, folder)`."""
    from keras_mae import checkpoint

    folder = checkpoint.latest_checkpoint(os.path.join(output_dir, "checkpoint"))
    if folder is None:
        return 0, None
    return checkpoint.restore_checkpoint(folder, model)["global_step"], folder


def evaluation_callback(score, every, epochs, path, log):
    """A callback scoring the eval split every `every` epochs and after the last.

    `score()` returns `{"top1", "top5"}`. Each score is stored in the JSON
    file `path` under its epoch (1-based), atomically, so a resumed run keeps
    the scores of the epochs before it.
    """
    import keras

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            if done % every and done != epochs:
                return
            started = time.time()
            figures = score()
            scores = read_evaluations(path)
            scores[str(done)] = figures
            write_atomic(path, json.dumps(scores, indent=2, sort_keys=True))
            log(f"  eval           epoch {done}: top-1 {figures['top1']:.4f}, top-5 "
                f"{figures['top5']:.4f} ({time.time() - started:.1f} s)")

    return Evaluate()


def fit_and_evaluate(model, epoch_dataset, config, steps_per_epoch, start_step, write_dir,
                     score, log):
    """The classification recipes' training: `recipes.training.fit_epochs` with evaluations.

    Checkpoints go to `write_dir/checkpoint`, the loss per epoch to
    `history.csv`, `score()` every `config.eval_every_epochs` epochs (and
    after the last) to `evaluations.json`. Returns the evaluations.
    """
    import keras

    from recipes.training import fit_epochs

    path = os.path.join(write_dir, "evaluations.json")
    fit_epochs(model, epoch_dataset, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
               start_step=start_step, checkpoint_dir=os.path.join(write_dir, "checkpoint"),
               every_steps=config.checkpoint_every_steps,
               callbacks=[evaluation_callback(score, config.eval_every_epochs, config.epochs,
                                              path, log),
                          keras.callbacks.CSVLogger(os.path.join(write_dir, "history.csv"),
                                                    append=True)],
               verbose=verbosity())
    if not read_evaluations(path):  # a run resumed after its last epoch
        evaluation_callback(score, 1, config.epochs, path, log).on_epoch_end(config.epochs - 1)
    return read_evaluations(path)


def read_evaluations(path):
    """`{epoch (str): {"top1", "top5"}}` from an evaluations file; `{}` when there is none."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def final_metrics(evaluations):
    """`metrics.json`'s content: the last epoch's scores, and the best top-1 with its epoch.

    The best is selected on the eval split: a choice left to the user (with a
    test split as eval split it is not a held-out figure).
    """
    epochs = sorted(evaluations, key=int)
    last = evaluations[epochs[-1]]
    best = max(epochs, key=lambda e: (evaluations[e]["top1"], -int(e)))
    return {"top1": last["top1"], "top5": last["top5"], "epoch": int(epochs[-1]),
            "best_top1": evaluations[best]["top1"], "best_top5": evaluations[best]["top5"],
            "best_epoch": int(best)}


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
    if config.train_images:
        train = data.subset_source(train, config.train_images, seed=config.seed)
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
    """The official per-iteration schedule (`util/lr_sched.py`), counted in batches.

    With `config.accum_steps` k > 1, update `u` gets the official rate of
    batch `u * k` (see `WarmupCosineDecay`'s `accumulation_steps`).
    """
    from keras_mae import optimizers

    total = config.epochs * steps_per_epoch
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total)
    return optimizers.WarmupCosineDecay(peak, total, warmup, min_lr=min(config.min_lr, peak),
                                        accumulation_steps=getattr(config, "accum_steps", 1))


def verbosity():
    return 1 if sys.stdout.isatty() else 2


def topk_scores(logits, labels):
    """`{"top1", "top5"}` of `logits` against integer `labels`."""
    return {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}


def report(output_dir, model, model_file, evaluations, started, log, formats=()):
    """Writes `metrics.json` (`final_metrics(evaluations)`), the model and its exports; logs and returns the figures.

    Each file is written through a rename; `formats` (`keras_mae.export`)
    go to `output_dir/export/`.
    """
    metrics = final_metrics(evaluations)
    write_atomic(os.path.join(output_dir, "metrics.json"), json.dumps(metrics, indent=2))
    save_atomic(model, os.path.join(output_dir, model_file))
    if formats:
        from keras_mae import export

        written = export.export_model(export.float32_copy(model),
                                      os.path.join(output_dir, "export"), formats)
        log(f"  export         {', '.join(f'{k}: {v}' for k, v in written.items())}")
    result = {**metrics, "seconds": round(time.time() - started, 1)}
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
    """Runs `function()`; a bad value or image file is printed as `error: ...` with exit status 2.

    A run stopped by SIGTERM (`recipes.training.Preempted`, checkpoint written)
    prints where it stopped and exits with status 143.
    """
    from recipes.training import PREEMPTED_EXIT, Preempted

    try:
        function()
    except Preempted as stop:
        print(f"{stop}", file=sys.stderr)
        return PREEMPTED_EXIT
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
