import json

import keras
import numpy as np
import pytest

from conftest import write_recipe_inputs
from keras_mae.models.classifier import ViTClassifier
from recipes import finetune

ARCH = dict(image_size=16, patch_size=8, hidden_dim=16, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.RandomState(0)
    splits = {name: (rng.randint(0, 256, (n, 16, 16, 3)).astype("uint8"), np.arange(n) % 3)
              for name, n in (("train", 32), ("eval", 12))}
    unlabelled = rng.randint(0, 256, (8, 16, 16, 3)).astype("uint8")
    return write_recipe_inputs(tmp_path_factory.mktemp("data"), splits, unlabelled, ARCH)


def args(data, out, *extra):
    return ["--config", "digits", "--encoder", data["encoder"], "--dataset", data["train"],
            "--eval-dataset", data["eval"], "--batch-size", "16", "--epochs", "1",
            "--warmup-epochs", "1", "--output-dir", str(out), *extra]


def test_finetune_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "ft"
    full_recipe = ["--mixup", "0.8", "--cutmix", "1.0", "--rand-augment-ops", "2",
                   "--erasing-prob", "0.25"]
    assert finetune.main(args(data, out, *full_recipe)) == 0
    printed = capsys.readouterr().out
    assert "RandAugment (2 ops, m 9" in printed and "layer decay 0.75" in printed
    metrics = json.load(open(out / "metrics.json"))
    assert set(metrics) == {"top1", "top5"}
    assert 0 <= metrics["top1"] <= 1 and metrics["top5"] == 1.0  # 3 classes
    model = keras.saving.load_model(str(out / "classifier.keras"))
    assert isinstance(model, ViTClassifier)
    assert model.encoder.drop_path_rate == 0.1 and model.pooling == "avg"
    images = np.random.RandomState(1).randn(2, 16, 16, 3).astype("float32")
    assert keras.ops.convert_to_numpy(model(images)).shape == (2, 3)
    # weights moved away from the pretrained encoder
    encoder = keras.saving.load_model(data["encoder"])
    assert not np.allclose(keras.ops.convert_to_numpy(model.encoder.cls_token),
                           keras.ops.convert_to_numpy(encoder.cls_token))
    rows = open(out / "history.csv").read().strip().splitlines()
    assert len(rows) == 2  # header + 1 epoch


def test_other_resolution_and_cls_pooling_without_augmentation(data, tmp_path):
    out = tmp_path / "ft24"
    code = finetune.main(args(data, out, "--image-size", "24", "--pooling", "cls",
                              "--rand-augment-ops", "0", "--mixup", "0", "--cutmix", "0",
                              "--erasing-prob", "0"))
    assert code == 0
    model = keras.saving.load_model(str(out / "classifier.keras"))
    assert tuple(model.encoder.image_size) == (24, 24)
    assert json.load(open(out / "metrics.json"))["top1"] >= 0


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--encoder", "/no/such/encoder.keras"], "/no/such/encoder.keras"),
        (["--from-official", "/no/such/mae.pth"], "/no/such/mae.pth"),
        (["--dataset", "UNLABELLED"], "has no labels"),
        (["--layer-decay", "1.5"], "--layer-decay must be in (0, 1]"),
        (["--mixup-switch-prob", "2"], "--mixup-switch-prob must be in [0, 1]"),
        (["--batch-size", "64"], "fewer than --batch-size 64"),
        (["--config", "nope"], "Unknown fine-tuning config 'nope'"),
    ],
)
def test_bad_input_fails_before_compute(data, tmp_path, capsys, extra, match):
    extra = [data["unlabelled"] if e == "UNLABELLED" else e for e in extra]
    assert finetune.main(args(data, tmp_path / "run", *extra)) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "config.json").exists()
