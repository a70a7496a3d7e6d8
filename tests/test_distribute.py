"""Distribution: strategy selection, replica-distinct masks, 1-vs-N device equality, multi-worker.

Multi-device checks need device layouts fixed before the framework starts, so
they run tests/distribute_worker.py in fresh processes (with timeouts). Each
backend runs its own: TensorFlow (MirroredStrategy, MultiWorkerMirroredStrategy),
JAX (DataParallel), PyTorch (the clear error for multi-device).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

from keras_mae import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distribute_worker.py")
BACKEND = keras.backend.backend()
TINY = json.dumps(dict(hidden_dim=32, depth=1, num_heads=2, decoder_hidden_dim=16,
                       decoder_depth=1, decoder_num_heads=2, patch_size=8))

tensorflow_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow strategies")
jax_only = pytest.mark.skipif(BACKEND != "jax", reason="JAX DataParallel")


def worker_env(backend, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "XLA_FLAGS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
               TMPDIR=str(tmp_path), **extra)
    return env


def run_worker(mode, backend, tmp_path, timeout=240):
    """Runs one worker mode; returns its `RESULT` dict."""
    proc = subprocess.run([sys.executable, WORKER, mode], env=worker_env(backend, tmp_path),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --- every backend ----------------------------------------------------------

UNSUPPORTED = {"tensorflow": "data_parallel", "jax": "tpu", "torch": "mirrored"}


def test_unsupported_strategy_names_the_value_and_what_is_supported():
    name = UNSUPPORTED[BACKEND]
    with pytest.raises(ValueError, match=f"'{name}'.*Supported: default"):
        distribute.get_strategy(name)
    with pytest.raises(ValueError, match="'nope'"):
        distribute.get_strategy("nope")
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="not supported on the PyTorch backend"):
            distribute.get_strategy("data_parallel")


def test_default_strategy_scope_and_chief():
    strategy = distribute.get_strategy("default")
    assert distribute.num_replicas(strategy) == 1
    with distribute.scope(strategy):
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    assert distribute.is_chief()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        assert strategy is tf.distribute.get_strategy()
    else:
        assert strategy is None


def test_recipe_refuses_unsupported_strategy_before_training(tmp_path, capsys):
    from recipes import pretrain

    out = tmp_path / "run"
    code = pretrain.main(["--output-dir", str(out), "--strategy", UNSUPPORTED[BACKEND]])
    assert code == 2
    assert f"'{UNSUPPORTED[BACKEND]}'" in capsys.readouterr().err
    assert not (out / "checkpoint").exists()


# --- TensorFlow -------------------------------------------------------------

@tensorflow_only
def test_is_chief_reads_tf_config(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    for task, chief in [({"type": "worker", "index": 0}, True), ({"type": "worker", "index": 1}, False),
                        ({"type": "evaluator", "index": 0}, False)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert distribute.is_chief() is chief, task
    with_chief = {**cluster, "chief": ["127.0.0.1:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}}))
    assert not distribute.is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}}))
    assert distribute.is_chief()


@tensorflow_only
def test_tf_strategies_fail_clearly_without_their_configuration(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.get_strategy("multi_worker")
    with pytest.raises(ValueError, match="tpu_address=None"):
        distribute.get_strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.get_strategy("multi_worker")
    with pytest.raises(ValueError, match="tpu_address='x'"):
        distribute.get_strategy("mirrored", tpu_address="x")


@pytest.fixture(scope="module")
def tf_mirrored(tmp_path_factory):
    return run_worker("tf_mirrored", "tensorflow", tmp_path_factory.mktemp("mirrored"))


@tensorflow_only
def test_mirrored_replicas_draw_their_part_of_one_devices_masks_and_paths(tf_mirrored):
    assert tf_mirrored["replicas"] == 2
    masks, paths = np.array(tf_mirrored["masks"]), np.array(tf_mirrored["paths"])  # (draw, replica, B, ...)
    assert masks.shape == (2, 2, 2, 16) and (masks.sum(-1) == 12).all()
    for draw in masks:  # identical tokens on both replicas, yet different masks
        assert not np.array_equal(draw[0], draw[1])
    assert not np.array_equal(masks[0], masks[1])  # the generator advances between steps
    # together the replicas draw what one device draws for the global batch from the same seed
    np.testing.assert_array_equal(masks.reshape(2, 4, 16), tf_mirrored["single_masks"])
    assert paths.shape == (2, 2, 8, 3) and set(np.unique(paths)) == {0.0, 2.0}
    assert not np.array_equal(paths[0, 0], paths[0, 1])
    np.testing.assert_array_equal(paths.reshape(2, 16, 3), tf_mirrored["single_paths"])
    # on the one-replica path both replicas would mask the same patches
    for draw in np.array(tf_mirrored["unsliced_masks"]):
        assert np.array_equal(draw[0], draw[1])


@tensorflow_only
def test_mirrored_step_equals_single_device_step(tf_mirrored):
    assert tf_mirrored["max_update"] > 1e-3  # the step moved the weights
    assert tf_mirrored["max_diff"] < 1e-5
    np.testing.assert_allclose(tf_mirrored["loss_mirrored"], tf_mirrored["loss_single"], rtol=1e-5)


def pretrain_args(npz, out):
    return ["--config", "digits", "--dataset", npz, "--model-overrides", TINY,
            "--batch-size", "8", "--epochs", "1", "--warmup-epochs", "1",
            "--checkpoint-every-steps", "2", "--reconstruction-every-epochs", "1",
            "--strategy", "multi_worker", "--output-dir", str(out)]


def run_pair(command, tmp_path, name, timeout=300, envs=None):
    """Runs `command` as two processes; returns [(returncode, log)].

    `envs`: each process's environment; by default two MultiWorkerMirroredStrategy
    workers (TF_CONFIG on two free local ports).
    """
    if envs is None:
        ports = free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        envs = [worker_env("tensorflow", tmp_path / "tmp", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})) for index in range(2)]
    procs = []
    for index, env in enumerate(envs):
        log = open(tmp_path / f"{name}_{index}.log", "w+")
        procs.append((subprocess.Popen(command, env=env, cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, text=True), log))
    results = []
    try:
        for proc, log in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            results.append((proc.returncode, log.read()))
            log.close()
    return results


def test_wait_until_closed_returns_when_nothing_listens_any_more():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    address = "127.0.0.1:%d" % server.getsockname()[1]
    started = time.monotonic()
    assert not distribute.wait_until_closed(address, time.monotonic() + 0.3)  # still listening
    assert time.monotonic() - started >= 0.3
    threading.Timer(0.5, server.close).start()
    started = time.monotonic()
    assert distribute.wait_until_closed(address, time.monotonic() + 30)
    assert 0.4 <= time.monotonic() - started < 10


def test_leave_together_returns_at_once_without_workers():
    assert distribute.leave_together(None) == 1
    assert distribute.leave_together(distribute.get_strategy("default")) == 1


def pair_results(mode, tmp_path, key="chief", envs=None):
    """Runs a worker mode as a pair (of TF workers by default); returns {result[key]: RESULT dict}."""
    (tmp_path / "tmp").mkdir()
    results = {}
    for code, log in run_pair([sys.executable, WORKER, mode], tmp_path, mode, timeout=240,
                              envs=envs):
        lines = [line for line in log.splitlines() if line.startswith("RESULT ")]
        assert code == 0 and lines, log[-3000:]
        result = json.loads(lines[-1][len("RESULT "):])
        results[result[key]] = result
    return results


@tensorflow_only
def test_multi_worker_chief_leaves_after_the_other_worker_is_gone(tmp_path):
    results = pair_results("leave_order", tmp_path)
    # the other worker took 2 s more to exit after `leave_together`; the chief waited for it
    assert results[True]["returned_at"] > results[False]["exiting_at"]


@tensorflow_only
def test_multi_worker_each_worker_reads_its_half_and_the_global_batches_are_one_process_s(tmp_path):
    from keras_mae import data

    steps = {chief: result["steps"] for chief, result in pair_results("shard_batches",
                                                                          tmp_path).items()}
    one = [labels.numpy().tolist() for _, labels in data.labeled_dataset(
        (np.zeros((48, 4, 4, 1), np.uint8), np.arange(48)), 4, 8, training=True, seed=3, epoch=1,
        reshuffle_each_iteration=False)]
    assert len(steps[True]) == len(steps[False]) == len(one) == 6
    for worker in (True, False):   # each reads 24 records, none twice
        read = [v for step in steps[worker] for v in step]
        assert len(read) == len(set(read)) == 24
    for s, batch in enumerate(one):   # worker 0 holds the first half of each global batch
        assert steps[True][s] + steps[False][s] == batch


@pytest.fixture(scope="module")
def multi_worker_run(tmp_path_factory):
    """Two workers crash right after step 3 (checkpoint at step 2), then the pair restarts.

    Both runs end in `distribute.leave_together`; neither is retried.
    """
    return _multi_worker_scenario(tmp_path_factory.mktemp("multi_worker"))


def _multi_worker_scenario(tmp_path):
    (tmp_path / "tmp").mkdir()
    rng = np.random.RandomState(0)
    npz = str(tmp_path / "tiny.npz")
    np.savez(npz, x=(rng.rand(48, 32, 32, 3) * 255).astype("uint8"), y=rng.randint(0, 3, 48))
    out = tmp_path / "run"
    args = pretrain_args(npz, out)
    crashed = run_pair([sys.executable, WORKER, "pretrain_crash", "3", *args], tmp_path, "crash")
    latest_after_crash = (out / "checkpoint" / "latest").read_text()
    restarted = run_pair([sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), *args],
                         tmp_path, "restart")
    return dict(crashed=crashed, restarted=restarted, out=out, args=args, tmp=tmp_path / "tmp",
                latest_after_crash=latest_after_crash)


@tensorflow_only
def test_multi_worker_pretraining_resumes_after_the_pair_is_killed(multi_worker_run):
    crashed, restarted = multi_worker_run["crashed"], multi_worker_run["restarted"]
    for code, log in crashed:
        assert code == 3 and "CRASH at step 3" in log, log[-3000:]
    assert multi_worker_run["latest_after_crash"] == "step_00000002"
    for code, log in restarted:
        assert code == 0, log[-3000:]
        # both workers load the chief's step-2 checkpoint, not step 0
        assert "(step 2 of 6)" in log and "2 replica(s)" in log, log[-3000:]
        assert "barrier        2 replicas finished" in log, log[-3000:]
    assert "chief" in restarted[0][1] and "worker, writing to" in restarted[1][1]


@tensorflow_only
def test_multi_worker_chief_checkpoint_loads_and_worker_writes_nothing(multi_worker_run):
    from keras_mae import checkpoint
    from recipes import pretrain

    out = multi_worker_run["out"]
    assert sorted(os.listdir(out)) == [
        "checkpoint", "config.json", "encoder.keras", "encoder.weights.h5", "history.csv",
        "keras_hub", "model.keras", "preset", "reconstructions", "tensorboard"]
    folder = checkpoint.latest_checkpoint(str(out / "checkpoint"))
    assert folder.endswith("step_00000006")
    config = pretrain.resolve_config(pretrain.build_parser().parse_args(multi_worker_run["args"]))
    model = pretrain.build_model(config)
    model.build()
    optimizer, _ = pretrain.build_optimizer(config, model, steps_per_epoch=6)
    model.compile(optimizer=optimizer)
    state = checkpoint.restore_checkpoint(folder, model)
    assert state["global_step"] == 6 and int(model.optimizer.iterations.numpy()) == 6
    pred = keras.ops.convert_to_numpy(model(np.zeros((1, 32, 32, 3), "float32"))["pred"])
    assert np.isfinite(pred).all()
    # the restarted non-chief removed its temporary folder (the crashed one could not)
    left = os.listdir(multi_worker_run["tmp"])
    assert len([name for name in left if name.startswith("keras-mae-worker-")]) <= 1


# --- JAX --------------------------------------------------------------------

@jax_only
def test_jax_data_parallel_step_equals_single_device_step(tmp_path):
    result = run_worker("jax_step", "jax", tmp_path)
    assert result["replicas"] == 2 and result["weight_devices"] == 2
    assert result["max_update"] > 1e-3
    assert result["max_diff"] < 1e-5
    np.testing.assert_allclose(result["loss_mirrored"], result["loss_single"], rtol=1e-5)


@jax_only
def test_jax_processes_each_read_their_half_and_train_on_the_global_batches(tmp_path):
    from distribute_worker import fixed_noise_model, tf_noise

    from keras_mae import data

    port = free_ports(1)[0]
    envs = [worker_env("jax", tmp_path / "tmp", JAX_COORDINATOR=f"127.0.0.1:{port}",
                       JAX_PROCESS_ID=str(index)) for index in range(2)]
    results = pair_results("jax_process_batches", tmp_path, key="process", envs=envs)
    rng = np.random.RandomState(0)
    records = ((rng.rand(48, 32, 32, 3) * 255).astype(np.uint8), np.arange(48))
    one = data.labeled_dataset(records, 32, 8, training=True, seed=3, epoch=1,
                               reshuffle_each_iteration=False)
    expected = [labels.numpy().tolist() for _, labels in one]
    assert not results[0]["auto_shard"]
    for process in (0, 1):   # each process reads 24 records, none twice
        read = [v for step in results[process]["steps"] for v in step]
        assert len(read) == len(set(read)) == 24
    for s, batch in enumerate(expected):
        assert results[0]["steps"][s] + results[1]["steps"][s] == batch
    # one process fitting the global batches ends where the two processes end
    keras.utils.set_random_seed(0)
    model = fixed_noise_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(one.map(lambda x, y: {"images": x, "noise": tf_noise(x)}), epochs=1,
                        steps_per_epoch=2, verbose=0)
    for process in (0, 1):
        np.testing.assert_allclose(results[process]["loss"], history.history["loss"][-1],
                                   rtol=1e-5)


@jax_only
def test_jax_default_installs_no_distribution():
    assert distribute.get_strategy("default") is None
    assert keras.distribution.distribution() is None


def classify_inputs(tmp_path):
    from conftest import write_recipe_inputs

    rng = np.random.RandomState(0)
    splits = {name: (rng.randint(0, 256, (n, 16, 16, 3)).astype("uint8"), np.arange(n) % 3)
              for name, n in (("train", 32), ("eval", 12))}
    return write_recipe_inputs(tmp_path, splits, splits["eval"][0],
                               dict(image_size=16, patch_size=8, hidden_dim=16, depth=2,
                                    num_heads=2))


def final_weights(out):
    from test_interruption import weights

    with open(os.path.join(out, "checkpoint", "latest")) as f:
        folder = os.path.join(out, "checkpoint", f.read().strip())
    return weights(os.path.join(folder, "state.weights.h5"))


def _recipe_worker(tmp_path, recipe, argv):
    proc = subprocess.run([sys.executable, WORKER, "recipe", recipe, *argv],
                          env=worker_env(BACKEND, tmp_path), cwd=ROOT, capture_output=True,
                          text=True, timeout=400)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


TWO_DEVICES = {"tensorflow": "mirrored", "jax": "data_parallel"}


@pytest.mark.skipif(BACKEND not in TWO_DEVICES, reason="TensorFlow or JAX strategies")
@pytest.mark.parametrize("accumulated", [False, True])
def test_finetune_epoch_on_two_devices_or_accumulated_equals_one_device(tmp_path, accumulated):
    """One epoch (2 steps of 16: mixup/cutmix per 8, RandAugment, erasing) on 2 replicas (drop
    path 0.1: each replica draws its part of the global batch's paths), or as 4 accumulated steps
    of 8 (no drop path: each draws its own), ends where one device with batch 16 ends."""
    files = classify_inputs(tmp_path)
    common = ["--config", "digits", "--encoder", files["encoder"], "--dataset", files["train"],
              "--eval-dataset", files["eval"], "--epochs", "1", "--warmup-epochs", "0.5",
              "--drop-path-rate", "0" if accumulated else "0.1", "--mixup", "0.8", "--cutmix", "1.0",
              "--mix-group-size", "8", "--rand-augment-ops", "2", "--erasing-prob", "0.25",
              "--base-lr", "0.05", "--jit-compile", "false"]
    single = str(tmp_path / "single")
    _recipe_worker(tmp_path, "finetune", [*common, "--batch-size", "16", "--output-dir", single])
    other = str(tmp_path / "other")
    if accumulated:
        extra = ["--batch-size", "8", "--accum-steps", "2"]
    else:
        extra = ["--batch-size", "16", "--strategy", TWO_DEVICES[BACKEND]]
    printed = _recipe_worker(tmp_path, "finetune", [*common, *extra, "--output-dir", other])
    if not accumulated:
        assert "2 replica(s), 8 images each" in printed
    a, b = final_weights(single), final_weights(other)
    kernel = [k for k in a if k.endswith("vars/0") and "patch_embedding" in k]
    assert kernel
    initial = keras.saving.load_model(files["encoder"]).patch_embedding.weights[0]
    moved = np.abs(a[kernel[0]] - keras.ops.convert_to_numpy(initial)).max()
    assert moved > 1e-4  # the steps moved the weights
    if accumulated:  # the optimizer holds its accumulators besides the moments
        a, b = ({k: v for k, v in w.items() if not k.startswith("optimizer/")} for w in (a, b))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=2e-6, err_msg=name)
    ma = json.load(open(os.path.join(single, "metrics.json")))
    mb = json.load(open(os.path.join(other, "metrics.json")))
    assert ma["top1"] == mb["top1"]


@pytest.mark.skipif(BACKEND not in TWO_DEVICES, reason="TensorFlow or JAX strategies")
def test_probe_on_two_devices(tmp_path):
    """The probe's head on 2 replicas: equal to one device on JAX (one program over the global
    batch); on TensorFlow it trains, each replica's BatchNorm on its own half (not compared)."""
    files = classify_inputs(tmp_path)
    common = ["--config", "digits", "--encoder", files["encoder"], "--dataset", files["train"],
              "--eval-dataset", files["eval"], "--epochs", "2", "--batch-size", "16",
              "--base-lr", "1", "--jit-compile", "false"]
    single, other = str(tmp_path / "single"), str(tmp_path / "other")
    _recipe_worker(tmp_path, "linear_probe", [*common, "--output-dir", single])
    printed = _recipe_worker(tmp_path, "linear_probe", [*common, "--strategy",
                                                        TWO_DEVICES[BACKEND], "--output-dir",
                                                        other])
    assert "2 replica(s), 8 images each" in printed
    a, b = final_weights(single), final_weights(other)
    assert a.keys() == b.keys()
    if BACKEND == "jax":
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=2e-6, err_msg=name)
    else:  # each replica's BatchNorm normalises its 8 images: not compared, only finite
        for name in a:
            assert np.isfinite(b[name]).all(), name
    assert 0 <= json.load(open(os.path.join(other, "metrics.json")))["top1"] <= 1
