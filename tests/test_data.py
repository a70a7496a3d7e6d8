"""Tests for keras_mae.data: sources, augmentations and tf.data pipelines."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mae.data import (IMAGENET_MEAN, IMAGENET_STD, Source, center_crop_resize,
                            labeled_dataset, load_source, normalize, pretrain_dataset,
                            random_flip_left_right, random_resized_crop,
                            sample_crop_box)


def _images(n=16, h=12, w=10, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _batches(ds):
    return [b.numpy() for b in ds]


def _write_png(path, h, w, c=3, value=None):
    rng = np.random.default_rng(h * 31 + w)
    img = rng.integers(0, 256, (h, w, c), dtype=np.uint8) if value is None \
        else np.full((h, w, c), value, np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(img))


# ---------------------------------------------------------------- pipelines


def test_pretrain_shapes_and_dtype():
    ds = pretrain_dataset(_images(18), image_size=8, batch_size=4)
    batches = _batches(ds)
    assert len(batches) == 4
    for b in batches:
        assert b.shape == (4, 8, 8, 3) and b.dtype == np.float32
        assert np.isfinite(b).all()
    lo = (0 - max(IMAGENET_MEAN)) / min(IMAGENET_STD)
    hi = (1 - min(IMAGENET_MEAN)) / min(IMAGENET_STD)
    assert lo - 1e-5 <= min(b.min() for b in batches)
    assert max(b.max() for b in batches) <= hi + 1e-5


def test_pretrain_keeps_remainder_and_repeats():
    sizes = [b.shape[0] for b in pretrain_dataset(_images(10), 8, 4,
                                                  drop_remainder=False)]
    assert sizes == [4, 4, 2]
    assert len(list(pretrain_dataset(_images(10), 8, 4, repeat=True).take(7))) == 7


def test_same_seed_same_batches_different_seed_different():
    x = _images(16)
    a = _batches(pretrain_dataset(x, 8, 8, seed=3))
    b = _batches(pretrain_dataset(x, 8, 8, seed=3))
    c = _batches(pretrain_dataset(x, 8, 8, seed=4))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_new_epoch_new_crops_but_reproducible():
    x = _images(8)
    ds = pretrain_dataset(x, 8, 8, seed=1)
    first, second = _batches(ds), _batches(ds)
    assert not np.array_equal(first[0], second[0])
    again = pretrain_dataset(x, 8, 8, seed=1)
    assert np.array_equal(_batches(again)[0], first[0])


def test_crops_differ_across_identical_images():
    x = np.repeat(_images(1, 16, 16), 8, axis=0)
    batch = _batches(pretrain_dataset(x, 8, 8, shuffle_buffer=0))[0]
    flat = batch.reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.allclose(flat[i], flat[j])


def test_no_augment_is_plain_resize():
    x = np.full((4, 10, 14, 3), 128, np.uint8)
    batch = _batches(pretrain_dataset(x, 6, 4, augment=False))[0]
    expected = normalize(np.full((6, 6, 3), 128.0, np.float32)).numpy()
    np.testing.assert_allclose(batch, np.broadcast_to(expected, batch.shape), atol=1e-5)


def test_labeled_eval_keeps_order_and_remainder():
    x, y = _images(10), np.arange(10) % 7
    batches = list(labeled_dataset((x, y), 8, 4, training=False))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(labels, y)
    assert batches[0][1].dtype == tf.int64 and batches[0][0].dtype == tf.float32


def test_labeled_training_shuffles_labels_with_images():
    # Each image is constant with its own value so labels can be matched.
    values = np.arange(0, 240, 15, dtype=np.uint8)
    x = np.broadcast_to(values[:, None, None, None], (16, 9, 9, 3)).copy()
    y = np.arange(16)
    images, labels = [], []
    for im, lb in labeled_dataset((x, y), 5, 16, training=True, seed=2):
        images.append(im.numpy()), labels.append(lb.numpy())
    labels = np.concatenate(labels)
    assert sorted(labels) == list(range(16)) and list(labels) != list(range(16))
    pixel = np.concatenate(images)[:, 2, 2, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    np.testing.assert_allclose(pixel * 255, values[labels], atol=1e-2)


def test_labeled_needs_labels():
    with pytest.raises(ValueError, match="no labels"):
        labeled_dataset(_images(8), 8, 4, training=True)


def test_grayscale_source_becomes_rgb_and_back():
    gray = _images(4, c=1)[..., 0]
    batch = _batches(pretrain_dataset(gray, 8, 4, augment=False))[0]
    assert batch.shape == (4, 8, 8, 3)
    rgb = _batches(pretrain_dataset(_images(4), 8, 4, num_channels=1))[0]
    assert rgb.shape == (4, 8, 8, 1)
    with pytest.raises(ValueError, match="2 channels"):
        pretrain_dataset(_images(4, c=2), 8, 4)


def test_batches_feed_keras_ops():
    import keras

    batch = next(iter(pretrain_dataset(_images(8), 8, 4)))
    tensor = keras.ops.convert_to_tensor(batch.numpy())
    assert tuple(keras.ops.shape(tensor)) == (4, 8, 8, 3)
    mean = float(keras.ops.convert_to_numpy(keras.ops.mean(tensor)))
    assert mean == pytest.approx(float(np.mean(batch.numpy())), abs=1e-5)


# ------------------------------------------------------------ augmentations


def test_normalize_constant_maps_to_zero():
    image = np.broadcast_to(np.array(IMAGENET_MEAN, np.float32) * 255, (4, 4, 3))
    np.testing.assert_allclose(normalize(image).numpy(), 0.0, atol=1e-6)
    one = (np.array(IMAGENET_MEAN) + np.array(IMAGENET_STD)) * 255
    np.testing.assert_allclose(normalize(np.broadcast_to(one, (2, 2, 3))).numpy(),
                               1.0, atol=1e-5)
    gray = np.full((3, 3, 1), np.mean(IMAGENET_MEAN) * 255, np.float32)
    np.testing.assert_allclose(normalize(gray).numpy(), 0.0, atol=1e-6)
    assert normalize(np.zeros((2, 2, 3), np.uint8)).dtype == tf.float32


def test_center_crop_of_known_image():
    image = np.arange(8 * 12 * 1, dtype=np.float32).reshape(8, 12, 1)
    # Shorter side already 4 / 0.5 = 8: no resize, window rows 2:6, cols 4:8.
    out = center_crop_resize(image, 4, crop_pct=0.5).numpy()
    np.testing.assert_allclose(out, image[2:6, 4:8], atol=1e-4)
    # Downscaling a constant image stays constant and in range.
    const = np.full((30, 20, 3), 200, np.uint8)
    out = center_crop_resize(const, 7).numpy()
    assert out.shape == (7, 7, 3)
    np.testing.assert_allclose(out, 200.0, atol=1e-3)


def test_random_resized_crop_full_box_is_identity_and_clipped():
    image = _images(1, 10, 10)[0]
    out = random_resized_crop(image, 10, tf.constant([1, 2]), scale=(1.0, 1.0),
                              ratio=(1.0, 1.0)).numpy()
    np.testing.assert_allclose(out, image.astype(np.float32), atol=1e-3)
    sharp = np.zeros((8, 8, 1), np.uint8)
    sharp[:, ::2] = 255
    up = random_resized_crop(sharp, 29, tf.constant([0, 5])).numpy()
    assert up.dtype == np.float32 and up.min() >= 0.0 and up.max() <= 255.0


def test_crop_boxes_stay_inside_and_respect_scale():
    for i in range(40):
        top, left, h, w = sample_crop_box([20, 30, 3], tf.constant([i, 7])).numpy()
        assert 0 <= top and 0 <= left and top + h <= 20 and left + w <= 30
        assert 0.15 <= h * w / 600 <= 1.0
    fallback = sample_crop_box([10, 40], tf.constant([0, 0]), scale=(1.0, 1.0),
                               ratio=(1.0, 1.0)).numpy()
    np.testing.assert_array_equal(fallback, [0, 15, 10, 10])


def test_flip_is_seeded():
    image = np.arange(6, dtype=np.float32).reshape(1, 6, 1)
    outs = {tuple(random_flip_left_right(image, tf.constant([s, 0])).numpy().ravel())
            for s in range(10)}
    assert outs == {tuple(range(6)), tuple(range(5, -1, -1))}


# ----------------------------------------------------------------- sources


def test_digits_default():
    train, test = load_source("digits"), load_source("digits", split="test")
    assert (train.num_examples, test.num_examples) == (1500, 297)
    assert load_source("digits", split="all").num_examples == 1797
    assert train.num_classes == 10 and train.image_shape == (8, 8, 3)
    assert int(train.dataset.cardinality()) == 1500
    assert int(test.dataset.cardinality()) == 297
    first = next(iter(train.dataset))
    assert first["images"].dtype == tf.uint8 and first["labels"].dtype == tf.int64
    everything = next(iter(train.dataset.batch(1500)))["images"]
    assert int(tf.reduce_max(everything)) == 255
    assert int(tf.reduce_min(everything)) == 0


def test_npz_source_and_concatenation(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, x=_images(3, 5, 5), y=np.array([0, 1, 2]))
    np.savez(b, x=_images(2, 5, 5, seed=1), y=np.array([3, 4]))
    src = load_source(str(a))
    assert (src.num_examples, src.num_classes, src.image_shape) == (3, 3, (5, 5, 3))
    both = load_source(f"{a},{b}")
    labels = [int(e["labels"]) for e in both.dataset]
    assert labels == [0, 1, 2, 3, 4] and both.num_classes == 5
    gray = tmp_path / "g.npz"
    np.savez(gray, x=_images(4, 6, 6, c=1)[..., 0])
    g = load_source(gray)
    assert g.image_shape == (6, 6, 1) and not g.has_labels


def test_directory_with_class_folders(tmp_path):
    for cls, sizes in {"cat": [(9, 7), (12, 12)], "dog": [(6, 10)]}.items():
        (tmp_path / cls).mkdir()
        for k, (h, w) in enumerate(sizes):
            _write_png(tmp_path / cls / f"{k}.png", h, w)
    (tmp_path / "notes.txt").write_text("ignored")
    src = load_source(str(tmp_path))
    assert (src.num_examples, src.num_classes, src.image_shape) == (3, 2, None)
    items = list(src.dataset)
    assert [int(e["labels"]) for e in items] == [0, 0, 1]
    assert [tuple(e["images"].shape) for e in items] == [(9, 7, 3), (12, 12, 3),
                                                          (6, 10, 3)]
    images, labels = next(iter(labeled_dataset(src, 8, 3, training=False)))
    assert images.shape == (3, 8, 8, 3)
    assert list(labels.numpy()) == [0, 0, 1]


def test_flat_directory_and_grayscale_png(tmp_path):
    _write_png(tmp_path / "a.png", 8, 8, c=1, value=7)
    _write_png(tmp_path / "b.png", 9, 11)
    src = load_source(tmp_path)
    assert not src.has_labels and src.num_classes is None
    first = next(iter(src.dataset))["images"].numpy()
    assert first.shape == (8, 8, 3) and (first == 7).all()
    assert next(iter(pretrain_dataset(src, 4, 2))).shape == (2, 4, 4, 3)


def test_unreadable_image_error_names_file(tmp_path):
    _write_png(tmp_path / "good.png", 5, 5)
    (tmp_path / "broken.jpg").write_bytes(b"this is not an image")
    src = load_source(tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.jpg"):
        list(src.dataset)


def test_dataset_sources_are_normalised():
    x, y = _images(4), np.arange(4)
    pairs = load_source(tf.data.Dataset.from_tensor_slices((x, y)))
    assert pairs.has_labels and pairs.num_examples == 4
    assert pairs.image_shape == (12, 10, 3)
    dicts = load_source(tf.data.Dataset.from_tensor_slices({"image": x, "label": y}))
    assert [int(e["labels"]) for e in dicts.dataset] == [0, 1, 2, 3]
    floats = load_source(tf.data.Dataset.from_tensor_slices(
        np.full((2, 3, 3), 1.0, np.float32)))
    e = next(iter(floats.dataset))
    assert e["images"].dtype == tf.uint8 and e["images"].shape == (3, 3, 1)
    assert int(e["images"][0, 0, 0]) == 255 and not floats.has_labels
    assert load_source(pairs) is pairs and isinstance(pairs, Source)


def test_float_and_integer_arrays_converted():
    src = load_source(np.full((2, 4, 4, 3), 0.5, np.float64))
    assert int(next(iter(src.dataset))["images"][0, 0, 0]) == 128
    # floats in [0, 1] scale by 255 and round: 0.2 -> 51, 0.6 -> 153 (x 256 would give 154)
    values = np.array([0.0, 0.002, 0.2, 0.5, 0.6, 1.0], np.float32)
    src = load_source(np.broadcast_to(values[:, None, None, None], (6, 2, 2, 3)))
    got = [int(e["images"][0, 0, 0]) for e in src.dataset]
    assert got == [0, 1, 51, 128, 153, 255]
    with pytest.raises(ValueError, match="1.5"):
        load_source(np.full((1, 2, 2, 3), 1.5, np.float32))
    src = load_source(np.full((2, 4, 4), 200, np.int32))
    assert next(iter(src.dataset))["images"].dtype == tf.uint8


def test_tfds_not_prepared_raises_without_download(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(ValueError, match="mnist") as err:
        load_source("tfds:mnist", data_dir=data_dir)
    assert data_dir in str(err.value) and "prepare" in str(err.value).lower()
    with pytest.raises(ValueError, match="not prepared"):
        load_source("mnist", split="test[:10]", data_dir=data_dir)
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        load_source("tfds:no_such_dataset_xyz", data_dir=data_dir)


def _tiny_tfds_builder():
    """A TFDS builder of 16 px images made in code: prepared locally, nothing downloaded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    if "keras_mae_tiny_images" in tfds.list_builders(with_community_datasets=False):
        return tfds.builder_cls("keras_mae_tiny_images")

    class KerasMaeTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(16, 16, 3)),
                "label": tfds.features.ClassLabel(num_classes=3)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(12, 0), "test": self._generate_examples(6, 1)}

        def _generate_examples(self, n, seed):
            for i, image in enumerate(_images(n, 16, 16, seed=seed)):
                yield i, {"image": image, "label": i % 3}

    return KerasMaeTinyImages


def test_tfds_source_reads_a_prepared_dataset(tmp_path):
    data_dir = str(tmp_path / "tfds")
    _tiny_tfds_builder()(data_dir=data_dir).download_and_prepare()
    source = load_source("tfds:keras_mae_tiny_images", split="train", data_dir=data_dir)
    assert (source.num_examples, source.num_classes, source.image_shape) == (12, 3, (16, 16, 3))
    assert source.name == "tfds:keras_mae_tiny_images[train]"
    examples = list(source.dataset.as_numpy_iterator())
    # PNG-encoded by TFDS, so exact; TFDS may shuffle the order of examples in its files
    got = sorted((e["images"].tobytes(), int(e["labels"])) for e in examples)
    want = sorted((image.tobytes(), i % 3) for i, image in enumerate(_images(12, 16, 16, seed=0)))
    assert got == want
    # a bare registered name and a split slice work too, and the pretraining pipeline batches it
    test = load_source("keras_mae_tiny_images", split="test[:4]", data_dir=data_dir)
    assert test.num_examples == 4 and len(list(test.dataset)) == 4
    batch = next(iter(pretrain_dataset(source, 16, 4, augment=False, shuffle_buffer=0)))
    assert batch.shape == (4, 16, 16, 3) and batch.dtype == tf.float32


@pytest.mark.parametrize("source, message", [
    ("/no/such/file.npz", "/no/such/file.npz"),
    ("not_a_dataset_name", "not_a_dataset_name"),
    ("", "''"),
    (np.zeros((0, 4, 4, 3), np.uint8), r"\(0, 4, 4, 3\)"),
    (np.zeros((4, 4), np.uint8), r"\(4, 4\)"),
    (np.zeros((2, 4, 4, 3, 1), np.uint8), r"\(2, 4, 4, 3, 1\)"),
    (np.full((2, 4, 4, 3), 2.0), r"\[2.0, 2.0\]"),
    (np.full((2, 4, 4, 3), -1, np.int16), r"\[-1, -1\]"),
    (np.zeros((2, 4, 4, 3), np.complex64), "complex64"),
    (np.zeros((2, 4, 4, 3), bool), "bool"),
    ((np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3)), r"\(2,\)"),
    ((np.zeros((2, 4, 4, 3), np.uint8), np.array([0, -3])), "-3"),
    ((np.zeros((2, 4, 4, 3), np.uint8), np.array([0.5, 1])), "float64"),
    ((np.zeros((1, 2, 2)), np.zeros(1), np.zeros(1)), "length 3"),
    (3.5, "3.5"),
    ("digits,other", "digits,other"),
])
def test_bad_sources_raise(source, message):
    with pytest.raises(ValueError, match=message):
        load_source(source)


def test_bad_directories_and_splits(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        load_source(str(tmp_path))
    (tmp_path / "cls").mkdir()
    _write_png(tmp_path / "cls" / "a.png", 4, 4)
    _write_png(tmp_path / "b.png", 4, 4)
    with pytest.raises(ValueError, match="mixes"):
        load_source(str(tmp_path))
    with pytest.raises(ValueError, match="'validation'"):
        load_source("digits", split="validation")
    np.savez(tmp_path / "noimg.npz", y=np.zeros(2))
    with pytest.raises(ValueError, match="no array 'x'"):
        load_source(str(tmp_path / "noimg.npz"))
    with pytest.raises(ValueError, match="batched"):
        load_source(tf.data.Dataset.from_tensor_slices(_images(4)).batch(2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=0), "image_size must be a positive int. Received: image_size=0"),
    (dict(image_size=8.0), "image_size must be a positive int. Received: image_size=8.0"),
    (dict(batch_size=-2), "batch_size must be a positive int. Received: batch_size=-2"),
    (dict(batch_size=True), "batch_size must be a positive int. Received: batch_size=True"),
    (dict(batch_size=64), "batch_size=64 exceeds the 8 examples"),
    (dict(seed="1"), "seed must be an int. Received: seed='1'"),
    (dict(shuffle_buffer=-1), "shuffle_buffer must be an int >= 0. Received: shuffle_buffer=-1"),
    (dict(num_channels=2), "num_channels must be 1 or 3. Received: num_channels=2"),
    (dict(crop_scale=(0.5, 1.5)), r"\(0.5, 1.5\)"),
    (dict(mean=(0.5, 0.5)), r"\(0.5, 0.5\)"),
])
def test_bad_pipeline_arguments_raise(kwargs, message):
    args = dict(image_size=8, batch_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pretrain_dataset(_images(8), **args)


def test_bad_labeled_arguments_raise():
    xy = (_images(8), np.arange(8))
    with pytest.raises(ValueError, match="training must be a bool. Received: training='yes'"):
        labeled_dataset(xy, 8, 4, training="yes")
    with pytest.raises(ValueError, match="crop_pct must be a number in"):
        labeled_dataset(xy, 8, 4, training=False, crop_pct=1.5)


def test_labeled_arrays_are_the_eval_batches_in_order():
    from keras_mae.data import from_arrays, labeled_arrays

    source = from_arrays(_images(7, 12, 10), np.arange(7) % 3)
    x, y = labeled_arrays(source, 8, crop_pct=1.0, batch_size=3)
    batches = list(labeled_dataset(source, 8, 7, training=False, crop_pct=1.0))
    np.testing.assert_array_equal(x, batches[0][0].numpy())
    np.testing.assert_array_equal(y, [0, 1, 2, 0, 1, 2, 0])
    assert x.dtype == np.float32 and x.shape == (7, 8, 8, 3)


def _denormalised(images):
    return (np.asarray(images) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255.0


@pytest.mark.parametrize("pipeline", ["pretrain", "labeled"])
def test_extra_augment_takes_keras_and_keras_cv_layers(pipeline):
    """An extra layer sees 0-255 images after crop and flip, before normalisation."""
    import keras_cv

    from keras_mae.data import from_arrays

    rng = np.random.RandomState(0)
    colour = from_arrays((rng.rand(8, 20, 20, 3) * 255).astype("uint8"), np.arange(8) % 2)

    def build(extra):
        if pipeline == "pretrain":
            return pretrain_dataset(colour, 16, 4, extra_augment=extra)
        return labeled_dataset(colour, 16, 4, training=True, extra_augment=extra)

    def first(ds):
        batch = next(iter(ds))
        return (batch[0] if isinstance(batch, tuple) else batch).numpy()

    # Keras core: everything to white (255) before the normalisation
    white = first(build(keras.layers.Rescaling(0.0, offset=255.0)))
    np.testing.assert_allclose(_denormalised(white), 255.0, atol=1e-3)
    # keras-cv: grey, so the three channels agree before the normalisation
    grey = _denormalised(first(build(keras_cv.layers.Grayscale(output_channels=3))))
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-3)
    plain = _denormalised(first(build(None)))
    assert np.abs(plain[..., 0] - plain[..., 2]).max() > 1.0
    with pytest.raises(ValueError, match="extra_augment must be a Keras layer or a callable. "
                                         "Received: extra_augment=3"):
        build(3)


def test_extra_augment_is_refused_without_augmentation():
    with pytest.raises(ValueError, match="training\\) pipelines only"):
        labeled_dataset("digits", 16, 4, training=False, extra_augment=lambda x: x)


def test_subset_source_keeps_count_per_class_at_random_from_the_seed():
    from keras_mae.data import from_arrays, subset_source

    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    images = rng.randint(0, 256, (100, 4, 4, 3)).astype("uint8")
    images[:, 0, 0, 0] = np.arange(100)  # each image says which record it is
    source = from_arrays(images, labels)
    part = subset_source(source, 18, seed=3)
    assert part.num_examples == 18
    read = [(int(e["images"][0, 0, 0]), int(e["labels"])) for e in part.dataset]
    rows = [r for r, _ in read]
    assert rows == sorted(rows) and len(set(rows)) == 18
    assert all(labels[r] == y for r, y in read)
    assert np.bincount([y for _, y in read]).tolist() == [5, 5, 4, 4]
    def rows_of(part):
        return [int(e["images"][0, 0, 0]) for e in part.dataset]

    assert rows_of(subset_source(source, 18, seed=3)) == rows
    assert rows_of(subset_source(source, 18, seed=4)) != rows
    batch = next(iter(labeled_dataset(part, 4, 18, training=False)))
    np.testing.assert_array_equal(np.sort(batch[1].numpy()), np.sort([y for _, y in read]))
    with pytest.raises(ValueError, match="class 0"):
        subset_source(source, 60)


def test_training_flip_can_be_turned_off():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (16, 8, 8, 3)).astype("uint8")
    labels = np.arange(16)
    norm = dict(mean=(0.0,), std=(1.0 / 255.0,), crop_scale=(1.0, 1.0), shuffle_buffer=0)
    kept = next(iter(labeled_dataset((images, labels), 8, 16, training=True, flip=False,
                                     **norm)))[0].numpy()
    np.testing.assert_allclose(kept, images, atol=1e-3)
    flipped = next(iter(labeled_dataset((images, labels), 8, 16, training=True, **norm)))[0]
    mirrored = [np.allclose(f, x[:, ::-1], atol=1e-3) for f, x in zip(flipped.numpy(), images)]
    assert 0 < sum(mirrored) < 16
