"""Measures images/s of `keras_mae.data.pretrain_dataset`.

Two array settings: CIFAR-10 images at 32 px (from an .npz file) and 256x256
random uint8 images cropped and resized to 224 px. Each setting runs a
warm-up, then times a fixed number of batches (repeat=True, so the pass never
ends early).

With ``--jpeg``: a folder of ImageNet-shaped JPEGs instead, through our
pipeline, the official loader's work in PIL and the bare decoder, on 1 and 2
cores (`benchmarks/jpeg_folder.py`); the table goes into
`benchmarks/RESULTS.md`.

Usage (from the repository root):

    python benchmarks/pipeline_throughput.py --batches 300 --output bench.json
    python benchmarks/pipeline_throughput.py --jpeg --rounds 4

Prints images/s per setting (with `--train-backend`, next to the training
step it feeds) and writes them to `--output`.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a checkout without installing

from keras_mae.data import pretrain_dataset  # noqa: E402

DEFAULT_DATA = os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10_train_0.npz")


def measure(dataset, batches, warmup):
    """Returns (images/s, seconds) over ``batches`` batches after ``warmup``."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        images += int(next(iterator).shape[0])
    seconds = time.perf_counter() - start
    return images / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="CIFAR-10 .npz file (x uint8 (N, 32, 32, 3))")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size-32", type=int, default=256)
    parser.add_argument("--batch-size-224", type=int, default=64)
    parser.add_argument("--num-224-images", type=int, default=512,
                        help="distinct random 256x256 images for the 224 px run")
    parser.add_argument("--output", default="pipeline_throughput.json")
    parser.add_argument("--train-backend", default="jax",
                        help="also time a training step of the matching model on this Keras "
                             "backend (tensorflow, jax, torch), or 'none'")
    parser.add_argument("--jpeg", action="store_true",
                        help="the JPEG-folder setting only (benchmarks/jpeg_folder.py)")
    parser.add_argument("--jpeg-folder", default=os.path.join("/tmp", "keras_mae_jpegs"),
                        help="where the JPEG folders are written (kept between runs)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    if args.jpeg:
        return jpeg_main(args)
    if not os.path.isfile(args.data):
        raise SystemExit(f"--data file not found: {args.data!r}")
    rng = np.random.default_rng(0)
    large = rng.integers(0, 256, (args.num_224_images, 256, 256, 3), dtype=np.uint8)
    settings = [
        ("cifar10-32px", args.data, 32, args.batch_size_32),
        ("random256-224px", large, 224, args.batch_size_224),
    ]
    results = []
    for name, source, size, batch_size in settings:
        ds = pretrain_dataset(source, image_size=size, batch_size=batch_size,
                              seed=0, repeat=True)
        rate, seconds = measure(ds, args.batches, args.warmup)
        results.append(dict(setting=name, image_size=size, batch_size=batch_size,
                            batches=args.batches, seconds=round(seconds, 2),
                            images_per_second=round(rate, 1)))

    if args.train_backend != "none":
        # The training step that this pipeline feeds, timed on the same machine
        # (tiny ViT at 32 px, ViT-B/16 at 224 px): the pipeline must outrun it.
        from benchmarks.train_throughput import run_job

        for r, setting in zip(results, ("tiny32", "base224")):
            step = run_job((args.train_backend, setting, "plain"), steps=3, warmup=2,
                           timeout=1800)
            r["train_setting"] = f"{setting}/{args.train_backend} batch {step.get('batch')}"
            r["train_images_per_second"] = round(step.get("images_per_s", float("nan")), 1)
            r["pipeline_over_train"] = round(r["images_per_second"] / r["train_images_per_second"], 1)

    header = f"{'setting':<17}{'image_size':>11}{'batch_size':>11}{'batches':>9}" \
             f"{'images/s':>11}{'train img/s':>13}{'pipeline/train':>16}"
    print(header)
    for r in results:
        print(f"{r['setting']:<17}{r['image_size']:>11}{r['batch_size']:>11}"
              f"{r['batches']:>9}{r['images_per_second']:>11.0f}"
              f"{r.get('train_images_per_second', float('nan')):>13.1f}"
              f"{r.get('pipeline_over_train', float('nan')):>16.1f}")
    report = dict(results=results, cpu_count=os.cpu_count(),
                  tensorflow=tf.__version__, python=platform.python_version())
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")


def jpeg_main(args):
    from benchmarks import jpeg_folder
    from benchmarks.results import write_section

    folders = {}
    for setting, (size, count, _, _) in jpeg_folder.SETTINGS.items():
        folders[setting] = os.path.join(args.jpeg_folder, setting)
        jpeg_folder.make_folder(folders[setting], count, size)
    rows = []
    # a first job ran slow in every trial (the files' first reads): one is run and dropped
    jpeg_folder.run_isolated("decode", folders["imagenet"], 2, 1000)
    for round_index in range(args.rounds):
        for setting, (_, _, cores, images) in jpeg_folder.SETTINGS.items():
            for count in cores:
                # rotate the jobs' order from round to round: each leads one round in four
                shift = round_index % len(jpeg_folder.JOBS)
                for job in jpeg_folder.JOBS[shift:] + jpeg_folder.JOBS[:shift]:
                    row = jpeg_folder.run_isolated(job, folders[setting], count, images)
                    row.update(setting=setting, round=round_index)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = jpeg_folder.summarise(rows)
    stages = jpeg_folder.run_isolated("profile", folders["imagenet"], 1, 3000)
    table = (jpeg_folder.markdown(summary, args.rounds) + "\n"
             + jpeg_folder.profile_markdown(stages["ms_per_image"]))
    print(table)
    with open(args.output, "w") as f:
        json.dump(dict(rows=rows, summary=summary, profile=stages), f, indent=2)
    import PIL

    write_section("pipeline_throughput:jpeg", "JPEG folders: our pipeline, the official loader's "
                  "work in PIL, the bare decoder", table,
                  versions={"TensorFlow": tf.__version__, "Pillow": PIL.__version__})
    print(f"wrote {args.output} and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
