"""A pretraining run killed with SIGKILL resumes and ends where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from test_pretrain_recipe import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(npz, out):
    return [sys.executable, os.path.join(REPO, "recipes", "pretrain.py"), "--config", "digits",
            "--dataset", npz, "--model-overrides", TINY, "--batch-size", "8", "--epochs", "3",
            "--warmup-epochs", "1", "--checkpoint-every-steps", "1",
            "--reconstruction-every-epochs", "3", "--jit-compile", "false", "--output-dir", out]


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


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    rng = np.random.RandomState(0)
    npz = str(tmp_path / "data.npz")
    np.savez(npz, x=(rng.rand(24, 32, 32, 3) * 255).astype("uint8"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")

    run = subprocess.run(command(npz, straight), env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]

    process = subprocess.Popen(command(npz, killed), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # of 9 steps, 3 an epoch: mid-epoch, so the resumed epoch continues its permutation
    kill_after = int(np.random.RandomState(int(time.time())).choice([1, 2, 4, 5]))
    deadline = time.time() + 600
    while latest_step(killed) < kill_after and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    stopped_at = latest_step(killed)
    assert 0 < stopped_at < 9, f"kill landed at step {stopped_at}"

    resumed = subprocess.run(command(npz, killed), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {stopped_at} of 9)" in resumed.stdout

    state = json.load(open(os.path.join(killed, "checkpoint", "step_00000009", "state.json")))
    assert state["global_step"] == 9
    a = weights(os.path.join(straight, "checkpoint", "step_00000009", "state.weights.h5"))
    b = weights(os.path.join(killed, "checkpoint", "step_00000009", "state.weights.h5"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
