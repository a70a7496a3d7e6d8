"""`keras_mae.export`: standalone SavedModel / ONNX artifacts of the encoder and classifier.

Each artifact is loaded in a separate Python process in which Keras and
keras_mae cannot be imported (as if not installed; TensorFlow then runs without
Keras), with TensorFlow or ONNX Runtime only, fed batch sizes other than any
used for tracing, and compared with the Keras model's output.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_mae import export as export_module
from keras_mae.export import FORMATS, export_model
from keras_mae.models import ViTEncoder
from keras_mae.models.classifier import ViTClassifier

BACKEND = keras.backend.backend()
# What Keras can write from each backend (torch: SavedModel needs torch_xla, and
# its dynamic-batch ONNX trace fails on LayerNormalization).
WRITABLE = {
    "tensorflow": ("saved_model", "onnx"),
    "jax": ("saved_model", "onnx"),
}.get(BACKEND, ())
NOT_WRITABLE = tuple(fmt for fmt in FORMATS if fmt not in WRITABLE)
# Import names of what writing (and, for the test, running) each format needs.
NEEDS = {
    ("tensorflow", "saved_model"): ("tensorflow",),
    ("jax", "saved_model"): ("tensorflow",),
    ("tensorflow", "onnx"): ("onnx", "tf2onnx", "onnxruntime"),
    ("jax", "onnx"): ("onnx", "jax2onnx", "onnxruntime"),
}
BATCH_SIZES = (5, 1)
TOLERANCE = 1e-5
ENCODER_ARGS = dict(image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=2)


def tiny_encoder(**kwargs):
    encoder = ViTEncoder(**ENCODER_ARGS, **kwargs)
    encoder.build()
    return encoder


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    encoder = tiny_encoder(name="encoder")
    # As fine-tuned: stochastic depth (off in the export), and a head far from
    # its near-zero default init, so that logits differ by much more than the
    # tolerance between images.
    classifier = ViTClassifier(
        tiny_encoder(drop_path_rate=0.1, seed=1), num_classes=10, head_init_std=0.5
    )
    return {"encoder": encoder, "classifier": classifier}


@pytest.fixture(scope="module")
def batches():
    rng = np.random.RandomState(0)
    return {f"batch{n}": rng.randn(n, 32, 32, 3).astype("float32") for n in BATCH_SIZES}


@pytest.fixture(scope="module", params=WRITABLE)
def exported(request, models, tmp_path_factory):
    """`(format, {model name: (directory, returned paths)})`, written over a stale export."""
    fmt = request.param
    for name in NEEDS[(BACKEND, fmt)]:
        pytest.importorskip(name)
    result = {}
    for name, model in models.items():
        directory = tmp_path_factory.mktemp(f"{name}_{fmt}")
        stale = directory / ("saved_model" if fmt == "saved_model" else "model.onnx")
        if fmt == "saved_model":
            stale.mkdir()
            (stale / "stale.txt").write_text("an earlier export")
        else:
            stale.write_bytes(b"an earlier export")
        result[name] = (directory, export_model(model, directory, formats=(fmt,)))
    return fmt, result


# First lines of the standalone process: Keras and keras_mae cannot be imported.
BLOCK = """
    import sys

    sys.modules["keras"] = None
    sys.modules["keras_mae"] = None
"""

RUNNERS = {
    "saved_model": """
        import tensorflow as tf

        def run(path, images):
            loaded = tf.saved_model.load(path)
            return {key: loaded.serve(tf.constant(x)).numpy() for key, x in images.items()}
    """,
    "onnx": """
        import onnxruntime

        def run(path, images):
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            (spec,) = session.get_inputs()
            assert spec.name == "images", spec.name
            assert not isinstance(spec.shape[0], int), f"static batch: {spec.shape}"
            return {key: session.run(None, {"images": x})[0] for key, x in images.items()}
    """,
}

MAIN = """
    import sys
    import numpy as np

    inputs, outputs = sys.argv[1], sys.argv[2]
    paths = sys.argv[3:]
    images = dict(np.load(inputs))
    results = {}
    for index, path in enumerate(paths):
        for key, value in run(path, images).items():
            results[f"{index}/{key}"] = value
    np.savez(outputs, **results)
    loaded = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("keras", "keras_mae") and sys.modules[m] is not None
    )
    assert not loaded, f"imported {loaded}"
    print("ran without keras")
"""


def run_standalone(fmt, paths, batches, tmp_path):
    """Outputs of the artifacts at `paths` on `batches`, run in a process without Keras."""
    inputs, outputs = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
    np.savez(inputs, **batches)
    code = "".join(textwrap.dedent(part) for part in (BLOCK, RUNNERS[fmt], MAIN))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    process = subprocess.run(
        [sys.executable, "-I", "-c", code, str(inputs), str(outputs), *map(str, paths)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    assert "ran without keras" in process.stdout
    with np.load(outputs) as data:
        return [{key: data[f"{i}/{key}"] for key in batches} for i in range(len(paths))]


def test_export_runs_without_keras_and_matches_the_model(exported, models, batches, tmp_path):
    fmt, result = exported
    names = list(models)
    paths = [result[name][1][fmt] for name in names]
    served = run_standalone(fmt, paths, batches, tmp_path)
    for name, outputs in zip(names, served):
        model = models[name]
        for key, images in batches.items():
            expected = keras.ops.convert_to_numpy(model(images, training=False))
            got = outputs[key]
            assert got.shape == expected.shape, (name, key, got.shape, expected.shape)
            diff = float(np.abs(got - expected).max())
            print(f"{BACKEND} {fmt} {name} {key}: max abs diff {diff:.3g}")
            assert diff <= TOLERANCE, (name, key, diff)
        # Different images give clearly different outputs: the comparison above
        # would catch an export of other weights or of a constant.
        first = outputs["batch5"]
        assert np.abs(first[0] - first[1]).max() > 100 * TOLERANCE
        assert np.abs(first[0] - outputs["batch1"][0]).max() > 100 * TOLERANCE


def test_export_replaces_the_earlier_export_and_leaves_nothing_else(exported):
    fmt, result = exported
    for directory, paths in result.values():
        entry = "saved_model" if fmt == "saved_model" else "model.onnx"
        assert paths == {fmt: str(directory / entry)}
        assert sorted(os.listdir(directory)) == [entry]
        if fmt == "saved_model":
            assert not (directory / entry / "stale.txt").exists()
            assert (directory / entry / "saved_model.pb").is_file()
        else:
            assert (directory / entry).read_bytes() != b"an earlier export"


@pytest.mark.skipif(not WRITABLE, reason=f"nothing is writable from {BACKEND}")
@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_export_keeps_the_earlier_one(fmt, tmp_path, monkeypatch):
    if fmt not in WRITABLE:
        pytest.skip(f"{fmt} is not writable from {BACKEND}")
    monkeypatch.setattr(export_module, "_installed", lambda name: True)
    earlier = tmp_path / ("saved_model" if fmt == "saved_model" else "model.onnx")
    if fmt == "saved_model":
        earlier.mkdir()
        (earlier / "saved_model.pb").write_bytes(b"earlier")
    else:
        earlier.write_bytes(b"earlier")

    class Interrupted(Exception):
        pass

    def half_export(path, **kwargs):
        if fmt == "saved_model":
            os.makedirs(path)
            path = os.path.join(path, "saved_model.pb")
        with open(path, "wb") as f:
            f.write(b"half")
        raise Interrupted

    model = tiny_encoder()
    monkeypatch.setattr(model, "export", half_export)
    with pytest.raises(Interrupted):
        export_model(model, tmp_path, formats=fmt)
    assert sorted(os.listdir(tmp_path)) == [earlier.name]
    kept = earlier / "saved_model.pb" if fmt == "saved_model" else earlier
    assert kept.read_bytes() == b"earlier"


@pytest.mark.parametrize("fmt", NOT_WRITABLE or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"every format is writable from {BACKEND}"))])
def test_unsupported_backend_and_format_raise_before_writing(fmt, models, tmp_path):
    directory = tmp_path / "export"
    with pytest.raises(ValueError, match=f"'{fmt}' is not supported from the {BACKEND} backend"
                       ) as info:
        export_model(models["classifier"], directory, formats=(fmt,))
    assert "export from tensorflow or jax" in str(info.value)
    assert not directory.exists()


def test_unknown_or_no_format_raises_listing_the_known_ones(models, tmp_path):
    directory = tmp_path / "export"
    with pytest.raises(ValueError, match="tflite") as info:
        export_model(models["encoder"], directory, formats=("saved_model", "tflite"))
    assert "'saved_model', 'onnx'" in str(info.value)
    with pytest.raises(ValueError, match="No export format"):
        export_model(models["encoder"], directory, formats=())
    assert not directory.exists()


@pytest.mark.skipif("onnx" not in WRITABLE, reason=f"onnx is not writable from {BACKEND}")
def test_missing_onnx_packages_are_named_before_writing(models, tmp_path, monkeypatch):
    converter = {"tensorflow": "tf2onnx", "jax": "jax2onnx"}[BACKEND]
    monkeypatch.setattr(export_module, "_installed", lambda name: name not in ("onnx", converter))
    directory = tmp_path / "export"
    expected = (
        f"export format 'onnx' from the {BACKEND} backend needs the 'onnx' and "
        f"'{converter}' packages: pip install onnx {converter}"
    )
    with pytest.raises(ValueError) as info:
        export_model(models["encoder"], directory, formats=("saved_model", "onnx"))
    assert str(info.value) == expected
    assert not directory.exists()


@pytest.mark.skipif("onnx" not in WRITABLE, reason=f"onnx is not writable from {BACKEND}")
def test_onnx_needs_a_float32_model(tmp_path):
    model = tiny_encoder(dtype="mixed_bfloat16")
    directory = tmp_path / "export"
    with pytest.raises(ValueError, match="'onnx' needs a float32 model.*mixed_bfloat16"):
        export_model(model, directory, formats="onnx")
    assert not directory.exists()


@pytest.mark.skipif(not WRITABLE, reason=f"nothing is writable from {BACKEND}")
def test_unbuilt_model_raises(tmp_path):
    directory = tmp_path / "export"
    with pytest.raises(ValueError, match="not built"):
        export_model(ViTEncoder(**ENCODER_ARGS), directory, formats=WRITABLE[0])
    assert not directory.exists()
