import json

import keras
import numpy as np
import pytest

from conftest import write_recipe_inputs
from keras_mae.models import ViTEncoder
from keras_mae.optimizers import LARS
from recipes import linear_probe

ARCH = dict(image_size=16, patch_size=8, hidden_dim=16, depth=1, num_heads=2)
TINY = json.dumps(ARCH)


def colour_images(n, seed):
    """16 px noise images; class c < 3 brightens channel c, class 3 all channels.

    Linearly separable in the patch pixels, so also in the pooled features of a
    random encoder. (A "which quadrant is bright" set is not: every image holds
    the same multiset of patches, and a random encoder's pooled tokens barely
    depend on where each patch sits.)
    """
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 100, (n, 16, 16, 3)).astype("uint8")
    y = rng.randint(0, 4, n)
    for image, label in zip(x, y):
        if label < 3:
            image[..., label] += 150
        else:
            image += 150
    return x, y


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    splits = {"train": colour_images(128, 0), "eval": colour_images(64, 1)}
    return write_recipe_inputs(tmp_path_factory.mktemp("data"), splits, colour_images(8, 2)[0], ARCH)


def args(data, out, *extra):
    return ["--config", "digits", "--encoder", data["encoder"], "--dataset", data["train"],
            "--eval-dataset", data["eval"], "--batch-size", "32", "--epochs", "2",
            "--warmup-epochs", "1", "--output-dir", str(out), *extra]


def weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_encoder_is_frozen_in_both_modes():
    encoder = ViTEncoder(**ARCH, seed=0)
    encoder.build()
    probe = linear_probe.build_probe(encoder, 4, "avg")
    x, y = colour_images(32, 0)
    images = (x / 255.0).astype("float32")
    frozen = weights(probe.encoder)
    head_before = weights(probe.head)
    # augmented mode: the whole probe is fitted on images
    probe.compile(optimizer=LARS(1.0), loss=keras.losses.SparseCategoricalCrossentropy(True))
    probe.fit(images, y, batch_size=16, epochs=1, verbose=0)
    # precomputed mode: only the head model is fitted on features
    head = linear_probe.head_model(probe)
    head.compile(optimizer=LARS(1.0), loss=keras.losses.SparseCategoricalCrossentropy(True))
    head.fit(keras.ops.convert_to_numpy(probe.features(images)), y, batch_size=16, verbose=0)
    for a, b in zip(frozen, weights(probe.encoder)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head_before[0], weights(probe.head)[0])
    assert {v.path for v in probe.trainable_variables} == {"probe/head/kernel", "probe/head/bias"}


def test_probe_on_separable_set_is_accurate_and_writes_outputs(data, tmp_path):
    out = tmp_path / "probe"
    assert linear_probe.main(args(data, out, "--epochs", "30", "--base-lr", "80")) == 0
    metrics = json.load(open(out / "metrics.json"))
    assert set(metrics) == {"top1", "top5", "epoch", "best_top1", "best_top5", "best_epoch"}
    assert metrics["top1"] > 0.9 and metrics["epoch"] == 30
    evaluations = json.load(open(out / "evaluations.json"))
    assert sorted(map(int, evaluations)) == list(range(1, 31))  # every epoch by default
    assert metrics["best_top1"] == max(e["top1"] for e in evaluations.values())
    assert metrics["top5"] == 1.0  # 4 classes
    head = keras.saving.load_model(str(out / "probe_head.keras"))
    assert tuple(head.output.shape) == (None, 4)
    assert json.load(open(out / "config.json"))["epochs"] == 30


def test_augmented_mode_and_random_encoder(data, tmp_path, capsys):
    out = tmp_path / "aug"
    code = linear_probe.main(args(data, out, "--augment", "true", "--encoder", "random",
                                  "--model-overrides", TINY, "--pooling", "avg"))
    assert code == 0
    assert "augmented" in capsys.readouterr().out
    metrics = json.load(open(out / "metrics.json"))
    assert 0 <= metrics["top1"] <= 1 and 0 <= metrics["top5"] <= 1


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--encoder", "/no/such/encoder.keras"], "/no/such/encoder.keras"),
        (["--image-size", "32"], "--image-size 32 does not match"),
        (["--dataset", "UNLABELLED"], "has no labels"),
        (["--pooling", "max"], "--pooling must be cls or avg"),
        (["--config", "nope"], "Unknown linear-probe config 'nope'"),
    ],
)
def test_bad_input_fails_before_compute(data, tmp_path, capsys, extra, match):
    extra = [data["unlabelled"] if e == "UNLABELLED" else e for e in extra]
    assert linear_probe.main(args(data, tmp_path / "run", *extra)) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_preset_folder_is_an_encoder_source(data, tmp_path):
    """`--encoder` takes a keras_mae preset folder (here of a whole MAE) as it takes encoder.keras."""
    from keras_mae import presets
    from keras_mae.models import MaskedAutoencoder

    encoder = keras.saving.load_model(data["encoder"])
    mae = MaskedAutoencoder(encoder, decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2)
    folder = presets.save_to_preset(mae, str(tmp_path / "preset"))
    assert linear_probe.main(args(data, tmp_path / "from_file")) == 0
    assert linear_probe.main(args(data, tmp_path / "from_preset", "--encoder", folder)) == 0
    from_file = json.load(open(tmp_path / "from_file" / "metrics.json"))
    assert json.load(open(tmp_path / "from_preset" / "metrics.json")) == from_file


def test_a_keras_hub_preset_is_an_encoder_source(data, tmp_path):
    """`--encoder` takes a KerasHub ViT preset folder, converted back exactly."""
    from keras_mae.convert import save_keras_hub_preset

    folder = str(tmp_path / "keras_hub")
    save_keras_hub_preset(keras.saving.load_model(data["encoder"]), folder)
    assert linear_probe.main(args(data, tmp_path / "from_file")) == 0
    assert linear_probe.main(args(data, tmp_path / "from_hub", "--encoder", folder)) == 0
    from_file = json.load(open(tmp_path / "from_file" / "metrics.json"))
    assert json.load(open(tmp_path / "from_hub" / "metrics.json")) == from_file


def test_probe_in_mixed_precision_reuses_its_features_on_resume(data, tmp_path, capsys):
    out = tmp_path / "mixed"
    assert linear_probe.main(args(data, out, "--epochs", "2", "--mixed-precision", "true")) == 0
    printed = capsys.readouterr().out
    assert "mixed_bfloat16" in printed and "computed in" in printed
    features = np.load(out / "features.npz")
    assert features["train_x"].dtype == np.float32 and np.isfinite(features["train_x"]).all()
    first = json.load(open(out / "metrics.json"))
    # the finished run again: the stored features, no training, the same figures
    assert linear_probe.main(args(data, out, "--epochs", "2", "--mixed-precision", "true")) == 0
    assert "reused from" in capsys.readouterr().out
    assert json.load(open(out / "metrics.json")) == {**first}
    # another transform of the images: the features are computed again
    assert linear_probe.main(args(data, out, "--epochs", "2", "--mixed-precision", "true",
                                  "--crop-pct", "1.0")) == 0
    assert "computed in" in capsys.readouterr().out
