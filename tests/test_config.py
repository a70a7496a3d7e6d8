"""`keras_mae.config`: the backend choices, their environment overrides, and `jit_compile="auto"`."""

import keras
import numpy as np
import pytest

import keras_mae
from keras_mae import config
from conftest import tiny_mae

BACKEND = keras.backend.backend()
# What `compile()` without `jit_compile` gives on a CPU with one replica: XLA on
# TensorFlow and JAX; on PyTorch the MAE's own compiled step, eager for the classifier.
AUTO_MAE = True
AUTO_CLASSIFIER = BACKEND != "torch"


def tiny_classifier():
    encoder = keras_mae.models.ViTEncoder(image_size=16, patch_size=4, hidden_dim=32, depth=1,
                                          num_heads=2, mlp_ratio=2.0)
    return keras_mae.models.ViTClassifier(encoder, num_classes=3)


def test_compile_without_jit_compile_takes_the_fast_mode_and_keeps_explicit_values():
    model = tiny_mae(image_size=16, patch_size=4, depth=1)
    model.compile()
    assert model.jit_compile is AUTO_MAE
    for explicit in (True, False):
        model.compile(jit_compile=explicit)
        assert model.jit_compile is explicit
    classifier = tiny_classifier()
    classifier.compile()
    assert classifier.jit_compile is AUTO_CLASSIFIER
    classifier.compile(jit_compile=not AUTO_CLASSIFIER)
    assert classifier.jit_compile is (not AUTO_CLASSIFIER)
    # stochastic depth has no own PyTorch step, so "auto" leaves PyTorch eager
    deep = tiny_mae(image_size=16, patch_size=4, depth=1, drop_path_rate=0.1)
    deep.compile()
    assert deep.jit_compile is (BACKEND != "torch")


def test_resolution_rule_for_replicas_and_the_torch_step():
    assert config.resolve_jit_compile(False, own_torch_step=True) is False
    assert config.resolve_jit_compile(True) is True
    want = {"tensorflow": "auto", "jax": True, "torch": False}[BACKEND]
    assert config.resolve_jit_compile("auto", replicas=2) == want  # TF: Keras' "auto", no XLA
    assert config.resolve_jit_compile("auto", own_torch_step=True, replicas=1) is True
    assert config.resolve_jit_compile("auto", replicas=1) is (BACKEND != "torch")


@pytest.mark.parametrize("task", ["mae", "classifier"])
def test_a_saved_model_comes_back_compiled_as_the_user_compiled_it(task, tmp_path):
    model = tiny_mae(image_size=16, patch_size=4, depth=1) if task == "mae" else tiny_classifier()
    x = np.random.RandomState(0).rand(4, 16, 16, 3).astype("float32")
    y = None if task == "mae" else np.array([0, 1, 2, 0])
    for jit_compile in (False, "auto"):  # False: not what "auto" gives, but for the PyTorch classifier
        model.compile(jit_compile=jit_compile)
        model.train_on_batch(x, y)
        model.save(tmp_path / "model.keras")
        restored = keras.saving.load_model(tmp_path / "model.keras")
        assert restored.compiled and restored.jit_compile is model.jit_compile
        assert type(restored.optimizer) is type(model.optimizer)
        assert restored.optimizer.get_config() == model.optimizer.get_config()
        assert int(restored.optimizer.iterations) == 1  # the optimizer's state came back too
        for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    if task == "classifier":
        assert type(restored.loss) is type(model.loss)


def test_the_attention_kernel_setter_switches_the_computation(monkeypatch):
    from keras_mae.layers import attention

    calls = []
    explicit = attention.explicit_attention
    monkeypatch.setattr(attention, "explicit_attention",
                        lambda *args: calls.append("explicit") or explicit(*args))
    layer = keras_mae.layers.MultiHeadSelfAttention(16, 4)
    x = np.random.RandomState(0).randn(2, 9, 16).astype("float32")
    fused = keras.ops.convert_to_numpy(layer(x))
    assert calls == []
    with config.choices(attention_kernel="explicit"):
        assert config.attention_kernel(keras.ops.convert_to_tensor(x)) == "explicit"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), fused, atol=1e-5)
    assert calls == ["explicit"]
    assert config.setting("attention_kernel") == "auto"  # restored after the block
    with pytest.raises(ValueError, match="attention_kernel=.*'flash'"):
        config.set_attention_kernel("flash")


def test_environment_variables_override_auto_and_setters_override_them(monkeypatch):
    monkeypatch.setenv("KERAS_MAE_REMAT", "off")
    assert config.remat() is False
    monkeypatch.setenv("KERAS_MAE_REMAT", "on")
    assert config.remat() is True
    with config.choices(remat=False):
        assert config.remat() is False
    monkeypatch.setenv("KERAS_MAE_ATTENTION", "explicit")
    assert config.attention_kernel() == "explicit"
    monkeypatch.setenv("KERAS_MAE_REMAT", "sometimes")
    with pytest.raises(ValueError, match="KERAS_MAE_REMAT.*'sometimes'"):
        config.remat()
    monkeypatch.delenv("KERAS_MAE_REMAT")
    assert config.remat() is (BACKEND in ("jax", "tensorflow"))
    with pytest.raises(ValueError, match="Unknown choices"):
        with config.choices(fused=True):
            pass


def test_remat_setting_reaches_the_blocks_built_under_it():
    with config.choices(remat=True):
        on = keras_mae.layers.TransformerBlock(16, 2)
    with config.choices(remat=False):
        off = keras_mae.layers.TransformerBlock(16, 2)

    def mode(layer):  # what keras.RematScope recorded when the layer was built
        return getattr(layer._remat_mode, "mode", None)

    assert (mode(on.norm1), mode(on.fc1)) == ("full", "activations")
    assert (mode(off.norm1), mode(off.fc1)) == (None, None)


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch step")
def test_torch_compiled_step_off_gives_keras_step():
    model = tiny_mae(image_size=16, patch_size=4, depth=1)
    with config.choices(torch_compiled_step=False):
        model.compile()
        assert model.jit_compile is False  # "auto": eager, as Keras' own
        model.compile(jit_compile=True)
        assert getattr(model.make_train_function(), "compiled_forward", None) is None
    model.compile(jit_compile=True)
    assert getattr(model.make_train_function(), "compiled_forward", None) is not None


def test_describe_reports_the_resolved_choices():
    with config.choices(remat=False, attention_kernel="explicit", torch_compiled_step=False):
        described = config.describe()
    assert described == {"backend": BACKEND, "attention_kernel": "explicit", "remat": False,
                         "torch_compiled_step": False,
                         "keep_heap": BACKEND == "jax" and config.keep_heap()}
    # "auto" on PyTorch's CPU in bfloat16 is the explicit kernel, which the recipes' header shows
    want = "explicit" if BACKEND == "torch" else ("keep_weights" if BACKEND == "jax" else "fused")
    assert config.describe("bfloat16")["attention_kernel"] == want
