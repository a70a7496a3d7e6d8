"""Deployment export of a ViT encoder or classifier: TensorFlow SavedModel and ONNX.

`export_model` writes a built `ViTEncoder` (`(B, H, W, C)` images ->
`(B, 1 + L, D)` tokens) or `ViTClassifier` (images -> `(B, num_classes)`
logits) as standalone inference artifacts, side by side in one directory,
through Keras' own `model.export`. The artifacts run the model's forward pass
in inference mode (no stochastic depth) and need neither Keras nor
`keras_mae` to be loaded:

- `"saved_model"`: `directory/saved_model/`, a TensorFlow SavedModel whose
  `serve(images)` endpoint returns the model's output
  (`tf.saved_model.load(path).serve(images)`, or TensorFlow Serving).
- `"onnx"`: `directory/model.onnx`, one ONNX graph with a float32 input named
  `images` (`onnxruntime.InferenceSession(path).run(None, {"images": images})`).

The input is float32 `(batch, H, W, C)` with the model's own image size and
channels and a dynamic batch size: any batch runs, whatever the size used for
tracing.

What each Keras backend can write:

| backend    | `"saved_model"`            | `"onnx"`                                   |
| ---------- | -------------------------- | ------------------------------------------ |
| tensorflow | yes                        | yes, with `onnx` and `tf2onnx` installed   |
| jax        | yes (TensorFlow needed)    | yes, with `onnx` and `jax2onnx` installed  |
| torch      | no (Keras needs torch_xla) | no (Keras' dynamic-batch trace fails)      |

A format that the running backend cannot write raises `ValueError` before
anything is written, saying what to do instead (typically: load the model
saved with `model.save(...)` under `KERAS_BACKEND=tensorflow` or `jax` and
export there). Running the ONNX file needs `onnxruntime` (or another ONNX
runtime), which export itself does not.

Each format is written into a temporary sibling inside `directory` and only
then moved into place, so a failed or interrupted export leaves an earlier
export at the same place complete. An existing `model.onnx` is replaced in one
atomic rename; an existing `saved_model/` is first moved aside and removed
after the new one is in place (restored if that move fails).

Every ONNX file is checked with `onnx.checker` before it replaces anything:
a graph holding an operator that ONNX does not define is an error, not a file.
The TensorFlow converter has no rule for `Erfc` (used by the exact GELU of the
transformer blocks); this module registers the identity
`Erfc(x) = 1 - Erf(x)` with it, unless the installed converter has its own.

Example:
```python
import tempfile
import numpy as np
from keras_mae.export import export_model
from keras_mae.models import ViTEncoder
from keras_mae.models.classifier import ViTClassifier

encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=2)
encoder.build()
classifier = ViTClassifier(encoder, num_classes=10)
directory = tempfile.mkdtemp()
paths = export_model(classifier, directory, formats=("saved_model",))
paths  # {"saved_model": "<directory>/saved_model"}

import tensorflow as tf  # in any process, without keras_mae
served = tf.saved_model.load(paths["saved_model"])
served.serve(np.zeros((5, 32, 32, 3), "float32")).shape  # (5, 10)
```
"""

import importlib.util
import os
import shutil
import tempfile

import keras

FORMATS = ("saved_model", "onnx")
"""The format names `export_model` knows."""

_KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx"}
_FILENAMES = {"saved_model": "saved_model", "onnx": "model.onnx"}
# Packages each (backend, format) needs to write the artifact, by import name.
_PACKAGES = {
    ("tensorflow", "saved_model"): ("tensorflow",),
    ("tensorflow", "onnx"): ("onnx", "tf2onnx"),
    ("jax", "saved_model"): ("tensorflow",),
    ("jax", "onnx"): ("onnx", "jax2onnx"),
}
_UNSUPPORTED = {
    ("torch", "saved_model"): (
        "Keras writes it from torch only through torch_xla's StableHLO bridge"
    ),
    ("torch", "onnx"): (
        "Keras traces a dynamic batch with the TorchScript exporter, which cannot "
        "trace the LayerNormalization layers of the model"
    ),
}


def export_model(model, directory, formats=FORMATS):
    """Writes `model` for inference in each of `formats`, side by side under `directory`.

    Args:
        model: a built `keras_mae.models.ViTEncoder` or
            `keras_mae.models.classifier.ViTClassifier` (any built Keras model
            with `image_size` and `num_channels`, on itself or on its
            `encoder`, taking `(B, H, W, C)` images).
        directory: str or path-like; created if missing. Other entries in it
            are left alone.
        formats: a format name or a sequence of them, from `FORMATS`:
            `"saved_model"` (written to `directory/saved_model/`) and
            `"onnx"` (written to `directory/model.onnx`).

    Returns:
        `{format: path written}` (str paths), in the order of `formats`.

    Raises:
        ValueError: before anything is written, for an unknown format, a
            format that the running Keras backend cannot write or whose
            packages are missing, an unbuilt model, a non-float32 model for
            ONNX, or a model without an image size.
    """
    formats = check_formats(formats)
    backend = keras.backend.backend()
    if not model.built:
        raise ValueError(
            f"The model {model.name!r} is not built: build it (or load its weights) "
            "before exporting, so that the export holds its weights."
        )
    if "onnx" in formats and model.dtype_policy.name != "float32":
        raise ValueError(
            f"export format 'onnx' needs a float32 model; {model.name!r} has the "
            f"dtype policy {model.dtype_policy.name!r}. Export `float32_copy(model)` "
            "instead."
        )
    signature = [input_spec(model)]

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for fmt in formats:
        target = os.path.join(directory, _FILENAMES[fmt])
        staging = tempfile.mkdtemp(prefix=f".{_FILENAMES[fmt]}.", suffix=".tmp", dir=directory)
        try:
            written = os.path.join(staging, _FILENAMES[fmt])
            if backend == "tensorflow" and fmt == "onnx":
                _register_erfc_for_tf2onnx()
            model.export(
                written, format=_KERAS_FORMATS[fmt], input_signature=signature, verbose=False
            )
            if fmt == "onnx":
                _check_onnx(written)
            _move_into_place(written, target, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        paths[fmt] = target
    return paths


def float32_copy(model):
    """`model` itself when it computes in float32, else a float32 copy holding its weights.

    A model trained in `mixed_bfloat16` exports to ONNX this way (the weights
    are float32 under either policy).

    Example:
    ```python
    import keras_mae
    from keras_mae.export import export_model, float32_copy
    encoder = keras_mae.models.ViTEncoder(image_size=16, patch_size=8, hidden_dim=16, depth=1,
                                          num_heads=2, dtype="mixed_bfloat16")
    classifier = keras_mae.models.ViTClassifier(encoder, num_classes=3)
    export_model(float32_copy(classifier), "export", formats=("onnx",))
    ```
    """
    if model.dtype_policy.name == "float32":
        return model

    def in_float32(config):
        if isinstance(config, dict):
            return {k: ("float32" if k == "dtype" else in_float32(v)) for k, v in config.items()}
        if isinstance(config, list):
            return [in_float32(v) for v in config]
        return config

    copy = type(model).from_config(in_float32(model.get_config()))
    copy.build()
    copy.set_weights(model.get_weights())
    return copy


def input_spec(model):
    """The export's input: float32 `(None, H, W, C)` images named `images`.

    Args:
        model: a model with `image_size` and `num_channels`, on itself or on
            its `encoder`.

    Returns:
        A `keras.InputSpec` with a dynamic batch.
    """
    for owner in (model, getattr(model, "encoder", None)):
        if owner is not None and hasattr(owner, "image_size") and hasattr(owner, "num_channels"):
            height, width = owner.image_size
            return keras.InputSpec(
                shape=(None, int(height), int(width), int(owner.num_channels)),
                dtype="float32",
                name="images",
            )
    raise ValueError(
        f"Cannot tell the input of {model.name!r}: expected a model with `image_size` "
        "and `num_channels` (a ViTEncoder) or with an `encoder` that has them "
        "(a ViTClassifier)."
    )


def check_formats(formats, backend=None):
    """Raises `ValueError` unless every format of `formats` can be written from `backend`.

    Args:
        formats: a format name or a sequence of them.
        backend: a Keras backend name; default the running one.

    Returns:
        The tuple of formats, duplicates removed.

    Example:
    ```python
    from keras_mae.export import check_formats
    check_formats("saved_model,onnx".split(","), backend="jax")  # ("saved_model", "onnx")
    ```
    """
    formats = _check_formats(formats)
    for fmt in formats:
        _check_supported(fmt, backend or keras.backend.backend())
    return formats


def _check_formats(formats):
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(dict.fromkeys(formats))
    if not formats:
        raise ValueError(f"No export format given. Known formats: {list(FORMATS)}.")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"Unknown export format(s) {unknown}. Known formats: {list(FORMATS)}."
        )
    return formats


def _check_supported(fmt, backend):
    reason = _UNSUPPORTED.get((backend, fmt))
    if reason is None and (backend, fmt) not in _PACKAGES:
        reason = "Keras cannot export it from this backend"
    if reason is not None:
        raise ValueError(
            f"export format {fmt!r} is not supported from the {backend} backend ({reason}); "
            "export from tensorflow or jax instead: save the model with "
            "`model.save('model.keras')`, load it under KERAS_BACKEND=tensorflow or jax "
            "and export there."
        )
    missing = [name for name in _PACKAGES[(backend, fmt)] if not _installed(name)]
    if missing:
        names = " and ".join(repr(name) for name in missing)
        raise ValueError(
            f"export format {fmt!r} from the {backend} backend needs the {names} "
            f"package{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}"
        )


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _check_onnx(path):
    import onnx

    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as error:
        raise ValueError(f"The exported ONNX graph is not valid: {error}") from error


def _move_into_place(written, target, staging):
    """Renames `written` to `target`, replacing an existing file or directory there."""
    if not os.path.isdir(written) and not os.path.isdir(target):
        os.replace(written, target)
        return
    old = None
    if os.path.lexists(target):
        old = os.path.join(staging, "previous")
        os.replace(target, old)
    try:
        os.replace(written, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise


def _register_erfc_for_tf2onnx():
    """Teaches the TensorFlow-to-ONNX converter `Erfc(x) = 1 - Erf(x)` if it lacks a rule."""
    import numpy as np
    from tf2onnx import constants
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    if any("Erfc" in opset for opset in tf_op._OPSETS.get(constants.ONNX_DOMAIN, [])):
        return

    @tf_op("Erfc")
    class _Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            node.type = "Erf"
            dtype = ctx.get_dtype(node.output[0])
            one = ctx.make_const(
                utils.make_name(f"{node.name}_one"),
                np.array(1, utils.map_onnx_to_numpy_type(dtype)),
            )
            complement = ctx.insert_new_node_on_output(
                "Sub",
                node.output[0],
                name=utils.make_name(node.name),
                inputs=[one.output[0], node.output[0]],
            )
            ctx.copy_shape(node.output[0], complement.output[0])
            ctx.set_dtype(complement.output[0], dtype)
