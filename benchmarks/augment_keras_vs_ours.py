"""Fine-tuning augmentation: Keras' own layers next to `keras_mae.data`'s, speed and protocol.

The official fine-tuning (facebookresearch/mae `main_finetune.py`, timm 0.3.2)
uses RandAugment `rand-m9-mstd0.5-inc1`, random erasing 0.25 in pixel mode,
and mixup 0.8 / cutmix 1.0 (switch 0.5, one coefficient per batch) with label
smoothing 0.1. Keras 3 has `RandAugment` (3.8), `MixUp` (3.8), `CutMix` (3.9)
and `RandomErasing` (3.9). What each does, read from Keras 3.15's source:

| piece | timm / official | Keras layer |
|---|---|---|
| RandAugment ops | 15 (auto-contrast, equalize, invert, rotate, posterize, solarize, solarize-add, colour, contrast, brightness, sharpness, shear x/y, translate x/y) | 11 (no invert, no solarize-add, shear and translate are one op each, solarization = threshold + addition) |
| strength | fixed level 9 of 10 (+ N(0, 0.5) noise): rotate 27 deg, shear 0.27, translate 0.405 of the side | `factor` is a range: every op draws its strength uniformly in [0, factor]; `RandomRotation(factor)` turns by up to factor x 360 deg |
| each chosen op | applied with probability 0.5 | always applied |
| geometric fill | the ImageNet mean colour (124, 116, 104), bicubic | `fill_mode="reflect"` (the layers' default), bilinear |
| ops per image | drawn per image | drawn once per call: a batch gets one pair of ops; all 11 are computed and `where`-selected, `num_ops` times |
| erasing box | area in (0.02, 1/3) of the image, log aspect ratio in (log 0.3, log 1/0.3), 10 attempts | height and width fractions each sqrt(uniform(0.02, 0.33)) |
| erasing probability | 0.25 | drawn uniformly in [0, factor] unless `factor=(p, p)` |
| mixup / cutmix | one of the two per batch (switch 0.5), one coefficient per batch, partner = the reversed batch | separate layers, one coefficient per image, partner = a random permutation |
| label smoothing | 0.1 on the one-hot targets, before mixing | none in the layers (the loss' `label_smoothing` gives the same targets, mixing being linear) |

So no Keras layer reproduces the official protocol; `keras_mae.data` keeps
its own. Speed is measured here, in one run (images/s through a `tf.data`
pipeline, per-image ops mapped over single images, batch ops over batches).

Usage (from the repository root):

    python benchmarks/augment_keras_vs_ours.py --batches 20 --output augment.json

Measured in one run (`--image-size 224 --batch 64 --batches 10 --warmup 2`;
2-core Intel Xeon, flags avx512f avx512_bf16 amx_bf16 amx_tile; TF 2.21, Keras
3.15.1; nothing else running), images/s:

    rand_augment/ours                              308.2
    rand_augment/keras (per image)                  55.4   0.18x ours
    rand_augment/keras (whole batch, ops shared)    48.4   0.16x ours
    random_erasing/ours                            800.8
    random_erasing/keras                           612.4   0.77x ours
    mixup_cutmix/ours                             2908.7   (mixup or cutmix, 50/50)
    mixup/keras                                   5526.4   1.90x ours
    cutmix/keras                                  1925.3   0.66x ours

Keras' RandAugment computes all 11 ops `num_ops` times for every call, which
is why it is 5-6x slower than ours (two ops, each applied with probability
0.5). Ours resamples its geometric ops with PIL's bicubic affine (timm's
setting for the official fine-tuning). With TensorFlow's bilinear transform
instead it ran at about 550 img/s at 224 px (a separate measurement on the
same machine, RandAugment alone, best of 4 runs; not part of this table).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a checkout without installing

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from keras_mae.data.erasing import random_erasing  # noqa: E402
from keras_mae.data.mixing import mixup_cutmix  # noqa: E402
from keras_mae.data.randaugment import rand_augment  # noqa: E402


def seeds():
    return tf.data.Dataset.random(seed=0).map(lambda r: tf.stack([r, tf.constant(7, tf.int64)]))


def per_image_pipeline(images, batch, augment):
    """`images` (N, H, W, 3) float32 0-255 -> batches of `augment(image, seed)`."""
    ds = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(images).repeat(), seeds())
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def per_batch_pipeline(images, labels, batch, augment):
    """Batches of `(images, one-hot labels)` -> `augment(images, labels, seed)`."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
    ds = ds.batch(batch, drop_remainder=True)
    ds = tf.data.Dataset.zip(ds, seeds())
    ds = ds.map(lambda xy, s: augment(xy[0], xy[1], s), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def measure(dataset, batches, warmup):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        out = next(iterator)
        count += int((out[0] if isinstance(out, tuple) else out).shape[0])
    return count / (time.perf_counter() - start)


def candidates(num_classes):
    """`{name: (kind, fn)}`: ours and Keras' for each piece, at the official settings."""
    keras_ra = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=0)
    keras_ra_batch = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9,
                                              seed=0)
    keras_erase = keras.layers.RandomErasing(factor=(0.25, 0.25), value_range=(0, 255), seed=0)
    keras_mixup = keras.layers.MixUp(alpha=0.8, seed=0)
    keras_cutmix = keras.layers.CutMix(factor=1.0, seed=0)

    def keras_mix(images, labels, seed):
        del seed
        out = keras_mixup({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    def keras_cut(images, labels, seed):
        del seed
        out = keras_cutmix({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    def ours_mix(images, labels, seed):
        x, y, _ = mixup_cutmix(images, tf.argmax(labels, -1), num_classes, seed)
        return x, y

    return {
        "rand_augment/ours": ("image", lambda x, s: rand_augment(x, s)),
        "rand_augment/keras (per image)": ("image", lambda x, s: keras_ra(x, training=True)),
        "rand_augment/keras (whole batch, ops shared)": ("batch_images",
                                                         lambda x: keras_ra_batch(x, training=True)),
        "random_erasing/ours": ("image", lambda x, s: random_erasing(x, s, prob=0.25)),
        "random_erasing/keras": ("image", lambda x, s: keras_erase(x, training=True)),
        "mixup_cutmix/ours": ("batch", ours_mix),
        "mixup/keras": ("batch", keras_mix),
        "cutmix/keras": ("batch", keras_cut),
    }


# The piece of ours each Keras layer stands in for.
OURS = {"rand_augment": "rand_augment/ours", "random_erasing": "random_erasing/ours",
        "mixup": "mixup_cutmix/ours", "cutmix": "mixup_cutmix/ours"}


def ratios(results):
    """`{keras candidate: its images/s / ours}`."""
    return {name: round(value / results[OURS[name.split("/")[0]]], 3)
            for name, value in results.items() if "/keras" in name}


def run(image_size=224, batch=64, batches=20, warmup=3, num_images=256, num_classes=10):
    """`{name: images/s}` for every candidate, in one process."""
    rng = np.random.RandomState(0)
    images = (rng.rand(num_images, image_size, image_size, 3) * 255).astype("float32")
    labels = np.eye(num_classes, dtype="float32")[rng.randint(0, num_classes, num_images)]
    results = {}
    for name, (kind, fn) in candidates(num_classes).items():
        if kind == "image":
            ds = per_image_pipeline(images, batch, fn)
        elif kind == "batch_images":
            ds = tf.data.Dataset.from_tensor_slices(images).repeat().batch(batch, drop_remainder=True)
            ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        else:
            ds = per_batch_pipeline(images, labels, batch, fn)
        results[name] = round(measure(ds, batches, warmup), 1)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default="augment_keras_vs_ours.json")
    args = parser.parse_args(argv)
    results = run(args.image_size, args.batch, args.batches, args.warmup)
    report = {"machine": machine_info(), "image_size": args.image_size, "batch": args.batch,
              "batches": args.batches, "images_per_s": results}
    report["vs_ours"] = ratios(results)
    for name, value in results.items():
        ratio = f"{report['vs_ours'][name]:.2f}x ours" if name in report["vs_ours"] else ""
        print(f"{name:48s} {value:10.1f} img/s  {ratio}")
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
