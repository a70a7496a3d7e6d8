"""Weighted kNN and the KNNMonitor callback, on data whose neighbours are known by construction."""

import csv
import math
import os
import re

import keras
import numpy as np
import pytest

from keras_mae import callbacks, knn
from keras_mae.data import load_source, slice_source
from recipes import pretrain
from recipes.pretrain_configs import PretrainConfig


def test_votes_are_weighted_by_exp_similarity_over_temperature():
    # the query's 3 nearest references: two of class 0 at cosine 0.5, one of class 1 at 0.9
    angle = lambda c: [c, math.sqrt(1 - c * c)]  # noqa: E731  unit vectors at cosine c to [1, 0]
    reference = np.array([angle(0.5), [angle(0.5)[0], -angle(0.5)[1]], angle(0.9), [-1.0, 0.0]])
    labels = np.array([0, 0, 1, 2])
    query = np.array([[1.0, 0.0]])
    # weighted (T = 0.07): 2 exp(0.5 / 0.07) < exp(0.9 / 0.07), so class 1 wins
    assert knn.knn_predict(reference, labels, query, 3, k=3).tolist() == [1]
    # a flat vote (large T) is the majority: class 0
    assert knn.knn_predict(reference, labels, query, 3, k=3, temperature=100.0).tolist() == [0]
    # k = 1 is the nearest neighbour alone; the far class-2 point never votes with k = 3
    assert knn.knn_predict(reference, labels, query, 3, k=1).tolist() == [1]
    assert knn.knn_predict(reference, labels * 0 + 2, query, 3, k=3).tolist() == [2]


def test_cosine_not_euclidean_and_scale_free():
    reference = np.array([[10.0, 0.0], [0.1, 0.1]])  # far but aligned, near but at 45 degrees
    query = np.array([[0.2, 0.0]])
    assert knn.knn_predict(reference, np.array([0, 1]), query, 2, k=1).tolist() == [0]
    assert knn.knn_accuracy(reference * 7, [0, 1], query * 3, [0], 2, k=1) == 1.0


def _reference_knn(reference, labels, queries, num_classes, k, temperature):
    """Weighted kNN written out: one query at a time, a full sort, torch's `F.normalize` (eps 1e-12)."""
    unit = lambda v: v / max(np.linalg.norm(v), 1e-12)  # noqa: E731
    reference = [unit(r) for r in np.asarray(reference, np.float64)]
    predicted = []
    for query in np.asarray(queries, np.float64):
        similarity = np.array([unit(query) @ r for r in reference])
        votes = np.zeros(num_classes)
        for i in np.argsort(-similarity, kind="stable")[:k]:
            votes[labels[i]] += math.exp(similarity[i] / temperature)
        predicted.append(int(np.argmax(votes)))
    return predicted


def test_defaults_and_a_written_out_reference_agree_on_random_features():
    rng = np.random.default_rng(0)
    reference, queries = rng.normal(size=(300, 8)), rng.normal(size=(200, 8))
    labels = rng.integers(0, 5, 300)
    queries *= rng.uniform(1e-3, 1e3, (200, 1))  # norms far apart: only directions may count
    expected = _reference_knn(reference, labels, queries, 5, k=20, temperature=0.07)
    # the defaults are Wu et al.'s temperature 0.07 and DINO's k = 20
    assert knn.knn_predict(reference, labels, queries, 5).tolist() == expected
    # the data tells k and the temperature apart (the check above could not pass by chance)
    assert _reference_knn(reference, labels, queries, 5, k=21, temperature=0.07) != expected
    assert _reference_knn(reference, labels, queries, 5, k=20, temperature=0.105) != expected
    # with a flat vote every one of the k nearest counts as much as the first: exactly those k vote
    for k in (5, 20):
        assert knn.knn_predict(reference, labels, queries, 5, k=k, temperature=100.0).tolist() == \
            _reference_knn(reference, labels, queries, 5, k=k, temperature=100.0)
    # chunks of queries change nothing; the accuracy is the share of agreeing labels
    assert knn.knn_predict(reference, labels, queries, 5, chunk=7).tolist() == expected
    assert knn.knn_accuracy(reference, labels, queries, expected, 5) == 1.0
    # k larger than the reference set: every reference votes
    assert knn.knn_predict(reference[:4], labels[:4], queries, 5, k=50).tolist() == \
        _reference_knn(reference[:4], labels[:4], queries, 5, k=4, temperature=0.07)


def test_the_k_nearest_are_exactly_the_k_most_similar():
    # the k largest of 2,977 similarities, k = 66: a case where the k - 1 largest found by
    # numpy's partition are not enough to leave the k-th among the first k
    rng = np.random.default_rng(368)
    n, k = int(rng.integers(100, 3000)), 2 * int(rng.integers(1, 100))
    similarity = np.cos(np.pi * 0.9 * rng.permutation(n) / n).astype(np.float32)[None]
    assert (n, k) == (2977, 66)
    expected = set(np.argsort(-similarity[0], kind="stable")[:k].tolist())
    assert set(knn.nearest_indices(similarity, k)[0].tolist()) == expected
    assert set(np.argpartition(-similarity, k - 2, axis=1)[0, :k].tolist()) != expected


def test_tiny_and_zero_features_are_normalised_as_torch_does():
    rng = np.random.default_rng(1)
    reference, labels = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    queries = rng.normal(size=(30, 4))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # a norm above torch's floor of 1e-12 is normalised to 1; a zero vector stays zero (all votes equal)
    tiny = queries * 1.2e-12
    expected = _reference_knn(reference, labels, queries, 3, k=20, temperature=0.07)
    # divided by 1.5e-12 instead, the tiny queries would be 0.8 long: their votes as at T = 0.07 / 0.8
    assert _reference_knn(reference, labels, queries, 3, 20, 0.07 / 0.8) != expected
    assert knn.knn_predict(reference, labels, tiny, 3).tolist() == expected
    unit_reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert knn.knn_predict(unit_reference * 1.2e-12, labels, queries, 3).tolist() == expected
    zero = knn.knn_predict(reference, labels, np.zeros((1, 4)), 3, k=40)
    assert zero.tolist() == [int(np.argmax(np.bincount(labels, minlength=3)))]
    # no queries: an empty int64 result
    empty = knn.knn_predict(reference, labels, np.zeros((0, 4)), 3)
    assert empty.shape == (0,) and empty.dtype == np.int64


def test_bad_arguments_are_named():
    ref, labels = np.ones((3, 2)), np.array([0, 1, 1])
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(1, 5\)"):
        knn.knn_predict(ref, labels, np.ones((1, 5)), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        knn.knn_predict(ref, labels, np.ones((1, 2)), 1)
    with pytest.raises(ValueError, match="k=0"):
        knn.knn_predict(ref, labels, np.ones((1, 2)), 2, k=0)


class _ColourTokens(keras.layers.Layer):
    """`(B, H, W, C)` -> `(B, 1 + H * W, C)`: the pixels as patch tokens, their mean as class token."""

    def call(self, images, training=None):
        shape = keras.ops.shape(images)
        pixels = keras.ops.reshape(images, (shape[0], -1, shape[-1]))
        return keras.ops.concatenate([keras.ops.mean(pixels, axis=1, keepdims=True), pixels], 1)


class _Model(keras.Model):
    def __init__(self):
        super().__init__()
        self.encoder = _ColourTokens(name="colour_tokens")

    def call(self, images):
        return self.encoder(images)


def _colour_images(labels, seed):
    """Class c has mean colour `COLOURS[c]`, plus pixel noise."""
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    rng = np.random.RandomState(seed)
    return colours[labels][:, None, None, :] + rng.randn(len(labels), 4, 4, 3).astype("f") * 0.3


def test_monitor_scores_known_neighbours():
    y_ref = np.repeat(np.arange(4), 10)
    y_query = np.tile(np.arange(4), 5)
    x_ref, x_query = _colour_images(y_ref, 0), _colour_images(y_query, 1)
    model = _Model()
    for pooling in ("avg", "cls"):
        monitor = callbacks.KNNMonitor(x_ref, y_ref, x_query, y_query, pooling=pooling,
                                       batch_size=7)
        monitor.set_model(model)
        assert monitor.evaluate() == 1.0
        # half of the queries carry another class's label: exactly half are right
        wrong = y_query.copy()
        wrong[::2] = (wrong[::2] + 1) % 4
        monitor = callbacks.KNNMonitor(x_ref, y_ref, x_query, wrong, pooling=pooling)
        monitor.set_model(model)
        assert monitor.evaluate(epoch=3) == 0.5
        assert monitor.history[0][:2] == (3, 0.5)
    features = monitor.features(x_query[:3])
    np.testing.assert_allclose(features, x_query[:3].reshape(3, -1, 3).mean(1), rtol=1e-5)


def test_monitor_writes_the_logs_only_on_the_epochs_it_runs():
    import keras_mae

    model = keras_mae.models.build("mae_vit_tiny_patch4", hidden_dim=16, depth=1, num_heads=2,
                                   decoder_hidden_dim=8, decoder_depth=1, decoder_num_heads=2,
                                   patch_size=8, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    rng = np.random.RandomState(0)
    x = rng.randn(16, 32, 32, 3).astype("float32")
    y = rng.randint(0, 3, 16)
    monitor = callbacks.KNNMonitor(x[:12], y[:12], x[12:], y[12:], every_n_epochs=2, k=5)
    seen = []   # what the callbacks after the monitor read, epoch by epoch
    reader = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(logs.get("knn_top1")))
    history = model.fit(x, batch_size=8, epochs=4, verbose=0, callbacks=[monitor, reader])
    assert [e for e, _, _ in monitor.history] == [2, 4]
    # no value (not NaN) on the epochs it does not run, as Keras' val_ metrics under validation_freq
    assert seen == [None, monitor.history[0][1], None, monitor.history[1][1]]
    assert history.history["knn_top1"] == [monitor.history[0][1], monitor.history[1][1]]
    # the value logged after the last epoch is that of the final encoder
    assert seen[3] == monitor.evaluate()
    with pytest.raises(ValueError, match="every_n_epochs"):
        callbacks.KNNMonitor(x, y, x, y, every_n_epochs=0)
    with pytest.raises(ValueError, match="3 images, 2 labels"):
        callbacks.KNNMonitor(x[:3], y[:2], x, y)


def test_slice_source_keeps_order_and_checks_range():
    source = load_source("digits")
    part = slice_source(source, 100, 5)
    want = [e["labels"].numpy() for e in source.dataset.skip(100).take(5)]
    assert [e["labels"].numpy() for e in part.dataset] == want
    assert part.num_examples == 5
    with pytest.raises(ValueError, match="1499..1500"):
        slice_source(source, 1499, 2)


def test_recipe_reports_knn_before_and_on_the_epochs_it_runs(tmp_path, capsys):
    rng = np.random.RandomState(0)
    path = tmp_path / "colours.npz"
    labels = rng.randint(0, 4, 60)
    images = np.clip(_colour_images(labels, 2) * 0.5 + 0.25, 0, 1)
    np.savez(path, x=np.repeat(np.repeat(images, 8, 1), 8, 2), y=labels)
    overrides = '{"hidden_dim": 16, "depth": 1, "num_heads": 2, "decoder_hidden_dim": 8, ' \
                '"decoder_depth": 1, "decoder_num_heads": 2, "patch_size": 8}'
    argv = ["--config", "digits", "--dataset", str(path), "--model-overrides", overrides,
            "--batch-size", "20", "--epochs", "2", "--knn-every-epochs", "2",
            "--reconstruction-every-epochs", "1", "--jit-compile", "false",
            "--knn-reference", "40", "--knn-queries", "12", "--output-dir", str(tmp_path / "run")]
    config = pretrain.resolve_config(pretrain.build_parser().parse_args(argv))
    pretrain.run(config, str(tmp_path / "run"))   # logs to stdout, with Keras' progress lines
    lines = capsys.readouterr().out.splitlines()
    knn = [i for i, line in enumerate(lines) if line.startswith("  knn")]
    assert "40 reference" in lines[knn[0]] and "12 queries" in lines[knn[0]]
    assert "[48:60]" in lines[knn[0]]
    assert [lines[i].split(" (")[0].split(maxsplit=3)[3] for i in knn[1:]] == [
        "before training", "after epoch 2"]   # nothing on epoch 1
    # once Keras' progress bar has ended epoch 2's line, not inside it
    assert lines[knn[2] - 2] == "Epoch 2/2", lines[knn[2] - 2:knn[2] + 1]
    assert re.match(r"3/3 - .*loss: ", lines[knn[2] - 1]), lines[knn[2] - 2:knn[2] + 1]
    # history.csv numbers epochs as the progress bar and the reconstructions do (row 0:
    # before training, as epoch_0000.png); the accuracy only where it ran, no NaN
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [r["knn_top1"] != "" for r in rows] == [True, False, True]
    assert [r["loss"] != "" for r in rows] == [False, True, True]
    assert [round(float(rows[i]["knn_top1"]), 4) for i in (0, 2)] == [
        float(lines[i].split()[2]) for i in knn[1:]]
    assert sorted(os.listdir(tmp_path / "run" / "reconstructions")) == [
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    off = []
    pretrain.run(pretrain.resolve_config(pretrain.build_parser().parse_args(
        argv[:-2] + ["--knn-every-epochs", "0", "--output-dir", str(tmp_path / "off")])),
        str(tmp_path / "off"), log=off.append)
    assert any("knn monitor    off" in line for line in off)
    with pytest.raises(ValueError, match="--knn-every-epochs must be an int >= 0"):
        pretrain.validate(PretrainConfig(knn_every_epochs=-1))


def test_average_pooling_leaves_the_class_token_out():
    from conftest import random_images, tiny_mae

    model = tiny_mae()
    images = random_images(3)
    tokens = keras.ops.convert_to_numpy(model.encoder(images, training=False))
    for pooling, want in (("avg", tokens[:, 1:].mean(axis=1)), ("cls", tokens[:, 0])):
        monitor = callbacks.KNNMonitor(images, [0, 1, 2], images, [0, 1, 2], pooling=pooling)
        monitor.set_model(model)
        np.testing.assert_allclose(monitor.features(images), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reference", [10, 5000])
def test_recipe_queries_are_never_in_the_reference(reference):
    """Taken from one split, the two sets are disjoint: no query can find itself."""
    config = PretrainConfig(dataset="digits", knn_every_epochs=1, knn_reference=reference,
                            knn_queries=200)
    source = load_source("digits", split="train")
    monitor, _ = pretrain.knn_monitor(config, source, 3, 1)
    ref = monitor.reference_images.reshape(len(monitor.reference_images), -1)
    queries = monitor.query_images.reshape(len(monitor.query_images), -1)
    assert len(ref) == min(reference, source.num_examples - len(queries)) and len(queries) > 0
    rows = {row.tobytes() for row in ref}  # the digits split holds no two equal images
    assert not any(row.tobytes() in rows for row in queries)
