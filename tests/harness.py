"""The checks every public layer and model goes through, a few lines per class.

`run_layer_test` and `run_model_test` (keras-hub's `TestCase.run_layer_test` /
`run_backbone_test` pattern): the config survives JSON and rebuilds an equal
object, the weights survive a `.keras` file and a weights file, the class runs
under `mixed_bfloat16` with float32 variables and float32's outputs to
bfloat16 precision, and one `fit` step trains it.
"""

import json

import keras
import numpy as np

from conftest import to_numpy
from keras_mae.models import Task

MIXED = "mixed_bfloat16"


def _numpy_tree(outputs):
    return [to_numpy(keras.ops.cast(x, "float32")) if _floating(x) else to_numpy(x)
            for x in keras.tree.flatten(outputs)]


def _floating(x):
    return "float" in keras.backend.standardize_dtype(x.dtype)


def _assert_same(a, b, atol=0.0, what=""):
    a, b = _numpy_tree(a), _numpy_tree(b)
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b)):
        if atol:
            np.testing.assert_allclose(x, y, atol=atol, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what} output {i}")


def _matches(reference, candidate, call, what, atol=0.0):
    """`candidate` holds `reference`'s float weights, and computes its outputs.

    Calls are deterministic (inference, or explicit noise): Keras keeps the
    random generators' states out of the weights.
    """
    expected_weights, weights = reference.get_weights(), candidate.get_weights()
    assert len(weights) == len(expected_weights), what
    for a, b in zip(expected_weights, weights):
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_array_equal(a, b, err_msg=f"{what} weights")
    _assert_same(call(candidate), call(reference), atol=atol, what=what)


def _config_clone(obj):
    """`obj` rebuilt from its config after a JSON round trip; the configs must be equal."""
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    clone = keras.saving.deserialize_keras_object(config)
    assert clone.get_config() == obj.get_config()
    return clone


@keras.saving.register_keras_serializable(package="keras_mae_tests")
class LayerHolder(keras.Model):
    """A model around one layer, so that a layer goes through `.keras` files and `fit`."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, x, **kwargs):
        return self.layer(x, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        floats = [keras.ops.cast(o, "float32") for o in keras.tree.flatten(y_pred) if _floating(o)]
        return sum(keras.ops.mean(keras.ops.square(o)) for o in floats)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config.pop("layer"))
        return cls(**config)


def run_layer_test(layer_cls, init_kwargs, x, tmp_path, call_kwargs=None, output_shape=None,
                   mixed_atol=0.05, mixed_dtype="bfloat16", trains=True, fit=True):
    """The config, `.keras`, weights, mixed-precision and `fit` checks of one layer.

    Args:
        layer_cls: the layer class.
        init_kwargs: its constructor arguments.
        x: a numpy input batch.
        tmp_path: a folder for the files.
        call_kwargs: fixed call arguments (e.g. `noise`), used in every call
            but the `fit` step.
        output_shape: the expected shape of each output, a tuple or a list of
            them.
        mixed_atol: the tolerance of the `mixed_bfloat16` outputs against
            float32's on the same weights.
        mixed_dtype: the dtype of the float outputs under `mixed_bfloat16`.
        trains: whether the layer has trainable weights that a `fit` step changes.
        fit: whether to run the `fit` step (on `x` alone, without `call_kwargs`).

    Returns:
        The float32 layer's outputs.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    out = layer(x, **call_kwargs)
    if output_shape is not None:
        shapes = output_shape if isinstance(output_shape, list) else [output_shape]
        assert [tuple(o.shape) for o in keras.tree.flatten(out)] == [tuple(s) for s in shapes]

    def call(obj):
        return obj(x, **call_kwargs)

    clone = _config_clone(layer)
    call(clone)
    clone.set_weights(layer.get_weights())
    _matches(layer, clone, call, "config round trip")

    holder = LayerHolder(layer)
    call(holder)
    holder.save(tmp_path / "layer.keras")
    loaded = keras.saving.load_model(tmp_path / "layer.keras")
    assert type(loaded.layer) is layer_cls and loaded.layer.get_config() == layer.get_config()
    _matches(holder, loaded, call, ".keras round trip")
    holder.save_weights(tmp_path / "layer.weights.h5")
    fresh = LayerHolder(layer_cls(**init_kwargs))
    call(fresh)
    fresh.load_weights(tmp_path / "layer.weights.h5")
    _matches(holder, fresh, call, "weights round trip")

    mixed = layer_cls(**{**init_kwargs, "dtype": MIXED})
    assert {keras.backend.standardize_dtype(o.dtype) for o in keras.tree.flatten(call(mixed))
            if _floating(o)} == {mixed_dtype}
    assert {keras.backend.standardize_dtype(v.dtype) for v in mixed.weights
            if "float" in keras.backend.standardize_dtype(v.dtype)} <= {"float32"}
    mixed.set_weights(layer.get_weights())
    _matches(layer, mixed, call, MIXED, atol=mixed_atol)

    before = [to_numpy(v) for v in layer.trainable_weights]
    assert bool(before) == trains, "trainable weights"
    if not fit:
        return out
    holder.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    history = holder.fit(x, epochs=1, batch_size=len(x), verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    if trains:
        assert any(np.abs(to_numpy(v) - b).max() > 0 for v, b in zip(layer.trainable_weights, before))
    return out


def run_model_test(make_model, x, tmp_path, y=None, call_kwargs=None, mixed_atol=0.1,
                   fit=True):
    """The config, `.keras`, weights, mixed-precision and `fit` checks of one model.

    Args:
        make_model: `make_model(dtype=None, seed=0)` -> a new model (its
            encoder, for a task, built with that dtype).
        x: a numpy input batch (a tuple for several inputs).
        tmp_path: a folder for the files.
        y: labels for the `fit` step (None for a model with its own loss).
        call_kwargs: fixed call arguments (e.g. `noise`).
        mixed_atol: the tolerance of the `mixed_bfloat16` outputs against
            float32's on the same weights.
        fit: whether to run one `fit` step (`compile()` with the model's own
            defaults when it has them).

    Returns:
        The float32 model.
    """
    call_kwargs = call_kwargs or {}
    args = x if isinstance(x, tuple) else (x,)
    def call(obj):
        return obj(*args, **call_kwargs)

    model = make_model()
    out = call(model)

    clone = _config_clone(model)
    call(clone)
    clone.set_weights(model.get_weights())
    _matches(model, clone, call, "config round trip")

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    _matches(model, loaded, call, ".keras round trip")
    model.save_weights(tmp_path / "model.weights.h5")
    fresh = make_model(seed=99)
    call(fresh)
    fresh.load_weights(tmp_path / "model.weights.h5")
    _matches(model, fresh, call, "weights round trip")

    mixed = make_model(dtype=MIXED)
    assert mixed.dtype_policy.name == MIXED
    assert any(keras.backend.standardize_dtype(o.dtype) == "bfloat16"
               for o in keras.tree.flatten(call(mixed)))
    assert {keras.backend.standardize_dtype(v.dtype) for v in mixed.trainable_weights} == {"float32"}
    mixed.set_weights(model.get_weights())
    _matches(model, mixed, call, MIXED, atol=mixed_atol)

    if fit:
        before = [to_numpy(v) for v in model.trainable_weights]
        if isinstance(model, Task):  # its own optimizer and loss
            model.compile(jit_compile=False)
        else:
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=False)
            y = np.zeros(keras.ops.shape(out), "float32") if y is None else y
        history = model.fit(x, y, epochs=1, batch_size=len(args[0]), verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"][0])
        assert any(np.abs(to_numpy(v) - b).max() > 0 for v, b in zip(model.trainable_weights, before))
    return model
