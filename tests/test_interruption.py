"""Runs stopped by a real signal on a real process resume and end where an uninterrupted run ends.

SIGKILL (a crash, an out-of-memory kill) loses the step in progress; the
same command continues from the last checkpoint. SIGTERM (preemptible
machines, TPU maintenance, batch schedulers) lets the step finish, writes a
checkpoint within seconds and exits with status 143; the same command
continues. Each recipe is run straight, then stopped mid-epoch and resumed,
and the final checkpoints (and metrics) are compared.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import write_recipe_inputs
from test_pretrain_recipe import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = dict(image_size=16, patch_size=8, hidden_dim=16, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interruption")
    rng = np.random.RandomState(0)
    npz = str(folder / "images.npz")
    np.savez(npz, x=(rng.rand(24, 32, 32, 3) * 255).astype("uint8"))
    splits = {name: (rng.randint(0, 256, (n, 16, 16, 3)).astype("uint8"), np.arange(n) % 3)
              for name, n in (("train", 24), ("eval", 12))}
    paths = write_recipe_inputs(folder, splits, splits["eval"][0], ARCH)
    paths["images"] = npz
    return paths


def command(recipe, files, out, epochs=3):
    """The recipe on 24 images, batch 8: 3 steps an epoch, a checkpoint every step."""
    common = ["--batch-size", "8", "--epochs", str(epochs), "--warmup-epochs", "1",
              "--checkpoint-every-steps", "1", "--jit-compile", "false", "--output-dir", out]
    if recipe == "pretrain":
        extra = ["--config", "digits", "--dataset", files["images"], "--model-overrides", TINY,
                 "--reconstruction-every-epochs", "3", "--knn-every-epochs", "0"]
    else:
        extra = ["--config", "digits", "--encoder", files["encoder"], "--dataset",
                 files["train"], "--eval-dataset", files["eval"]]
    if recipe == "linear_probe":
        extra += ["--augment", "true"]
    return [sys.executable, os.path.join(REPO, "recipes", f"{recipe}.py"), *extra, *common]


def latest_step(out):
    try:
        with open(os.path.join(out, "checkpoint", "latest")) as f:
            return int(f.read().strip().split("_")[1])
    except (OSError, ValueError, IndexError):
        return 0


def weights(path):
    values = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: values.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return values


def environment():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)


def stop_at(cmd, out, after, signum):
    """Starts `cmd`, sends `signum` once a checkpoint of step >= `after` exists; returns the process."""
    process = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while latest_step(out) < after and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    return process


def assert_same_end(straight, resumed, total):
    final = f"step_{total:08d}"
    state = json.load(open(os.path.join(resumed, "checkpoint", final, "state.json")))
    assert state["global_step"] == total
    a = weights(os.path.join(straight, "checkpoint", final, "state.weights.h5"))
    b = weights(os.path.join(resumed, "checkpoint", final, "state.weights.h5"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    if os.path.exists(os.path.join(straight, "metrics.json")):
        want = json.load(open(os.path.join(straight, "metrics.json")))
        got = json.load(open(os.path.join(resumed, "metrics.json")))
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
        # every epoch evaluated once, none twice, none of a part of an epoch
        assert (json.load(open(os.path.join(resumed, "evaluations.json"))).keys()
                == json.load(open(os.path.join(straight, "evaluations.json"))).keys())
        history = open(os.path.join(resumed, "history.csv")).read().strip().splitlines()
        assert len(history) == 1 + 3, history


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """Each recipe's uninterrupted run, made once for the tests that compare with it.

    Started as a user starts it (TensorFlow's log level unset); what it
    printed is kept in `get.printed[recipe]`.
    """
    folder, made, printed = tmp_path_factory.mktemp("straight"), {}, {}
    env = {name: value for name, value in environment().items() if name != "TF_CPP_MIN_LOG_LEVEL"}

    def get(recipe, files):
        if recipe not in made:
            out = str(folder / recipe)
            run = subprocess.run(command(recipe, files, out), env=env,
                                 capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, run.stderr[-2000:]
            made[recipe], printed[recipe] = out, run.stdout + run.stderr
        return made[recipe]

    get.printed = printed
    return get


@pytest.mark.parametrize("recipe", ["pretrain", "finetune"])
def test_sigkill_then_resume_matches_uninterrupted_run(recipe, files, straight_runs, tmp_path):
    straight, killed = straight_runs(recipe, files), str(tmp_path / "killed")
    # of 9 steps, 3 an epoch: mid-epoch, so the resumed epoch continues its permutation
    kill_after = int(np.random.RandomState(int(time.time())).choice([1, 2, 4, 5]))
    process = stop_at(command(recipe, files, killed), killed, kill_after, signal.SIGKILL)
    process.wait(timeout=60)
    stopped_at = latest_step(killed)
    assert 0 < stopped_at < 9, f"kill landed at step {stopped_at}"

    resumed = subprocess.run(command(recipe, files, killed), env=environment(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {stopped_at} of 9)" in resumed.stdout
    assert_same_end(straight, killed, 9)


@pytest.mark.parametrize("recipe", ["pretrain", "finetune", "linear_probe"])
def test_sigterm_writes_a_checkpoint_exits_143_and_the_same_command_continues(
        recipe, files, straight_runs, tmp_path):
    straight, stopped = straight_runs(recipe, files), str(tmp_path / "stopped")
    process = stop_at(command(recipe, files, stopped), stopped, 1, signal.SIGTERM)
    sent = time.time()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert time.time() - sent < 30  # the step in progress, a checkpoint, and out
    step = latest_step(stopped)
    assert f"stopped by SIGTERM at step {step} of 9" in err, err[-2000:]
    assert "run the same command to continue" in err
    assert 0 < step < 9
    assert not os.path.exists(os.path.join(stopped, "metrics.json"))

    resumed = subprocess.run(command(recipe, files, stopped), env=environment(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {step} of 9)" in resumed.stdout
    assert_same_end(straight, stopped, 9)


@pytest.mark.parametrize("recipe", ["pretrain", "finetune", "linear_probe"])
def test_uninterrupted_runs_log_no_error_or_warning_line_of_ours(recipe, files, straight_runs):
    """The straight runs above, read for their logs (no run of their own)."""
    straight_runs(recipe, files)
    printed = straight_runs.printed[recipe]
    # TensorFlow's CUDA probe on a machine without a driver: "E0000 ... failed call to cuInit"
    assert "cuInit" not in printed, printed[-3000:]
    # Python warnings, e.g. Keras' "UserWarning: `shuffle=True` was passed, but will be ignored"
    lines = printed.splitlines()
    warned = [line for line in lines if re.search(r"\w+Warning: ", line)]
    assert not warned, warned
    # an evaluation's line comes once Keras' progress bar has ended the epoch's line
    evaluations = [i for i, line in enumerate(lines) if line.startswith("  eval ")]
    assert len(evaluations) == (0 if recipe == "pretrain" else 3)
    for i in evaluations:
        assert re.match(r"\d+/\d+ - .*loss: ", lines[i - 1]), lines[i - 2:i + 1]
