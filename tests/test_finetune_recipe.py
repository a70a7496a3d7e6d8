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
    assert "mixup 0.8 / cutmix 1 per 32 images" in printed and "off:" not in printed
    metrics = json.load(open(out / "metrics.json"))
    assert set(metrics) == {"top1", "top5", "epoch", "best_top1", "best_top5", "best_epoch"}
    assert 0 <= metrics["top1"] <= 1 and metrics["top5"] == 1.0  # 3 classes
    assert metrics["epoch"] == metrics["best_epoch"] == 1
    assert json.load(open(out / "evaluations.json"))["1"]["top1"] == metrics["top1"]
    model = keras.saving.load_model(str(out / "classifier.keras"))
    assert isinstance(model, ViTClassifier)
    assert model.encoder.drop_path_rate == 0.1 and model.pooling == "avg"
    images = np.random.RandomState(1).randn(2, 16, 16, 3).astype("float32")
    assert keras.ops.convert_to_numpy(model(images)).shape == (2, 3)
    # weights moved away from the pretrained encoder, the position table too
    # (trained as the official fine-tuning's pos_embed)
    encoder = keras.saving.load_model(data["encoder"])
    assert not np.allclose(keras.ops.convert_to_numpy(model.encoder.cls_token),
                           keras.ops.convert_to_numpy(encoder.cls_token))
    table = model.encoder.position_embedding.table
    assert table.trainable and model.encoder.trainable_positions
    assert not np.allclose(keras.ops.convert_to_numpy(table),
                           keras.ops.convert_to_numpy(encoder.position_embedding.table))
    assert not encoder.position_embedding.table.trainable  # pretraining keeps it fixed
    rows = open(out / "history.csv").read().strip().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")  # header + epoch 1, as "Epoch 1/1" and evaluations.json


def test_other_resolution_and_cls_pooling_without_augmentation(data, tmp_path, capsys):
    out = tmp_path / "ft24"
    code = finetune.main(args(data, out, "--image-size", "24", "--pooling", "cls",
                              "--rand-augment-ops", "0", "--mixup", "0", "--cutmix", "0",
                              "--erasing-prob", "0"))
    assert code == 0
    model = keras.saving.load_model(str(out / "classifier.keras"))
    assert tuple(model.encoder.image_size) == (24, 24)
    assert json.load(open(out / "metrics.json"))["top1"] >= 0
    header = capsys.readouterr().out
    assert "off: RandAugment, erasing, mixup, cutmix" in header
    assert "RandAugment (" not in header


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--encoder", "/no/such/encoder.keras"], "/no/such/encoder.keras"),
        (["--from-official", "/no/such/mae.pth"], "/no/such/mae.pth"),
        (["--dataset", "UNLABELLED"], "has no labels"),
        (["--eval-dataset", "/no/such/eval"],
         "--eval-dataset: no such file or folder. --eval-dataset takes digits"),
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
    assert not (tmp_path / "run").exists()   # nothing written: no folder left behind


def test_evaluation_crop_follows_the_official_rule_by_size():
    from recipes.classify_configs import FinetuneConfig
    from recipes.common import eval_crop_pct

    config = FinetuneConfig()
    assert config.crop_pct == 0.0  # the official rule of util/datasets.py
    assert eval_crop_pct(config, 224) == 0.875 and eval_crop_pct(config, 32) == 0.875
    assert eval_crop_pct(config, 256) == 1.0 and eval_crop_pct(config, 384) == 1.0
    config.crop_pct = 0.9
    assert eval_crop_pct(config, 384) == 0.9


EXPORTABLE = keras.backend.backend() in ("tensorflow", "jax")


def test_mixed_precision_and_export(data, tmp_path, capsys):
    out = tmp_path / "mixed"
    formats = "saved_model,onnx"
    code = finetune.main(args(data, out, "--mixed-precision", "true", "--export", formats,
                              "--mixup", "0", "--cutmix", "0"))
    if not EXPORTABLE:  # refused before any compute, naming the format and backend
        assert code == 2
        err = capsys.readouterr().err
        assert "'saved_model'" in err and "torch backend" in err
        assert not (out / "config.json").exists()
        return
    assert code == 0, capsys.readouterr().err
    assert "mixed_bfloat16" in capsys.readouterr().out
    model = keras.saving.load_model(str(out / "classifier.keras"))
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.encoder.blocks[0].compute_dtype == "bfloat16"
    import onnxruntime

    from keras_mae.export import float32_copy

    images = np.random.RandomState(2).randn(3, 16, 16, 3).astype("float32")
    want = keras.ops.convert_to_numpy(float32_copy(model)(images))
    session = onnxruntime.InferenceSession(str(out / "export" / "model.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: images})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(out / "export" / "saved_model"))
    np.testing.assert_allclose(np.asarray(loaded.serve(images)), want, atol=1e-5)
    # the bfloat16 model agrees with its float32 copy to bfloat16 precision only
    mixed = keras.ops.convert_to_numpy(keras.ops.cast(model(images), "float32"))
    assert 0 < np.abs(mixed - want).max() < 0.1


def test_every_named_config_is_valid():
    from recipes import linear_probe
    from recipes.classify_configs import (FINETUNE_CONFIGS, PROBE_CONFIGS, get_finetune_config,
                                          get_probe_config)

    for name in FINETUNE_CONFIGS:
        finetune.validate(get_finetune_config(name))
    for name in PROBE_CONFIGS:
        linear_probe.validate(get_probe_config(name))
    small = get_finetune_config("cifar10_cpu_4k")
    assert small.train_images == 4000 and small.crop_pct == 1.0
    assert get_finetune_config("digits").flip is False
