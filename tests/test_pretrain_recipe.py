import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_mae
from recipes import pretrain
from recipes.pretrain_configs import CONFIGS, get_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    return [float(row["loss"]) for row in csv.DictReader(open(out / "history.csv")) if row["loss"]]


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="under XLA, TensorFlow's stateless RNG draws other masks for the same seed")
def test_default_jit_compile_trains_as_the_uncompiled_step(npz, tmp_path):
    """`--jit-compile auto`: XLA on JAX, the MAE's compiled step on PyTorch; the same losses."""
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
    # epochs numbered as the progress bar's "Epoch 1/2", as the reconstructions; row 0 is the
    # kNN before training (every 5 epochs: not again in 2), no NaN on the epochs it skips
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [bool(r["knn_top1"]) for r in rows] == [True, False, False]
    assert [bool(r["loss"]) for r in rows] == [False, True, True]
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
    # before its first step it reconstructs exactly as the first run ended (the captions name the epochs)
    from PIL import Image

    from keras_mae.visualize import CAPTION_HEIGHT

    def grid(run, epoch):
        return np.asarray(Image.open(run / "reconstructions" / f"epoch_{epoch:04d}.png"))[:-CAPTION_HEIGHT]

    np.testing.assert_array_equal(grid(again, 0), grid(out, 2))
    assert not np.array_equal(grid(again, 1), grid(out, 2))


def test_checkpoint_of_another_config_is_refused(npz, tmp_path):
    out = tmp_path / "run"
    assert pretrain.main(args(npz, out, "--epochs", "1")) == 0
    other = json.dumps({**json.loads(TINY), "hidden_dim": 64})
    code = pretrain.main(args(npz, out, "--model-overrides", other))
    assert code == 2


FORMS = ("--dataset takes digits (scikit-learn's 8x8 digits), tfds:NAME (a prepared TensorFlow "
         "Datasets set; --data-dir its folder), a folder of images (flat, or one sub-folder per "
         "class), or a .npz file with x and optional y (several: comma-separated). Received: ")


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--config", "nope"], "Unknown pretraining config 'nope'"),
        (["--dataset", "/no/such/file.npz"],
         "--dataset: no such file or folder. " + FORMS + "--dataset '/no/such/file.npz'"),
        (["--dataset", "/no/such/folder"],
         "--dataset: no such file or folder. " + FORMS + "--dataset '/no/such/folder'"),
        # a bare name may be a TFDS name: known only once TFDS is imported
        (["--dataset", "not_a_dataset"], "--dataset: no such file or folder, and not a registered "
                                         "TFDS name. " + FORMS + "--dataset 'not_a_dataset'"),
        (["--dataset", "tfds:mnist", "--data-dir", "/no/such/tfds"],
         "--dataset: the TensorFlow Datasets set 'mnist' (split 'train') is not prepared in "
         "'/no/such/tfds'. Prepare it where there is network access (`tfds build mnist --data_dir "
         "DIR`), then pass --data-dir DIR. Received: --dataset 'tfds:mnist', --data-dir '/no/such/tfds'"),
        (["--dataset", "digits", "--skip-bad-images", "true"],
         "--skip-bad-images true applies to a folder of images only. Received: --dataset 'digits'"),
        (["--knn-dataset", "/no/such/queries.npz"],
         "--knn-dataset: no such file or folder. --knn-dataset takes digits"),
        (["--batch-size", "64"], "fewer than --batch-size 64"),
        (["--image-size", "30"], "30"),
        (["--epochs", "0"], "--epochs must be a positive int"),
        (["--init-preset", "/no/such/preset"], "No preset folder at '/no/such/preset'"),
    ],
)
def test_bad_input_fails_before_training(npz, tmp_path, capsys, extra, match):
    assert pretrain.main(args(npz, tmp_path / "new" / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert match in err
    assert "data_dir=" not in err   # the flags' names, as the user typed them
    # the folders the run made are gone again: nothing was written into them
    assert not (tmp_path / "new").exists() and tmp_path.exists()


def test_a_dataset_naming_no_data_fails_before_tensorflow_is_imported(tmp_path):
    code = ("import sys\n"
            "from recipes import pretrain\n"
            "code = pretrain.main(sys.argv[1:])\n"
            "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code, "--dataset", str(tmp_path / "photos"),
                          "--output-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.stdout.split() == ["2", "False", "False"], run.stderr[-2000:]
    assert f"error: --dataset: no such file or folder. {FORMS}--dataset '{tmp_path / 'photos'}'" \
        in run.stderr
    assert not (tmp_path / "run").exists()


def test_data_flag_forms_checked_without_tensorflow(npz, tmp_path):
    from recipes.common import check_dataset_flag

    text = tmp_path / "notes.txt"
    text.write_text("x")
    # accepted now; a bare name (a TFDS name, or a relative path) is checked when it loads
    for value in ("digits", "tfds:cifar10", "tfds:imagenet2012_subset/10pct:5.0.0", str(tmp_path),
                  npz, f"{npz},{npz}", "cifar10", "data/train"):
        check_dataset_flag(value)
    for value, problem in [("", "no value"), ("tfds:", "no TFDS name after 'tfds:'"),
                           (f"{npz},{text}", f"a comma-separated list holds .npz files only, not '{text}'"),
                           (f"{npz},{tmp_path}/b.npz", f"no file '{tmp_path}/b.npz'"),
                           (str(text), "a file other than a .npz file"),
                           ("missing.npz", "no such file or folder"),
                           ("~/no/such/photos", "no such file or folder")]:
        with pytest.raises(ValueError) as error:
            check_dataset_flag(value, "--eval-dataset")
        assert str(error.value) == (f"--eval-dataset: {problem}. --eval-dataset takes digits (scikit-"
                                    f"learn's 8x8 digits), tfds:NAME (a prepared TensorFlow Datasets "
                                    f"set; --data-dir its folder), a folder of images (flat, or one "
                                    f"sub-folder per class), or a .npz file with x and optional y "
                                    f"(several: comma-separated). Received: --eval-dataset {value!r}")


def test_cuda_probe_error_is_hidden_only_without_a_driver(monkeypatch):
    from recipes import common

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(common.sys, "platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", no_driver)
    environ = {}
    common.hide_cuda_probe_error(environ)
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0"}   # the user's own setting wins
    common.hide_cuda_probe_error(environ)
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "0"}
    monkeypatch.setattr("ctypes.CDLL", lambda name: object())   # a driver: TensorFlow's logs kept
    environ = {}
    common.hide_cuda_probe_error(environ)
    assert environ == {}


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
