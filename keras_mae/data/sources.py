"""Image sources: turn a name, path, array or dataset into one tf.data form.

`load_source` returns a `Source` whose `dataset` is an unbatched
`tf.data.Dataset` of dicts `{"images": uint8 (H, W, C), "labels": int64 ()}`
(no `"labels"` key when the source has none).

Pixel convention: images are uint8 on the 0-255 scale. Integer arrays with
values in [0, 255] are cast; floating-point arrays must hold values in
[0, 1] and are scaled by 255 and rounded. Arrays of rank 3 (N, H, W) are
grayscale and get a channel axis of 1.
"""

import dataclasses
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_mae.data.augment import crop_to_box
from keras_mae.data.image_files import IMAGE_EXTENSIONS, decode_file, list_images, scan_images

DIGITS_TRAIN_SIZE = 1500
# what a source named by a string can be, for the errors of a string that names none
SOURCE_FORMS = ("'digits', 'tfds:NAME' (a prepared TensorFlow Datasets set), a folder of images "
                "(flat, or one sub-folder per class), or a .npz file with 'x' and optional 'y' "
                "(several: comma-separated)")


class NotPreparedError(ValueError):
    """Raised by `load_source` for a TFDS dataset that is not prepared in its data directory.

    Attributes:
        name: the TFDS name.
        split: the split asked for.
        data_dir: the data directory searched, or None for TFDS' default.
    """

    def __init__(self, message, name, split, data_dir):
        super().__init__(message)
        self.name, self.split, self.data_dir = name, split, data_dir


class UnknownSourceError(ValueError):
    """Raised by `load_source` for a string that names no source (no such file, folder or TFDS name).

    Attributes:
        source: the string.
        problem: what is wrong with it; the message adds the forms a source takes.
    """

    def __init__(self, source, problem):
        super().__init__(f"`source` names no data: {problem}. A source is {SOURCE_FORMS}. "
                         f"Received: source={source!r}")
        self.source, self.problem = source, problem


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset of single images with what is known about it.

    Attributes:
        dataset: unbatched `tf.data.Dataset` of dicts with `"images"`
            (uint8, (H, W, C)) and optionally `"labels"` (int64 scalar).
        num_examples: number of examples, or None when unknown.
        num_classes: number of classes, or None (unlabelled or unknown).
        image_shape: (H, W, C) when every image has it, else None.
        name: short description of where the data came from.
        table: for a source read by index, a dict of tensors whose first axis
            is the record (image arrays and labels, or file paths and
            labels), else None (a stream, such as a TFDS split).
        decode: the function mapping one record of `table` (a dict of its
            rows) and an optional crop-window function to the dict form, or
            None when the rows are that form.
        skipped: `(path, problem)` of each file left out because it cannot
            be decoded (`skip_bad_images=True`).
        reader: for a stream stored in several files (TFDS), a function
            `(seed, reshuffle, num_shards, shard_index) -> (dataset, sharded)`
            reading the files in a seeded order (and, when `sharded`, only
            this worker's files), else None.
    """

    dataset: tf.data.Dataset
    num_examples: Optional[int]
    num_classes: Optional[int]
    image_shape: Optional[Tuple[int, int, int]]
    name: str
    table: Optional[dict] = dataclasses.field(default=None, repr=False, compare=False)
    decode: Optional[Callable] = dataclasses.field(
        default=None, repr=False, compare=False)
    skipped: Tuple[Tuple[str, str], ...] = ()
    reader: Optional[Callable] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def has_labels(self):
        """Whether the examples carry a `"labels"` entry."""
        return "labels" in self.dataset.element_spec

    def read(self, index, crop_box=None):
        """The decoded dict of record `index` of a source read by index.

        Args:
            index: scalar int tensor.
            crop_box: optional function from the image's shape to an int32
                box `(top, left, height, width)`; the image is then only that
                window (a large JPEG file decodes only the window,
                `image_files.try_decode`).

        Returns:
            dict with `"images"` (uint8 (H, W, C)) and, when labelled,
            `"labels"`.
        """
        row = {name: tf.gather(column, index) for name, column in self.table.items()}
        if self.decode is not None:
            return self.decode(row, crop_box)
        return crop_element(row, crop_box)


def load_source(source, split="train", data_dir=None, skip_bad_images=False):
    """Loads images (and labels) from one of several kinds of source.

    Accepted `source` values:

    * `"digits"`: scikit-learn's 1797 labelled 8x8 digit images (no network
      needed), scaled from 0-16 to uint8 0-255 and repeated to 3 channels.
      `split="train"` is the first 1500 images, `"test"` the remaining
      297, `"all"` all of them.
    * a path to a `.npz` file with `x` (N, H, W[, C]) and optional `y`
      (N,) integer labels; a comma-separated list of paths concatenates them.
    * a directory of PNG/JPEG/BMP/GIF images, either with one sub-folder per
      class (labels are the indices of the sorted folder names) or flat (no
      labels). Images are decoded to 3 channels in the dataset, may differ in
      size, and a file that is not an image raises an error naming it.
    * `"tfds:NAME"`, or a bare registered TFDS name that is not an existing
      path: `tfds.load(NAME, split=split, data_dir=data_dir)` without
      downloading; the data must already be prepared.
    * a numpy array `x` or a tuple `(x, y)`.
    * a `tf.data.Dataset` of unbatched images, `(image, label)` pairs or
      dicts with `"images"`/`"image"` and `"labels"`/`"label"`.
    * a `Source`, returned unchanged.

    `split` applies to "digits" and TFDS names; `data_dir` to TFDS only.

    Args:
        source: one of the values above.
        split: split name ("train", "test", "all" for digits; any TFDS split
            string such as "train[:10%]" for TFDS).
        data_dir: TFDS data directory (default: TFDS' own default).
        skip_bad_images: for a folder, leave out the files that cannot be
            decoded (found by decoding all of them once, in parallel).

    Returns:
        A `Source`.

    Raises:
        ValueError: for a missing path or unknown name (`UnknownSourceError`),
            an empty directory or array, wrong rank, unsupported dtype or
            out-of-range values, mismatched labels, or TFDS data that is not
            prepared (`NotPreparedError`); both are `ValueError`s.

    Example:
    ```python
    from keras_mae.data.sources import load_source
    src = load_source("digits", split="test")
    src.num_examples, src.num_classes, src.image_shape  # (297, 10, (8, 8, 3))
    sorted(next(iter(src.dataset)).keys())  # ['images', 'labels']
    ```
    """
    if skip_bad_images is not False and not (
            isinstance(source, (str, os.PathLike)) and os.path.isdir(os.path.expanduser(source))):
        raise ValueError(f"skip_bad_images applies to folders of images only. Received: "
                         f"source={source!r}, skip_bad_images={skip_bad_images!r}")
    if isinstance(source, Source):
        return source
    if isinstance(source, tf.data.Dataset):
        return _from_dataset(source)
    if isinstance(source, np.ndarray):
        return from_arrays(source, name="array")
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError("an array source must be x or a tuple (x, y). Received: a "
                             f"{type(source).__name__} of length {len(source)}")
        return from_arrays(source[0], source[1], name="arrays")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise ValueError(f"unsupported source of type {type(source).__name__}. "
                         f"Received: source={source!r}")
    if os.path.isdir(os.path.expanduser(source)):
        return _directory(os.path.expanduser(source), skip_bad_images)
    return _from_string(source, split, data_dir)


def slice_source(source, start, count):
    """The examples `start .. start + count - 1` of a sized `Source`, in order.

    Args:
        source: a `Source` whose `num_examples` is known.
        start: int, the first example.
        count: int >= 1.

    Returns:
        A `Source` of `count` examples.

    Raises:
        ValueError: when the range is empty or runs past the source's end.

    Example:
    ```python
    from keras_mae.data.sources import load_source, slice_source
    part = slice_source(load_source("digits"), 100, 50)
    part.num_examples  # 50
    ```
    """
    if source.num_examples is None:
        raise ValueError(f"cannot slice {source.name!r}: its size is unknown")
    if start < 0 or count < 1 or start + count > source.num_examples:
        raise ValueError(f"examples {start}..{start + count - 1} do not lie within the "
                         f"{source.num_examples} examples of {source.name!r}")
    table = None
    if source.table is not None:
        table = {name: column[start:start + count] for name, column in source.table.items()}
    return dataclasses.replace(source, dataset=source.dataset.skip(start).take(count),
                               num_examples=count, table=table,
                               name=f"{source.name}[{start}:{start + count}]")


def subset_source(source, count, seed=0):
    """`count` examples of a labelled `Source` read by index, drawn at random per class.

    Each class keeps `count // K` examples (K classes; the first `count %
    K` classes one more), drawn from `seed`, in their original order: the
    "10% of the labels" split of semi-supervised studies.

    Args:
        source: a labelled `Source` read by index (arrays, `.npz` files,
            digits, folders).
        count: int >= 1, the examples kept.
        seed: int, the draw.

    Returns:
        A `Source` of `count` examples.

    Raises:
        ValueError: when the source is not read by index, has no labels, or a
            class has fewer examples than it must keep.

    Example:
    ```python
    from keras_mae.data.sources import load_source, subset_source
    part = subset_source(load_source("digits"), 100, seed=0)
    part.num_examples  # 100
    ```
    """
    if source.table is None or "labels" not in source.table:
        raise ValueError(f"a labelled subset needs a labelled source read by index (arrays, "
                         f".npz files, digits, folders); {source.name!r} is not")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int. Received: count={count!r}")
    labels = np.asarray(source.table["labels"])
    classes = np.unique(labels)
    rng = np.random.RandomState(seed)
    rows = []
    for position, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        keep = count // len(classes) + (position < count % len(classes))
        if keep > len(members):
            raise ValueError(f"cannot keep {keep} examples of class {label} in "
                             f"{source.name!r}: it has {len(members)}")
        rows.append(rng.choice(members, keep, replace=False))
    rows = np.sort(np.concatenate(rows))
    table = {name: tf.gather(column, rows) for name, column in source.table.items()}
    indices = tf.data.Dataset.from_tensor_slices(tf.constant(rows, tf.int64))
    return dataclasses.replace(source, dataset=indices.map(source.read),
                               num_examples=int(len(rows)), table=table,
                               name=f"{source.name}[{count} per-class random, seed {seed}]")


def _from_string(source, split, data_dir):
    if not source.strip():
        raise ValueError(f"source must not be empty. Received: source={source!r}")
    if source == "digits":
        return _digits(split)
    if source.startswith("tfds:"):
        return _tfds(source[len("tfds:"):], split, data_dir)
    if "," in source:
        paths = [p.strip() for p in source.split(",")]
        if not all(p.endswith(".npz") for p in paths):
            raise ValueError(f"a comma-separated source must list .npz files. "
                             f"Received: source={source!r}")
        return _npz(paths)
    path = os.path.expanduser(source)
    if os.path.isfile(path):
        if path.endswith(".npz"):
            return _npz([path])
        raise ValueError(f"unsupported file {source!r}: expected a .npz file or "
                         "a directory of images")
    if _is_tfds_name(source):
        return _tfds(source, split, data_dir)
    if source.endswith(".npz") or os.sep in source:
        raise UnknownSourceError(source, "no such file or folder")
    raise UnknownSourceError(source, "no such file or folder, and not a registered TFDS name")


def from_arrays(x, y=None, name="arrays"):
    """Builds a Source from in-memory images and optional labels.

    Args:
        x: array-like (N, H, W, C) or (N, H, W); uint8, integers in [0, 255],
            or floats in [0, 1] (scaled by 255).
        y: optional array-like (N,) of non-negative integer labels.
        name: name recorded in the Source.

    Returns:
        A `Source` with `num_classes = max(y) + 1` when labelled.

    Example:
    ```python
    import numpy as np
    from keras_mae.data.sources import from_arrays
    src = from_arrays(np.zeros((4, 5, 5), np.uint8), np.arange(4))
    src.image_shape, src.num_classes  # ((5, 5, 1), 4)
    ```
    """
    x = _to_uint8(np.asarray(x), name)
    elements = {"images": x}
    num_classes = None
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"labels of {name} must have shape ({len(x)},). "
                             f"Received: y.shape={y.shape}")
        if not np.issubdtype(y.dtype, np.integer) and not (
                np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(f"labels of {name} must be integers. Received: y.dtype={y.dtype}")
        if y.min() < 0:
            raise ValueError(f"labels of {name} must be >= 0. Received: min(y)={int(y.min())}")
        elements["labels"] = y.astype(np.int64)
        num_classes = int(y.max()) + 1
    table = {key: tf.convert_to_tensor(value) for key, value in elements.items()}
    return Source(tf.data.Dataset.from_tensor_slices(table), len(x),
                  num_classes, tuple(int(d) for d in x.shape[1:]), name, table=table)


def _to_uint8(x, name):
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images of {name} must have rank 4 (N, H, W, C) or 3 "
                         f"(N, H, W). Received: x.shape={x.shape}")
    if x.shape[0] == 0 or 0 in x.shape[1:]:
        raise ValueError(f"images of {name} must not be empty. Received: x.shape={x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"images of {name} must be uint8, integers in [0, 255] "
                         f"or floats in [0, 1]. Received: x.dtype={x.dtype}")
    low, high = x.min(), x.max()
    if np.issubdtype(x.dtype, np.floating):
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= 1):
            raise ValueError(f"float images of {name} must lie in [0, 1]. Received: "
                             f"values in [{low}, {high}]")
        return np.round(x * 255.0).astype(np.uint8)
    if low < 0 or high > 255:
        raise ValueError(f"integer images of {name} must lie in [0, 255]. Received: "
                         f"values in [{low}, {high}]")
    return x.astype(np.uint8)


def _digits(split):
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the 'digits' source needs scikit-learn installed") from err

    ranges = {"train": slice(0, DIGITS_TRAIN_SIZE),
              "test": slice(DIGITS_TRAIN_SIZE, None), "all": slice(None)}
    if split not in ranges:
        raise ValueError(f"split for 'digits' must be one of {sorted(ranges)}. "
                         f"Received: split={split!r}")
    digits = load_digits()
    images = np.round(digits.images[ranges[split]] * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(images[..., None], 3, axis=-1)
    return from_arrays(images, digits.target[ranges[split]], name=f"digits[{split}]")


def _npz(paths):
    xs, ys = [], []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"npz file not found: {path!r}")
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data:
                raise ValueError(f"npz file {path!r} has no array 'x' (found "
                                 f"{sorted(data.files)})")
            xs.append(_to_uint8(data["x"], path))
            ys.append(data["y"] if "y" in data else None)
    shapes = {x.shape[1:] for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"npz files {paths!r} hold images of different shapes "
                         f"{sorted(shapes)}")
    if any(y is None for y in ys) and not all(y is None for y in ys):
        raise ValueError(f"some npz files of {paths!r} have labels 'y' and some not")
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = None if ys[0] is None else np.concatenate(ys)
    return from_arrays(x, y, name=",".join(paths))


def _directory(path, skip_bad_images=False):
    entries = sorted(os.listdir(path))
    classes = [e for e in entries if os.path.isdir(os.path.join(path, e))
               and not e.startswith(".")]
    flat = [os.path.join(path, e) for e in entries
            if e.lower().endswith(IMAGE_EXTENSIONS)
            and os.path.isfile(os.path.join(path, e))]
    per_class = [list_images(os.path.join(path, c)) for c in classes]
    if flat and any(per_class):
        raise ValueError(f"directory {path!r} mixes image files with class "
                         "sub-folders; use one layout")
    if flat:
        files, labels, num_classes = flat, None, None
    elif any(per_class):
        files = [f for group in per_class for f in group]
        labels = [i for i, group in enumerate(per_class) for _ in group]
        num_classes = len(classes)
    else:
        raise ValueError(f"directory {path!r} contains no images "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    skipped = ()
    if skip_bad_images:
        skipped = tuple(scan_images(files))
        bad = {p for p, _ in skipped}
        keep = [i for i, f in enumerate(files) if f not in bad]
        if not keep:
            raise ValueError(f"no file of directory {path!r} can be decoded: {skipped[0][0]!r} "
                             f"({skipped[0][1]}) and {len(skipped) - 1} more")
        files = [files[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
    table = {"paths": tf.constant(files)}
    if labels is not None:
        table["labels"] = tf.constant(labels, tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(table).map(
        _decode_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Source(ds, len(files), num_classes, None, path, table=table,
                  decode=_decode_record, skipped=skipped)


def crop_element(element, crop_box):
    """`element` with its image cut to `crop_box(shape)` (unchanged when None).

    Args:
        element: dict with `"images"`, a (H, W, C) tensor.
        crop_box: None, or a function from the image's shape to an int32 box
            `(top, left, height, width)`.

    Returns:
        dict, `element` with the window of its image.
    """
    if crop_box is None:
        return element
    image = element["images"]
    return dict(element, images=crop_to_box(image, crop_box(tf.shape(image))))


def _decode_record(record, crop_box=None):
    out = {"images": decode_file(record["paths"], crop_box)}
    if "labels" in record:
        out["labels"] = record["labels"]
    return out


def _is_tfds_name(name):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return False
    base = name.split(":")[0].split("/")[0]
    return base in tfds.list_builders(with_community_datasets=False)


def _tfds(name, split, data_dir):
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ValueError(f"TFDS source {name!r} needs tensorflow-datasets "
                         "installed") from err
    if not _is_tfds_name(name):
        raise UnknownSourceError(f"tfds:{name}", f"{name!r} is not a registered TFDS name")
    where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"
    try:
        ds, info = tfds.load(name, split=split, data_dir=data_dir, download=False,
                             with_info=True, try_gcs=False)
    except (AssertionError, FileNotFoundError, tfds.core.DatasetNotFoundError,
            OSError) as err:
        raise NotPreparedError(
            f"TFDS dataset {name!r} (split {split!r}) is not prepared in {where}. "
            f"Prepare it first on a machine with network access, e.g. "
            f"`tfds build {name} --data_dir <dir>` or "
            f"`tfds.builder({name!r}, data_dir=<dir>).download_and_prepare()`, "
            f"then pass data_dir=<dir>. ({err})", name, split, data_dir) from err
    except ValueError as err:
        raise ValueError(f"cannot load TFDS dataset {name!r} with split "
                         f"{split!r} from {where}: {err}") from err
    image_key, label_key = _tfds_keys(info.features, name)

    def to_dict(example):
        out = {"images": _image_to_uint8(example[image_key])}
        if label_key is not None:
            out["labels"] = tf.cast(example[label_key], tf.int64)
        return out

    shape = info.features[image_key].shape
    image_shape = tuple(shape) if None not in shape else None
    if image_shape is not None and len(image_shape) == 2:
        image_shape += (1,)
    num_classes = info.features[label_key].num_classes if label_key else None
    try:
        num_examples = info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        num_examples = None
    try:
        num_files = len(info.splits[split].file_instructions)
    except (KeyError, ValueError, TypeError):
        num_files = 1

    def reader(seed, reshuffle, num_shards=1, shard_index=0):
        # files in a seeded order, 16 read at once one record at a time; a worker
        # reads only its files when there are enough of them
        context = None
        if num_shards > 1 and num_files >= num_shards:
            context = tf.distribute.InputContext(num_input_pipelines=num_shards,
                                                 input_pipeline_id=shard_index)
        config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=reshuffle,
                                 interleave_cycle_length=16, interleave_block_length=1,
                                 input_context=context, enable_ordering_guard=False)
        files = tfds.load(name, split=split, data_dir=data_dir, download=False, try_gcs=False,
                          shuffle_files=True, read_config=config)
        return files.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE), context is not None

    return Source(ds.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE),
                  num_examples, num_classes, image_shape, f"tfds:{name}[{split}]",
                  reader=reader)


def _tfds_keys(features, name):
    import tensorflow_datasets as tfds

    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items()
              if isinstance(f, tfds.features.ClassLabel)]
    if not images:
        raise ValueError(f"TFDS dataset {name!r} has no image feature "
                         f"(features: {sorted(features.keys())})")
    image_key = "image" if "image" in images else images[0]
    label_key = "label" if "label" in labels else (labels[0] if labels else None)
    return image_key, label_key


def _image_to_uint8(image):
    """Converts one image tensor to uint8 (H, W, C) following the convention."""
    if image.shape.rank == 2:
        image = image[..., None]
    if image.dtype == tf.uint8:
        return image
    if image.dtype.is_floating:
        return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    return tf.cast(tf.clip_by_value(tf.cast(image, tf.int64), 0, 255), tf.uint8)


def _from_dataset(ds):
    spec = ds.element_spec
    if isinstance(spec, dict):
        image_key = next((k for k in ("images", "image") if k in spec), None)
        label_key = next((k for k in ("labels", "label") if k in spec), None)
        if image_key is None:
            raise ValueError("a dict dataset must have an 'images' or 'image' "
                             f"entry. Received: keys={sorted(spec)}")
        image_spec = spec[image_key]
        pick = lambda e: (e[image_key], e[label_key] if label_key else None)
    elif isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError("a tuple dataset must yield (images, labels). Received: "
                             f"{len(spec)} components")
        image_spec, label_key = spec[0], "labels"
        pick = lambda image, label: (image, label)
    elif isinstance(spec, tf.TensorSpec):
        image_spec, label_key = spec, None
        pick = lambda image: (image, None)
    else:
        raise ValueError(f"unsupported dataset element spec. Received: element_spec={spec!r}")
    rank = image_spec.shape.rank
    if rank not in (2, 3):
        raise ValueError("dataset images must be unbatched (H, W, C) or (H, W). "
                         f"Received: element shape {image_spec.shape}")
    if not (image_spec.dtype.is_integer or image_spec.dtype.is_floating) \
            or image_spec.dtype == tf.bool:
        raise ValueError(f"dataset images must be numeric. Received: dtype={image_spec.dtype}")

    def normalise(*element):
        image, label = pick(*element)
        out = {"images": _image_to_uint8(image)}
        if label is not None:
            out["labels"] = tf.cast(label, tf.int64)
        return out

    out = ds.map(normalise)
    cardinality = int(ds.cardinality())
    shape = out.element_spec["images"].shape
    return Source(out, cardinality if cardinality >= 0 else None, None,
                  tuple(shape) if shape.is_fully_defined() else None, "dataset")
