"""The epoch order of the pipelines: full permutations, resuming mid-epoch, and per-worker shares."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mae.data import labeled_dataset, load_source, pretrain_dataset


def _labels(ds):
    """Every label of a labelled pipeline, in reading order."""
    return np.concatenate([labels.numpy() for _, labels in ds])


def _indexed(n, h=4):
    """n tiny images labelled with their own index (the label tells which record was read)."""
    return np.zeros((n, h, h, 1), np.uint8), np.arange(n)


def _classes_per_batch(classes, order, batch):
    return [len(np.unique(classes[order[i:i + batch]]))
            for i in range(0, len(order) - batch + 1, batch)]


def test_class_sorted_arrays_get_the_class_mix_of_a_full_permutation():
    # 20,000 records sorted by class, more than the default shuffle buffer of 10,000:
    # measured once with numpy and tf.data: a full permutation gives 72.5 classes of 100 per
    # batch of 128, tf.data's buffer of 10,000 on these records 64.6
    classes_sorted = np.repeat(np.arange(100), 200)
    x = np.zeros((len(classes_sorted), 2, 2, 1), np.uint8)
    ds = labeled_dataset((x, classes_sorted), 2, 128, training=True, seed=5)
    seen = _labels(ds)
    ours = _classes_per_batch(seen, np.arange(len(seen)), 128)
    rng = np.random.default_rng(0)
    reference = [c for _ in range(5)
                 for c in _classes_per_batch(classes_sorted, rng.permutation(len(x)), 128)]
    assert abs(np.mean(ours) - np.mean(reference)) < 0.5, (np.mean(ours), np.mean(reference))
    assert min(ours) >= np.percentile(reference, 0.1) - 2
    # and the classes come in no order: the first and last batches draw from all of them
    assert seen[:128].max() > 90 and seen[-128:].min() < 10


def test_class_sorted_folder_is_fully_permuted_whatever_the_buffer(tmp_path):
    png = tf.io.encode_png(np.zeros((2, 2, 3), np.uint8)).numpy()
    for c in range(20):
        (tmp_path / f"class_{c:02d}").mkdir()
        for k in range(20):
            (tmp_path / f"class_{c:02d}" / f"{k}.png").write_bytes(png)
    source = load_source(str(tmp_path))
    seen = _labels(labeled_dataset(source, 2, 40, training=True, shuffle_buffer=8, seed=1))
    assert sorted(np.bincount(seen)) == [20] * 20
    ours = np.mean(_classes_per_batch(seen, np.arange(400), 40))
    rng = np.random.default_rng(1)
    classes = np.repeat(np.arange(20), 20)
    reference = np.mean([c for _ in range(50)
                         for c in _classes_per_batch(classes, rng.permutation(400), 40)])
    # measured once: a buffer of 8 gives 3.8 classes per batch of 40; a full permutation 17.6
    assert abs(ours - reference) < 1.0, (ours, reference)


def test_every_record_once_per_epoch_epochs_differ_and_seeds_repeat():
    x, y = _indexed(1000)
    ds = labeled_dataset((x, y), 4, 100, training=True, seed=3)
    first, second = _labels(ds), _labels(ds)
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(epoch), y)
    assert (first != second).mean() > 0.9
    np.testing.assert_array_equal(_labels(labeled_dataset((x, y), 4, 100, training=True, seed=3)),
                                  first)
    assert (_labels(labeled_dataset((x, y), 4, 100, training=True, seed=4)) != first).mean() > 0.9
    # the recipes' form: one pipeline per epoch, the same epoch on every pass
    fixed = pretrain_dataset((x * 0 + (y % 256).astype(np.uint8)[:, None, None, None]), 4, 100,
                             epoch=2, reshuffle_each_iteration=False, augment=False)
    a, b = [np.concatenate([batch.numpy() for batch in fixed]) for _ in range(2)]
    np.testing.assert_array_equal(a, b)


def test_repeat_walks_through_successive_epochs():
    x, y = _indexed(50)
    seen = _labels(labeled_dataset((x, y), 4, 10, training=True, repeat=True, seed=2).take(15))
    epochs = seen.reshape(3, 50)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), y)
    assert (epochs[0] != epochs[1]).any() and (epochs[1] != epochs[2]).any()
    second = _labels(labeled_dataset((x, y), 4, 10, training=True, epoch=1, seed=2))
    np.testing.assert_array_equal(second, epochs[1])


def test_start_step_resumes_the_same_permutation_without_the_skipped_records():
    x, y = _indexed(96)
    whole = _labels(labeled_dataset((x, y), 4, 8, training=True, epoch=4, seed=7))
    rest = _labels(labeled_dataset((x, y), 4, 8, training=True, epoch=4, seed=7, start_step=5))
    np.testing.assert_array_equal(rest, whole[40:])
    images = pretrain_dataset((x, y), 4, 8, epoch=4, seed=7)
    resumed = pretrain_dataset((x, y), 4, 8, epoch=4, seed=7, start_step=5)
    np.testing.assert_array_equal(next(iter(resumed)).numpy(),
                                  list(images)[5].numpy())   # same crops too
    with pytest.raises(ValueError, match="start_step must be below the 12 steps"):
        labeled_dataset((x, y), 4, 8, training=True, start_step=12)


@pytest.mark.parametrize("workers", [2, 4])
def test_shards_split_each_global_batch_and_their_union_is_it(workers):
    x, y = _indexed(240)
    batch = 24
    one = list(labeled_dataset((x, y), 4, batch, training=True, epoch=1, seed=9))
    shards = [list(labeled_dataset((x, y), 4, batch, training=True, epoch=1, seed=9,
                                   num_shards=workers, shard_index=w)) for w in range(workers)]
    assert all(len(s) == len(one) == 10 for s in shards)
    read = np.concatenate([_labels(s) for s in shards])
    np.testing.assert_array_equal(np.sort(read), y)        # each record read once in all
    for step, (images, labels) in enumerate(one):
        np.testing.assert_array_equal(
            np.concatenate([shards[w][step][1].numpy() for w in range(workers)]), labels)
        np.testing.assert_array_equal(   # the same crops whatever the number of workers
            np.concatenate([shards[w][step][0].numpy() for w in range(workers)]), images)


def test_a_worker_never_reads_the_other_workers_files(tmp_path):
    png = tf.io.encode_png(np.full((3, 3, 3), 9, np.uint8)).numpy()
    for k in range(16):
        (tmp_path / f"{k:02d}.png").write_bytes(png)
    source = load_source(str(tmp_path))
    # which files worker 1 reads, from the one-worker order (files are listed sorted)
    whole = labeled_dataset((np.zeros((16, 2, 2, 1), np.uint8), np.arange(16)), 2, 8,
                            training=True, seed=4)
    others = np.concatenate([labels.numpy()[4:] for _, labels in whole])
    for k in others:
        (tmp_path / f"{k:02d}.png").write_bytes(b"corrupt")
    mine = list(pretrain_dataset(source, 2, 8, seed=4, num_shards=2, shard_index=0))
    assert len(mine) == 2 and all(b.shape == (4, 2, 2, 3) for b in mine)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\d\d\.png"):
        list(pretrain_dataset(source, 2, 8, seed=4, num_shards=2, shard_index=1))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_shards=3), "must be divisible by num_shards"),
    (dict(num_shards=2, shard_index=2), r"shard_index must lie in \[0, num_shards\)"),
    (dict(num_shards=2, drop_remainder=False), "sharded pipelines drop the last partial"),
    (dict(epoch=-1), "epoch must be an int >= 0"),
    (dict(start_step=1.5), "start_step must be an int >= 0"),
])
def test_bad_order_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pretrain_dataset(_indexed(40)[0], 4, 8, **kwargs)


def test_a_per_epoch_pipeline_depends_on_seed_and_epoch_alone():
    x, y = _indexed(64)
    orders = []
    for global_seed in (1, 2):
        tf.random.set_seed(global_seed)   # as keras.utils.set_random_seed does
        orders.append(_labels(labeled_dataset((x, y), 4, 8, training=True, seed=5, epoch=2,
                                              reshuffle_each_iteration=False)))
    np.testing.assert_array_equal(orders[0], orders[1])
    assert sorted(orders[0]) == list(range(64)) and (orders[0] != np.arange(64)).any()


def test_tfds_files_are_read_in_a_seeded_order_and_split_among_workers(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from benchmarks.stream_class_mix import classes_per_batch, sorted_builder

    builder = sorted_builder(8, 16, shuffled=False)(data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=8))
    source = load_source(f"tfds:{builder.name}", data_dir=str(tmp_path))
    in_order = _labels(labeled_dataset(source, 2, 16, training=True, shuffle_buffer=0))
    np.testing.assert_array_equal(in_order, np.repeat(np.arange(8), 16))   # written sorted
    mixed = _labels(labeled_dataset(source, 2, 16, training=True, shuffle_buffer=4, seed=1))
    assert sorted(mixed) == sorted(in_order)
    assert np.mean(classes_per_batch(mixed, 16)) > 4   # 8 files read at once
    again = _labels(labeled_dataset(source, 2, 16, training=True, shuffle_buffer=4, seed=1))
    other = _labels(labeled_dataset(source, 2, 16, training=True, shuffle_buffer=4, seed=2))
    np.testing.assert_array_equal(again, mixed)
    assert (other != mixed).any()
    # two workers read disjoint files, half a batch each
    shards = [list(labeled_dataset(source, 2, 16, training=True, shuffle_buffer=4, seed=1,
                                   num_shards=2, shard_index=w)) for w in range(2)]
    assert all(labels.shape == (8,) for shard in shards for _, labels in shard)
    read = [set(np.concatenate([labels.numpy() for _, labels in shard])) for shard in shards]
    assert not read[0] & read[1] and read[0] | read[1] == set(range(8))


def test_a_stream_shared_by_workers_is_read_whole_and_split_by_batch():
    x, y = _indexed(48)
    stream = tf.data.Dataset.from_tensor_slices((x, y))   # no random access
    one = list(labeled_dataset(stream, 4, 8, training=True, seed=2))
    shards = [list(labeled_dataset(stream, 4, 8, training=True, seed=2, num_shards=2,
                                   shard_index=w)) for w in range(2)]
    for step, (images, labels) in enumerate(one):
        np.testing.assert_array_equal(labels[:4], shards[0][step][1])
        np.testing.assert_array_equal(labels[4:], shards[1][step][1])
        np.testing.assert_array_equal(images[4:], shards[1][step][0])
