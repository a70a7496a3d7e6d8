"""The JPEG-folder setting of `pipeline_throughput.py`: folders of JPEGs through four loaders.

Files: `make_folder` writes JPEGs at quality 90, cut at random places, scales
and flips from the two photographs scikit-learn ships (`load_sample_images`: a
temple in China and a flower, 427x640 each), resized to one shape (a quarter of
them turned to portrait). `SETTINGS`: ImageNet's typical 500x375, and a
camera's 2000x1500.

Jobs (`run_job`), each in a fresh process pinned to the first `cores` CPUs:
- `ours`: `keras_mae.data.pretrain_dataset` on the folder (random resized crop
  224, scale (0.2, 1), bicubic, flip, normalise); files above
  `WINDOW_DECODE_MIN_BYTES` decode only their crop window;
- `ours_full_decode`: the same pipeline decoding every whole file, then cropping;
- `pil`: the official loader's work (`benchmarks/pil_reference.py`) in a pool of
  `cores` processes, each making whole batches, as DataLoader workers do;
- `decode`: `tf.io.decode_jpeg` of each whole file in `tf.data`, nothing else
  (the bound that decoding sets);
- `profile`: our per-image work stage by stage on one core (`profile`).
"""

import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = ("ours", "ours_full_decode", "pil", "decode")
# name: (width, height, files, core counts, images timed per job)
SETTINGS = {"imagenet": ((500, 375), 3000, (1, 2), 3000),
            "camera": ((2000, 1500), 300, (2,), 600)}


def make_folder(folder, count, size=(500, 375), seed=0):
    """Writes `count` JPEGs of `size` (width, height) into `folder` (kept if already there); returns their paths."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{k:05d}.jpg") for k in range(count)]
    if all(os.path.exists(p) for p in paths):
        return paths
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for k, path in enumerate(paths):
        photo = photos[k % len(photos)]
        portrait = rng.random() < 0.25
        aspect = 3 / 4 if portrait else 4 / 3          # width / height
        fit_h = min(photo.shape[0], photo.shape[1] / aspect)
        h = int(fit_h * rng.uniform(0.5, 1.0))
        w = int(h * aspect)
        top = rng.integers(0, photo.shape[0] - h + 1)
        left = rng.integers(0, photo.shape[1] - w + 1)
        image = Image.fromarray(photo[top:top + h, left:left + w])
        image = image.resize(size[::-1] if portrait else size, Image.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image.save(path, quality=90)
    return paths


def _jpegs(folder):
    """The folder's JPEGs, sorted, listed without importing TensorFlow (the PIL job runs without it)."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))


def _ours(folder, batch, full_decode):
    import dataclasses

    from keras_mae.data import load_source, pretrain_dataset
    from keras_mae.data.sources import crop_element

    source = load_source(folder)
    if full_decode:
        decode = source.decode
        source = dataclasses.replace(
            source, decode=lambda record, crop_box=None: crop_element(decode(record), crop_box))
    return iter(pretrain_dataset(source, 224, batch, repeat=True))


def _decode(paths, batch):
    import tensorflow as tf

    # each image's height leaves the map: the decode runs, no image is copied into a batch
    ds = tf.data.Dataset.from_tensor_slices(paths).repeat().map(
        lambda p: tf.shape(tf.io.decode_jpeg(tf.io.read_file(p), channels=3))[0],
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return iter(ds.batch(batch).prefetch(tf.data.AUTOTUNE))


def _pil(paths, batch, cores):
    import itertools
    import multiprocessing

    from benchmarks.pil_reference import train_batch

    pool = multiprocessing.get_context("fork").Pool(cores)
    tasks = (([paths[(i * batch + k) % len(paths)] for k in range(batch)], i)
             for i in itertools.count())
    return pool.imap(train_batch, tasks), pool


def run_job(job, folder, cores, images, batch=64, warmup_batches=3):
    """Runs one job in this process (pinned to `cores` CPUs); returns its result dict."""
    if job == "profile":
        return {"job": job, "cores": 1, "ms_per_image": profile(folder, images, batch)}
    os.sched_setaffinity(0, set(range(cores)))
    paths = _jpegs(folder)
    pool = None
    if job in ("ours", "ours_full_decode"):
        batches = _ours(folder, batch, job == "ours_full_decode")
    elif job == "decode":
        batches = _decode(paths, batch)
    elif job == "pil":
        batches, pool = _pil(paths, batch, cores)
    else:
        raise ValueError(f"job must be one of {JOBS}. Received: job={job!r}")
    for _ in range(warmup_batches):
        next(batches)
    count, start = 0, time.perf_counter()
    while count < images:
        count += int(next(batches).shape[0])
    seconds = time.perf_counter() - start
    if pool is not None:
        pool.terminate()
    return {"job": job, "cores": cores, "images": count, "seconds": round(seconds, 3),
            "images_per_s": round(count / seconds, 1)}


def _stages(paths):
    """Each stage of our per-image work on top of the one before, as `tf.data` map functions."""
    import tensorflow as tf

    from keras_mae.data import augment
    from keras_mae.data.image_files import decode_file

    files = tf.constant(paths)

    def window(i):
        seed = tf.stack([i, tf.constant(7, tf.int64)])
        return lambda shape: augment.sample_crop_box(shape, seed, scale=(0.2, 1.0))

    def whole(i):
        return tf.io.decode_jpeg(tf.io.read_file(files[i]), channels=3)

    def crop(i):
        contents = tf.io.read_file(files[i])
        box = window(i)(tf.io.extract_jpeg_shape(contents))
        return tf.io.decode_and_crop_jpeg(contents, box, channels=3)

    def checked(i):
        return decode_file(files[i], window(i))

    def resized(i):
        return augment.resize_crop(checked(i), 224)

    def transformed(i):
        image = augment.random_flip_left_right(resized(i), tf.stack([i, tf.constant(8, tf.int64)]))
        return augment.normalize(image, augment.IMAGENET_MEAN, augment.IMAGENET_STD)

    # the bare stages end in a scalar, so that no image is copied into a batch
    return {"decode whole file": lambda i: tf.shape(whole(i))[0],
            "decode crop window": lambda i: tf.shape(crop(i))[0],
            "+ error check naming the file": lambda i: tf.shape(checked(i))[0],
            "+ bicubic resize to 224": lambda i: tf.reduce_sum(resized(i)[0, 0]),
            "+ flip and normalise": lambda i: tf.reduce_sum(transformed(i)[0, 0]),
            "+ batches of 64 (float32)": transformed}


def profile(folder, images, batch=64):
    """Milliseconds per image of each stage of `_stages`, on one core (this process is pinned)."""
    import tensorflow as tf

    os.sched_setaffinity(0, {0})
    paths = _jpegs(folder)
    out = {}
    for name, stage in _stages(paths).items():
        ds = tf.data.Dataset.range(len(paths)).repeat().map(
            stage, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(2)
        batches = iter(ds)
        next(batches)
        count, start = 0, time.perf_counter()
        while count < images:
            count += int(next(batches).shape[0])
        out[name] = round(1000 * (time.perf_counter() - start) / count, 3)
    return out


def run_isolated(job, folder, cores, images, batch=64):
    """`run_job` in a fresh Python process; returns its result dict."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO_ROOT)
    code = (f"import json; from benchmarks.jpeg_folder import run_job; print('RESULT', "
            f"json.dumps(run_job({job!r}, {folder!r}, {cores}, {images}, {batch})))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"job {job} on {cores} cores failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarise(rows):
    """Median images/s per (setting, cores, job) over the rounds, and the ratios the targets name."""
    table = {}
    for row in rows:
        table.setdefault((row["setting"], row["cores"]), {}).setdefault(
            row["job"], []).append(row["images_per_s"])
    out = []
    for (setting, cores), jobs in table.items():
        rate = {job: statistics.median(jobs[job]) for job in JOBS if job in jobs}
        spread = {job: (min(jobs[job]), max(jobs[job])) for job in rate}
        out.append({"setting": setting, "cores": cores, "rate": rate, "spread": spread,
                    "ours_over_pil": rate["ours"] / rate["pil"],
                    "ours_over_decode": rate["ours"] / rate["decode"]})
    return out


def profile_markdown(stages):
    """The per-stage profile as a markdown table."""
    lines = ["Where the time goes, one core (each stage on top of the one before, ms per image):",
             "", "| stage | ms/image |", "|---|---|"]
    lines += [f"| {name} | {ms:.3f} |" for name, ms in stages.items()]
    return "\n".join(lines) + "\n"


def markdown(summary, rounds):
    lines = ["JPEGs at quality 90 cut from scikit-learn's two sample photographs (a quarter "
             "portrait): `imagenet` 3000 of 500x375 (about 50 KB), `camera` 300 of 2000x1500 "
             "(about 390 KB); random resized crop to 224 px, scale (0.2, 1), bicubic, flip, "
             f"normalise; batches of 64. Images/s, median of {rounds} rounds (min-max), the jobs' "
             "order rotated, each in its own process pinned to the cores. `ours` decodes only the "
             "crop window of files above 256 KB; `whole file` always decodes all of it.", "",
             "| files | cores | ours | ours, whole file | PIL reference | bare decode | "
             "ours / PIL | ours / bare decode |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        cell = lambda job: (f"{s['rate'][job]:.0f} ({s['spread'][job][0]:.0f}-"   # noqa: E731
                            f"{s['spread'][job][1]:.0f})")
        lines.append(f"| {s['setting']} | {s['cores']} | {cell('ours')} | {cell('ours_full_decode')} | "
                     f"{cell('pil')} | {cell('decode')} | {s['ours_over_pil']:.2f}x | "
                     f"{s['ours_over_decode']:.0%} |")
    return "\n".join(lines) + "\n"
