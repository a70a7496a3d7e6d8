import csv
import json
import os

import keras
import numpy as np
import pytest

import keras_mae
from recipes import pretrain
from recipes.pretrain_configs import CONFIGS, get_config

TINY = json.dumps(dict(hidden_dim=32, depth=2, num_heads=4, decoder_hidden_dim=16,
                       decoder_depth=1, decoder_num_heads=2, patch_size=8))


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.RandomState(0)
    x = (rng.rand(48, 32, 32, 3) * 255).astype("uint8")
    y = rng.randint(0, 3, 48)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def args(npz, out, *extra):
    """The recipe's flags for a tiny run; uncompiled (a later `--jit-compile` in `extra` wins)."""
    return ["--config", "digits", "--dataset", npz, "--model-overrides", TINY,
            "--batch-size", "16", "--epochs", "2", "--warmup-epochs", "1",
            "--checkpoint-every-steps", "2", "--reconstruction-every-epochs", "1",
            "--jit-compile", "false", "--output-dir", str(out), *extra]


def history_losses(out):
    return [float(row["loss"]) for row in csv.DictReader(open(out / "history.csv"))]


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="under XLA, TensorFlow's stateless RNG draws other masks for the same seed")
def test_default_jit_compile_trains_as_the_uncompiled_step(npz, tmp_path):
    """`--jit-compile auto`: XLA on JAX, the MAE's compiled step on PyTorch; the same losses."""
    from recipes.common import parse_jit_compile

    assert parse_jit_compile("auto", torch_compile=True) is True
    assert parse_jit_compile("auto", backend="torch") is False
    assert pretrain.main(args(npz, tmp_path / "eager", "--jit-compile", "false")) == 0
    assert pretrain.main(args(npz, tmp_path / "auto", "--jit-compile", "auto")) == 0
    np.testing.assert_allclose(history_losses(tmp_path / "auto"), history_losses(tmp_path / "eager"),
                               rtol=1e-4)


def test_pretrain_writes_documented_layout_and_resumes(npz, tmp_path):
    out = tmp_path / "run"
    assert pretrain.main(args(npz, out, "--epochs", "1")) == 0
    state = json.load(open(out / "checkpoint" / open(out / "checkpoint" / "latest").read() / "state.json"))
    assert state["global_step"] == 3
    # the same command with more epochs continues from step 3, not from scratch
    assert pretrain.main(args(npz, out)) == 0
    latest = open(out / "checkpoint" / "latest").read()
    assert latest == "step_00000006"
    for name in ("config.json", "model.keras", "encoder.keras", "encoder.weights.h5", "history.csv"):
        assert (out / name).exists(), name
    assert sorted(os.listdir(out / "reconstructions")) == [
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    assert os.listdir(out / "tensorboard")
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(np.isfinite(loss) for loss in history_losses(out))
    encoder = keras.saving.load_model(str(out / "encoder.keras"))
    tokens = keras.ops.convert_to_numpy(encoder(np.zeros((1, 32, 32, 3), "float32")))
    assert tokens.shape == (1, 17, 32)
    # a finished run started again does no more steps
    assert pretrain.main(args(npz, out)) == 0
    assert open(out / "checkpoint" / "latest").read() == "step_00000006"
    # preset/ holds the whole final model; another run starts from it
    model = keras.saving.load_model(str(out / "model.keras"))
    for a, b in zip(model.weights, keras_mae.presets.from_preset(str(out / "preset")).weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    again = tmp_path / "again"
    assert pretrain.main(args(npz, again, "--epochs", "1", "--init-preset",
                              str(out / "preset"))) == 0
    # keras_hub/ is the encoder as a KerasHub ViT, which loads without keras_mae's classes
    import keras_hub
    backbone = keras_hub.models.Backbone.from_preset(str(out / "keras_hub"))
    images = np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(backbone(images)),
                               keras.ops.convert_to_numpy(model.encoder(images)), atol=1e-5)
    # before its first step it reconstructs exactly as the first run ended
    first = open(out / "reconstructions" / "epoch_0002.png", "rb").read()
    assert open(again / "reconstructions" / "epoch_0000.png", "rb").read() == first
    assert open(again / "reconstructions" / "epoch_0001.png", "rb").read() != first


def test_checkpoint_of_another_config_is_refused(npz, tmp_path):
    out = tmp_path / "run"
    assert pretrain.main(args(npz, out, "--epochs", "1")) == 0
    other = json.dumps({**json.loads(TINY), "hidden_dim": 64})
    code = pretrain.main(args(npz, out, "--model-overrides", other))
    assert code == 2


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--config", "nope"], "Unknown pretraining config 'nope'"),
        (["--dataset", "/no/such/file.npz"], "/no/such/file.npz"),
        (["--batch-size", "64"], "fewer than --batch-size 64"),
        (["--image-size", "30"], "30"),
        (["--epochs", "0"], "--epochs must be a positive int"),
        (["--init-preset", "/no/such/preset"], "No preset folder at '/no/such/preset'"),
    ],
)
def test_bad_input_fails_before_training(npz, tmp_path, capsys, extra, match):
    assert pretrain.main(args(npz, tmp_path / "run", *extra)) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_unwritable_output_dir(npz, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert pretrain.main(args(npz, blocker / "run")) == 2
    assert "not writable" in capsys.readouterr().err


def test_every_named_config_builds_its_model_config():
    for name in CONFIGS:
        config = get_config(name)
        assert config.batch_size >= 1 and config.epochs >= 1
    paper = get_config("paper_vit_base")
    assert (paper.batch_size, paper.base_lr, paper.warmup_epochs, paper.epochs) == (4096, 1.5e-4, 40, 800)


def test_gradient_accumulation_and_learning_rate_rule():
    config = get_config("digits")
    config.batch_size, config.accum_steps, config.base_lr = 32, 4, 1e-3
    config.warmup_epochs = 0  # the first update at the peak rate, not at warmup's 0
    model = pretrain.build_model(config)
    model.build()
    optimizer, peak = pretrain.build_optimizer(config, model, steps_per_epoch=10)
    assert optimizer.gradient_accumulation_steps == 4
    assert peak == pytest.approx(1e-3 * 32 * 4 / 256)
    model.compile(optimizer=optimizer)
    x = np.random.RandomState(0).rand(32, 32, 32, 3).astype("float32")
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    for step in range(4):
        model.train_on_batch(x)
        changed = any(not np.array_equal(b, keras.ops.convert_to_numpy(v))
                      for b, v in zip(before, model.trainable_variables))
        # weights move only once four micro-batches are accumulated
        assert changed == (step == 3), step
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 1
    # every batch of a group of 4 reads the rate of the group's first batch (engine_pretrain.py)
    rates = keras.ops.convert_to_numpy(optimizer._learning_rate(np.arange(8)))
    np.testing.assert_allclose(rates[:4], rates[0])
    np.testing.assert_allclose(rates[4:], rates[4])
