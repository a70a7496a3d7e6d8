"""Helpers shared by the recipes: flags' checks, encoder and data loading, atomic writes, reports.

The recipes (`pretrain.py`, `linear_probe.py`, `finetune.py`) import from here
and never from each other.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time

from recipes.flags import str2bool


# glibc's malloc kept on its heap (one arena, no mmap, no trim). XLA:CPU allocates a
# training step's temporaries as one buffer at every step, which glibc otherwise maps
# and unmaps each time; `benchmarks/train_throughput.py` (the `heap_kept` rows) measures
# the page faults, the system time and the speed with and without.
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


def switchboard():
    """`keras_mae.config`, loaded without running `keras_mae/__init__.py` (which imports Keras).

    The module imports nothing heavy, so a recipe reads its choices before
    anything imports Keras. It is registered under its own name: a later
    `import keras_mae` uses this same module, with any choice already set.
    """
    import importlib.util

    name = "keras_mae.config"
    if name not in sys.modules:
        package = importlib.util.find_spec("keras_mae").submodule_search_locations[0]
        spec = importlib.util.spec_from_file_location(name, os.path.join(package, "config.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def restart_with_heap_kept():
    """On JAX, runs this command again, once, with `HEAP_KEPT_ENV` set from the start.

    glibc reads these settings when a process starts; set later (`mallopt`)
    they miss the threads that have already allocated. So a recipe's command
    line calls this first, before anything imports Keras: the process
    replaces itself (`os.execve`: same pid, arguments and directory) with
    the settings added. Nothing happens on another backend, when
    `keras_mae.config.keep_heap()` is off (`KERAS_MAE_KEEP_HEAP=0`, or not
    Linux with glibc), when started otherwise than as a script, or when any
    of the three variables is already set.
    """
    if configured_backend() != "jax" or not switchboard().keep_heap():
        return
    if any(name in os.environ for name in HEAP_KEPT_ENV) or not os.path.isfile(sys.argv[0]):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **HEAP_KEPT_ENV))


def parse_jit_compile(value):
    """`--jit-compile` (`"auto"`, true or false) -> `"auto"` or a bool.

    The models' `compile` resolves `"auto"` (`keras_mae.config.resolve_jit_compile`).
    """
    if value == "auto" or isinstance(value, bool):
        return value
    try:
        return str2bool(str(value))
    except argparse.ArgumentTypeError:
        raise ValueError(f"--jit-compile must be auto, true or false. Received: {value!r}")


def backend_note(model):
    """The run header's backend line: `model`'s dtype policy, `jit_compile` and `keras_mae.config`'s choices."""
    choices = switchboard().describe(model.dtype_policy.compute_dtype)
    policy = model.dtype_policy.name
    parts = [choices["backend"] + ("" if policy == "float32" else f", {policy}"),
             f"jit_compile {model.jit_compile}", f"attention {choices['attention_kernel']}",
             f"remat {'on' if choices['remat'] else 'off'}"]
    if choices["backend"] == "jax":
        parts.append(f"glibc heap {'kept' if choices['keep_heap'] else 'default'}")
    return "; ".join(parts)


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
    from keras_mae.config import resolve_jit_compile

    jit_compile = resolve_jit_compile(parse_jit_compile(config.jit_compile), replicas=replicas)
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile)
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
    after the last) to `evaluations.json`, each under its epoch numbered as
    the progress bar shows it (from 1). Returns the evaluations.
    """
    from recipes.training import after_progress_bar, fit_epochs, history_logger

    path = os.path.join(write_dir, "evaluations.json")
    later = after_progress_bar(log)
    fit_epochs(model, epoch_dataset, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
               start_step=start_step, checkpoint_dir=os.path.join(write_dir, "checkpoint"),
               every_steps=config.checkpoint_every_steps,
               callbacks=[evaluation_callback(score, config.eval_every_epochs, config.epochs,
                                              path, later),
                          history_logger(os.path.join(write_dir, "history.csv")), later],
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
    if os.path.isdir(os.path.expanduser(config.dataset)):
        return train
    return load_dataset(config.dataset, "--dataset", config.eval_split, config.data_dir)


def load_sources(config):
    """(train source, eval source, num_classes, note); raises for unlabelled data."""
    from keras_mae import data

    train = load_dataset(config.dataset, "--dataset", config.split, config.data_dir,
                         config.skip_bad_images)
    if config.train_images:
        train = data.subset_source(train, config.train_images, seed=config.seed)
    note = ""
    if config.eval_dataset:
        evaluation = load_dataset(config.eval_dataset, "--eval-dataset", config.eval_split,
                                  config.data_dir)
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


def hide_cuda_probe_error(environ=None):
    """Sets `TF_CPP_MIN_LOG_LEVEL=3` on a Linux machine without a CUDA driver, unless it is set.

    TensorFlow's Linux build looks for a GPU when it starts and, finding no
    CUDA driver, logs `E0000 ... failed call to cuInit: ... CUDA error` in
    every run: an error line on a machine that has no GPU to use. A recipe's
    command line calls this before anything imports TensorFlow (the data
    pipelines import it on every backend). The level keeps TensorFlow's C++
    log lines below FATAL out (Python exceptions are not log lines).
    Nothing changes where the driver loads (a GPU machine, WSL with a GPU),
    and no device is hidden; a variable set by the user wins
    (`TF_CPP_MIN_LOG_LEVEL=0` shows all of TensorFlow's lines).
    """
    import ctypes

    environ = os.environ if environ is None else environ
    if "TF_CPP_MIN_LOG_LEVEL" in environ or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libcuda.so.1")  # what TensorFlow loads
    except OSError:
        environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


@contextlib.contextmanager
def output_directory(path):
    """`check_output_dir(path)` for a `with` block; the folders it made go again if the block fails while they are empty.

    A run that stops on an error before writing anything (data that does not
    load) leaves no folder behind; a folder holding anything stays.
    """
    made, folder = [], os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        made.append(folder)
        folder = os.path.dirname(folder)
    check_output_dir(path)
    try:
        yield
    except BaseException:
        for folder in made:  # the deepest first
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise


# what --dataset (and --eval-dataset, --knn-dataset) take: `keras_mae.data.load_source`'s forms
DATASET_FORMS = ("digits (scikit-learn's 8x8 digits), tfds:NAME (a prepared TensorFlow Datasets "
                 "set; --data-dir its folder), a folder of images (flat, or one sub-folder per "
                 "class), or a .npz file with x and optional y (several: comma-separated)")
# a TFDS name, `name[/config][:version]`, which a bare value may be
_TFDS_NAME = re.compile(r"[a-z0-9_]+(/[\w.+-]+)?(:[\w.*]+)?")


def check_dataset_flag(value, flag="--dataset"):
    """Fails on a data flag's value that names no data, before anything imports TensorFlow.

    Whether a bare name is a TFDS name, and whether TFDS data is prepared,
    shows when the data loads (`load_dataset`).
    """
    def fail(problem):
        raise data_flag_error(flag, value, problem)

    if not isinstance(value, str) or not value.strip():
        fail("no value")
    if value == "digits":
        return
    if value.startswith("tfds:"):
        if not _TFDS_NAME.fullmatch(value[len("tfds:"):]):
            fail("no TFDS name after 'tfds:'")
        return
    if "," in value:
        for path in (p.strip() for p in value.split(",")):
            if not path.endswith(".npz"):
                fail(f"a comma-separated list holds .npz files only, not {path!r}")
            if not os.path.isfile(os.path.expanduser(path)):
                fail(f"no file {path!r}")
        return
    path = os.path.expanduser(value)
    if os.path.isfile(path) and not path.endswith(".npz"):
        fail("a file other than a .npz file")
    if not os.path.exists(path) and (value.endswith(".npz") or not _TFDS_NAME.fullmatch(value)):
        fail("no such file or folder")


def check_data_flags(config):
    """`check_dataset_flag` for `--dataset` and, when set, `--eval-dataset` and `--knn-dataset`."""
    check_dataset_flag(config.dataset)
    for name in ("eval_dataset", "knn_dataset"):
        if getattr(config, name, ""):
            check_dataset_flag(getattr(config, name), "--" + name.replace("_", "-"))
    if config.skip_bad_images and not os.path.isdir(os.path.expanduser(config.dataset)):
        raise ValueError(f"--skip-bad-images true applies to a folder of images only. "
                         f"Received: --dataset {config.dataset!r}")


def data_flag_error(flag, value, problem):
    """The `ValueError` of a data flag naming no data: the problem, what the flag takes, the value."""
    return ValueError(f"{flag}: {problem}. {flag} takes {DATASET_FORMS}. Received: {flag} {value!r}")


def load_dataset(value, flag, split, data_dir, skip_bad_images=False):
    """`keras_mae.data.load_source(value, ...)`, its errors naming `flag` and `--data-dir`."""
    from keras_mae import data
    from keras_mae.data.sources import NotPreparedError, UnknownSourceError

    try:
        return data.load_source(value, split=split, data_dir=data_dir,
                                skip_bad_images=skip_bad_images)
    except UnknownSourceError as error:
        raise data_flag_error(flag, value, error.problem) from error
    except NotPreparedError as error:
        where = (repr(error.data_dir) if error.data_dir else
                 "TFDS' default folder ($TFDS_DATA_DIR, else ~/tensorflow_datasets)")
        received = f"{flag} {value!r}" + (f", --data-dir {data_dir!r}" if data_dir else "")
        raise ValueError(
            f"{flag}: the TensorFlow Datasets set {error.name!r} (split {error.split!r}) is not "
            f"prepared in {where}. Prepare it where there is network access (`tfds build "
            f"{error.name} --data_dir DIR`), then pass --data-dir DIR. Received: {received}") \
            from error
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from error
