"""Image files: listing a folder, decoding a file to RGB, and finding the files that will not decode.

`decode_file` turns any PNG, JPEG, BMP or GIF (whatever its extension says)
into uint8 RGB, as PIL's `convert("RGB")` does: grayscale is repeated to three
channels, alpha is dropped, CMYK and palette images are converted. A file that
cannot be decoded (empty, truncated, corrupt, or not an image) fails with an
`InvalidArgumentError` that names the file and what is wrong with it.
`scan_images` decodes every file of a folder in parallel and lists those that
fail, before a long run; run it from a shell as
`python -m keras_mae.data.image_files DIR`.
"""

import argparse
import os
import re
import sys

import tensorflow as tf

from keras_mae.data.augment import crop_to_box

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# JPEG files larger than this decode only their crop window: that paid on 2000x1500 photos (the
# `camera` rows of `benchmarks/pipeline_throughput.py --jpeg`) and not on ImageNet-sized files.
WINDOW_DECODE_MIN_BYTES = 256 * 1024

# Leading bytes of the formats tf.io.decode_image reads.
_JPEG = b"\xff\xd8\xff"
_SIGNATURES = ((b"\x89PNG", "PNG"), (_JPEG, "JPEG"), (b"BM", "BMP"), (b"GIF8", "GIF"))
# The first item of the message of a file that did not decode (`decode_file`).
_FAILED = "cannot decode image file"


def list_images(folder):
    """Paths of the image files under `folder` (recursively), sorted folder by folder.

    Args:
        folder: str, a folder.

    Returns:
        list of str, the files whose extension is one of `IMAGE_EXTENSIONS`.

    Example:
    ```python
    from keras_mae.data.image_files import list_images
    list_images("photos/cats")   # ["photos/cats/a.jpg", "photos/cats/b.png", ...]
    ```
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS))
    return found


def _problem(contents):
    """What is wrong with file contents that did not decode, as a string tensor."""
    head = tf.strings.substr(contents, 0, 4)
    reason = tf.constant("not a PNG, JPEG, BMP or GIF file")
    for signature, name in _SIGNATURES:
        reason = tf.where(tf.strings.substr(head, 0, len(signature)) == signature,
                          f"truncated or corrupt {name} data", reason)
    return tf.where(tf.strings.length(contents) == 0, "empty file", reason)


def _decode_window(contents, crop_box):
    """The window `crop_box(shape)` of a JPEG, decoding only that window's blocks."""
    box = crop_box(tf.io.extract_jpeg_shape(contents))
    return tf.io.decode_and_crop_jpeg(contents, box, channels=3)


def _attempt(contents, decode):
    """`(ok, image)`: `decode(contents)`, or False and a placeholder where it fails."""
    # the decoder's error is caught by decoding in a one-element dataset
    attempt = tf.data.Dataset.from_tensors(contents).map(
        lambda c: (True, tf.ensure_shape(decode(c), [None, None, 3])))
    failed = tf.data.Dataset.from_tensors((False, tf.zeros([1, 1, 3], tf.uint8)))
    ok, image = attempt.ignore_errors().concatenate(failed).take(1).get_single_element()
    return ok, tf.ensure_shape(image, [None, None, 3])


def try_decode(path, crop_box=None):
    """`(ok, image, problem)` for the file at `path`: a scalar bool, uint8 (H, W, 3), a string.

    When `ok` is False the image is a (1, 1, 3) placeholder and `problem` says
    why the file did not decode.

    Args:
        path: scalar string tensor.
        crop_box: optional function from the image's shape `(H, W, C)` to an
            int32 box `(top, left, height, width)`: only that window is
            returned. A JPEG file larger than `WINDOW_DECODE_MIN_BYTES` decodes
            only that window.

    Returns:
        `(ok, image, problem)`: a scalar bool tensor, a uint8 (H, W, 3)
        tensor and a scalar string tensor.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.image_files import try_decode
    ok, image, problem = try_decode(tf.constant("photo.jpg"))
    ```
    """
    contents = tf.io.read_file(path)
    whole = lambda c: tf.io.decode_image(c, channels=3, expand_animations=False)  # noqa: E731
    if crop_box is None:
        ok, image = _attempt(contents, whole)
    else:
        window = ((tf.strings.substr(contents, 0, 3) == _JPEG)
                  & (tf.strings.length(contents) > WINDOW_DECODE_MIN_BYTES))
        ok, image = tf.cond(window, lambda: _attempt(contents, lambda c: _decode_window(c, crop_box)),
                            lambda: _attempt(contents, whole))
        image = tf.cond(window | ~ok, lambda: image,
                        lambda: crop_to_box(image, crop_box(tf.shape(image))))
    return ok, image, _problem(contents)


def decode_file(path, crop_box=None):
    """uint8 (H, W, 3) RGB image of the file at `path` (a scalar string tensor).

    Args:
        path: scalar string tensor.
        crop_box: optional window function, as `try_decode`.

    Returns:
        uint8 (H, W, 3) tensor.

    Raises:
        InvalidArgumentError: when the file cannot be decoded, naming the file
            and what is wrong (empty, not an image, truncated or corrupt).

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data.image_files import decode_file
    image = decode_file(tf.constant("photo.jpg"))   # (H, W, 3) uint8
    ```
    """
    ok, image, problem = try_decode(path, crop_box)
    check = tf.debugging.Assert(ok, [_FAILED, path, problem])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def failed_file(error):
    """`(path, problem)` named by an error `decode_file` raised, or None for any other error.

    Args:
        error: an exception.

    Returns:
        `(path, problem)`, two str, or None.

    Example:
    ```python
    import tensorflow as tf
    from keras_mae.data import pretrain_dataset
    from keras_mae.data.image_files import failed_file
    try:
        model.fit(pretrain_dataset("photos", 224, 64))
    except tf.errors.InvalidArgumentError as error:
        print(failed_file(error))   # ("photos/cat/7.jpg", "truncated or corrupt JPEG data")
    ```
    """
    found = re.search(rf"\[{_FAILED}\] \[(.*?)\] \[(.*?)\]", str(error))
    return (found.group(1), found.group(2)) if found else None


def scan_images(paths, num_parallel_calls=None):
    """The files among `paths` that cannot be decoded, with what is wrong with each.

    Every file is read and decoded once, in parallel (all cores by default).

    Args:
        paths: a folder (scanned recursively for image extensions) or a list of
            file paths.
        num_parallel_calls: files decoded at once; None lets tf.data choose.

    Returns:
        A list of `(path, problem)` string pairs, in the order of `paths`.

    Example:
    ```python
    from keras_mae.data.image_files import scan_images
    for path, problem in scan_images("photos"):
        print(path, problem)
    ```
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = list_images(os.fspath(paths))
    if not paths:
        return []
    def check(path):
        ok, _, problem = try_decode(path)
        return ok, problem

    ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        check, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE, deterministic=True)
    results = [(ok, problem) for oks, problems in ds.batch(1024).as_numpy_iterator()
               for ok, problem in zip(oks, problems)]
    return [(path, problem.decode()) for path, (ok, problem) in zip(paths, results) if not ok]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="List the image files of a folder that cannot be decoded (exit status 1 if any).")
    parser.add_argument("folder", help="folder of images (scanned recursively)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        print(f"error: folder not found: {args.folder!r}", file=sys.stderr)
        return 2
    paths = list_images(args.folder)
    bad = scan_images(paths)
    for path, problem in bad:
        print(f"{path}\t{problem}")
    print(f"{len(bad)} of {len(paths)} files cannot be decoded", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
