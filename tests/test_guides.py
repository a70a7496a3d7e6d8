"""The guides (guides/*.py) run end to end, and their notebooks are up to date.

Each guide runs in small mode (`KERAS_MAE_GUIDE_SMALL=1`: digits or synthetic data, a
tiny model, a few steps, no network) as a subprocess with this process's
`KERAS_BACKEND`, in its own temporary working directory (also its `TMPDIR`, so the
figures it saves land there), with `MPLBACKEND=Agg` and a timeout. Every guide runs on
every backend. The guides run two at a time, as one batch started by the first guide
test (only the guides selected, e.g. with `-k`). Compilation dominates such tiny runs, so
the subprocesses get XLA's quick-compile flags (less optimisation of the compiled code;
these tests check that the guides run, not their numbers) and, on JAX, a compilation
cache shared by the guides of one session.

Measured on a 2-core machine shared with other jobs (this whole file, one backend):
64-80 s of CPU time (torch least, TensorFlow most); 54-89 s wall at a load average of
2-4 from the other jobs, 80-133 s at a load of 5.

`guides/make_notebooks.py --check` must pass: regenerate the notebooks after editing a
guide (`python guides/make_notebooks.py`).
"""

import concurrent.futures
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDES = os.path.join(ROOT, "guides")
BACKEND = keras.backend.backend()
TIMEOUT_S = 300
PARALLEL = 2
QUICK_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"

# Started first: the slowest guides (measured), so that two workers finish together.
SLOWEST_FIRST = ("probe_and_finetune", "official_weights", "pretrain_cifar10", "distributed")

# Figures each guide must save (file names, anywhere under its working directory).
FIGURES = {
    "pretrain_cifar10": ["training_images.png", "loss.png", "knn.png",
                         "reconstructions_over_training.png", "epoch_0000.png"],
    "probe_and_finetune": ["class_token_pca.png", "probe_and_finetune.png"],
    "official_weights": ["mask_ratios.png", "grid_075.png"],
    "distributed": ["learning_rate_vs_devices.png", "loss.png"],
}


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_notebooks", os.path.join(GUIDES, "make_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_notebooks = _load_generator()
NAMES = make_notebooks.guide_names()


def guide_env(workdir, jax_cache):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CONFIG", "TPU_NAME", "XLA_FLAGS", "KERAS_MAE_GUIDE_SMALL")}
    env.update(KERAS_BACKEND=BACKEND, KERAS_MAE_GUIDE_SMALL="1", MPLBACKEND="Agg",
               TMPDIR=workdir, TF_CPP_MIN_LOG_LEVEL="2", XLA_FLAGS=QUICK_XLA,
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if BACKEND == "jax":
        env.update(JAX_COMPILATION_CACHE_DIR=jax_cache,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def run_guide(name, workdir, jax_cache):
    """Runs guide `name` in small mode; returns (returncode, output, seconds)."""
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, os.path.join(GUIDES, name + ".py")], cwd=workdir,
            env=guide_env(workdir, jax_cache), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
        code, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as error:
        code, output = "timeout", f"timed out after {TIMEOUT_S} s\n{error.stdout or ''}"
    return code, output, time.time() - started


@pytest.fixture(scope="module")
def guide_runs(request, tmp_path_factory):
    """Starts the selected guides (PARALLEL at a time); maps name -> (future, workdir)."""
    selected = [item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_guide_runs_in_small_mode"
                and item.module is request.module]
    base = tmp_path_factory.mktemp("guides")
    jax_cache = str(base / "jax_cache")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL)
    runs = {}
    order = {name: i for i, name in enumerate(SLOWEST_FIRST + tuple(NAMES))}
    for name in sorted(set(selected), key=order.__getitem__):
        workdir = str(base / name)
        runs[name] = (pool.submit(run_guide, name, workdir, jax_cache), workdir)
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("name", NAMES)
def test_guide_runs_in_small_mode(name, guide_runs):
    future, workdir = guide_runs[name]
    code, output, seconds = future.result()
    assert code == 0, f"guide {name} failed ({code}) on {BACKEND}:\n{output[-6000:]}"
    saved = {os.path.basename(p) for p in glob.glob(os.path.join(workdir, "**", "*.png"),
                                                   recursive=True)}
    missing = [f for f in FIGURES[name] if f not in saved]
    assert not missing, f"guide {name} saved {sorted(saved)}, not {missing}"
    print(f"{name} on {BACKEND}: {seconds:.1f} s")


def test_every_guide_is_checked():
    assert sorted(FIGURES) == NAMES


def test_notebooks_are_up_to_date():
    problems = make_notebooks.stale_notebooks()
    assert not problems, ("Notebooks out of date (run `python guides/make_notebooks.py`):\n"
                          + "\n".join(problems))


def test_check_mode_exit_status(tmp_path, monkeypatch):
    assert make_notebooks.main(["--check"]) == 0
    # A stale copy of the notebook folder makes --check fail.
    stale = tmp_path / "ipynb"
    stale.mkdir()
    for name in NAMES:
        (stale / f"{name}.ipynb").write_text("{}\n")
    monkeypatch.setattr(make_notebooks, "NOTEBOOK_DIR", str(stale))
    assert make_notebooks.main(["--check"]) == 1


@pytest.mark.parametrize("name", NAMES)
def test_guide_conventions(name):
    """Header, Colab badge, install line and backend form field in the first code cell."""
    with open(os.path.join(GUIDES, name + ".py"), encoding="utf-8") as f:
        source = f.read()
    notebook = json.loads(make_notebooks.render(source, name))
    assert notebook["nbformat"] == 4
    first = "".join(notebook["cells"][0]["source"])
    assert make_notebooks.colab_url(name) in first
    assert ("https://colab.research.google.com/github/keras-mae/keras-mae/blob/main/guides/"
            f"ipynb/{name}.ipynb") in first
    header = make_notebooks.parse_header(make_notebooks.split_blocks(source)[0][1])
    assert header["Author"] == "keras-mae contributors"
    assert header["Accelerator"] == "GPU"
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    assert setup.startswith("!pip install -q git+https://github.com/keras-mae/keras-mae\n")
    assert 'backend = "jax"  # @param ["tensorflow", "jax", "torch"]' in setup
    assert 'os.environ.setdefault("KERAS_BACKEND", backend)' in setup
    # The script form keeps the install line a comment, so it runs as plain Python.
    assert "\n# !pip install -q git+https://github.com/keras-mae/keras-mae\n" in source
    compile(source, name + ".py", "exec")


def test_generator_splits_cells():
    source = '\n'.join([
        '"""', 'Title: T', 'Author: A', 'Date created: 2026/01/01', 'Last modified: 2026/01/02',
        'Description: D', 'Accelerator: None', '"""', '',
        '"""', '## Part', 'Some *text*.', '"""', '',
        '# !pip install x', 'def f():', '    """Docstring stays code."""', '    return 1', '',
        '"""One line of markdown."""', 'x = f()', ''])
    notebook = json.loads(make_notebooks.render(source, "demo"))
    kinds = [c["cell_type"] for c in notebook["cells"]]
    assert kinds == ["markdown", "markdown", "code", "markdown", "code"]
    assert notebook["cells"][1]["source"] == ["## Part\n", "Some *text*."]
    assert notebook["cells"][2]["source"][0] == "!pip install x\n"
    assert '    """Docstring stays code."""\n' in notebook["cells"][2]["source"]
    assert notebook["cells"][3]["source"] == ["One line of markdown."]
    assert "accelerator" not in notebook["metadata"]
    with pytest.raises(ValueError, match="missing"):
        make_notebooks.render('"""\nTitle: T\n"""\nx = 1\n', "demo")
