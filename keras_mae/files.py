"""Write-then-rename: a file the library writes appears whole or not at all.

Every file written by the library and the recipes (checkpoints' state,
reconstruction PNGs, `config.json`, `metrics.json`, `.keras` models, weights)
goes through `atomic_path`: the content is written under a temporary name in
the same folder, flushed, and renamed over the target, so a crash mid-write
leaves the previous file untouched.
"""

import contextlib
import os
import shutil

_DOUBLE_EXTENSIONS = (".weights.h5", ".weights.json")


def _split(name):
    for ext in _DOUBLE_EXTENSIONS:
        if name.endswith(ext):
            return name[:-len(ext)], ext
    return os.path.splitext(name)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, with the same extension; renames it over `path` on success.

    If the block raises, the temporary file (or folder) is removed and `path`
    is left as it was. The extension is kept because Keras chooses the format
    from it (`.keras`, `.weights.h5`).

    Example:
    ```python
    import keras_mae
    from keras_mae.files import atomic_path
    model = keras_mae.models.mae_vit_tiny_patch4(depth=1, decoder_depth=1)
    with atomic_path("runs/a/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = _split(name)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path, overwrite=False):
    """Yields a new temporary folder beside `path`; on success it takes `path`'s place.

    Nothing is replaced by accident: a non-empty `path` raises `ValueError`
    (before anything is written) unless `overwrite`; then the old folder is
    moved aside, the new one renamed in, and only then the old one deleted.
    If the block raises, the temporary folder is removed and `path` is as it
    was.

    Example:
    ```python
    import os
    import keras_mae
    from keras_mae.files import atomic_folder
    model = keras_mae.models.mae_vit_tiny_patch4(depth=1, decoder_depth=1)
    with atomic_folder("runs/a/preset", overwrite=True) as tmp:
        model.save_weights(os.path.join(tmp, "model.weights.h5"))
    ```
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        raise ValueError(f"{path!r} is a file, not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise ValueError(f"Folder {path!r} is not empty; pass overwrite=True to replace it.")
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.isdir(path):
        old = f"{tmp}.old"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path, text):
    """Writes `text` to `path` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return path
