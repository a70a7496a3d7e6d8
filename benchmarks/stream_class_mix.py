"""Classes per batch: how well each source's order mixes a dataset written class by class.

A dataset of `--classes` x `--per-class` tiny images is written as TFDS does it
(`--files` files), once with TFDS' own record shuffling (the default when
TFDS prepares a split) and once class by class (`disable_shuffling`), and held
as arrays class by class. Each is read by `keras_mae.data.labeled_dataset` for
one epoch, and the distinct classes of every batch are counted, next to the
same count for numpy permutations (a full shuffle). The TFDS rows read their
files in a seeded order, 16 at a time, through a shuffle buffer of
`--buffer` records (scaled from ImageNet's 10,000 of 1.28M).

Usage (from the repository root):

    python benchmarks/stream_class_mix.py
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def sorted_builder(num_classes, per_class, shuffled):
    """A TFDS builder class of `num_classes * per_class` 2x2 images written class by class."""
    import tensorflow_datasets as tfds

    def info(self):
        return tfds.core.DatasetInfo(
            builder=self, disable_shuffling=not shuffled,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(2, 2, 3)),
                "label": tfds.features.ClassLabel(num_classes=num_classes)}))

    def generate(self, *_):
        image = np.zeros((2, 2, 3), np.uint8)
        for i in range(num_classes * per_class):
            yield i, {"image": image, "label": i // per_class}

    # registered by TFDS under the snake-case form of the class name
    name = f"KerasMaeClassSorted{num_classes}By{per_class}{'Shuffled' if shuffled else 'InOrder'}"
    if tfds.core.naming.camelcase_to_snakecase(name) in tfds.list_builders(
            with_community_datasets=False):
        return tfds.builder_cls(tfds.core.naming.camelcase_to_snakecase(name))
    return type(name, (tfds.core.GeneratorBasedBuilder,), {
        "VERSION": tfds.core.Version("1.0.0"), "_info": info,
        "_split_generators": lambda self, dl_manager: {"train": self._generate_examples()},
        "_generate_examples": generate})


def classes_per_batch(labels, batch):
    return [len(np.unique(labels[i:i + batch])) for i in range(0, len(labels) - batch + 1, batch)]


def epoch_labels(source, batch, buffer, seed=0):
    from keras_mae.data import labeled_dataset

    ds = labeled_dataset(source, 2, batch, training=True, seed=seed, shuffle_buffer=buffer)
    return np.concatenate([labels.numpy() for _, labels in ds])


def measure(num_classes, per_class, files, batch, buffer, data_dir):
    import tensorflow_datasets as tfds

    from keras_mae.data import load_source

    n = num_classes * per_class
    labels = np.repeat(np.arange(num_classes), per_class)
    rows = []
    rng = np.random.default_rng(0)
    full = [c for _ in range(3) for c in classes_per_batch(labels[rng.permutation(n)], batch)]
    rows.append(("numpy permutation (a full shuffle)", full))
    arrays = (np.zeros((n, 2, 2, 3), np.uint8), labels)
    rows.append(("arrays written class by class", classes_per_batch(
        epoch_labels(arrays, batch, buffer), batch)))
    for shuffled in (True, False):
        builder = sorted_builder(num_classes, per_class, shuffled)(data_dir=data_dir)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            num_shards=files))
        source = load_source(f"tfds:{builder.name}", data_dir=data_dir)
        what = "TFDS, records shuffled when written" if shuffled else \
            "TFDS, written class by class"
        rows.append((f"{what}: files in order, no buffer", classes_per_batch(
            epoch_labels(source, batch, 0), batch)))
        rows.append((f"{what}: seeded file order + buffer", classes_per_batch(
            epoch_labels(source, batch, buffer), batch)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--buffer", type=int, default=100)
    parser.add_argument("--output", default="stream_class_mix.json")
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_datasets as tfds

    from benchmarks.results import write_section

    with tempfile.TemporaryDirectory() as data_dir:
        rows = measure(args.classes, args.per_class, args.files, args.batch, args.buffer,
                       data_dir)
    table = [f"{args.classes} classes x {args.per_class} images, {args.files} files, batches of "
             f"{args.batch}, buffer {args.buffer} records; distinct classes per batch over one "
             "epoch.", "", "| order | mean | min | max |", "|---|---|---|---|"]
    for name, counts in rows:
        table.append(f"| {name} | {np.mean(counts):.1f} | {min(counts)} | {max(counts)} |")
    text = "\n".join(table) + "\n"
    print(text)
    with open(args.output, "w") as f:
        json.dump({name: counts for name, counts in rows}, f)
    write_section("stream_class_mix", "Classes per batch: full permutation, buffers and TFDS files",
                  text, versions={"TensorFlow": tf.__version__, "tensorflow-datasets":
                                  tfds.__version__})


if __name__ == "__main__":
    main()
