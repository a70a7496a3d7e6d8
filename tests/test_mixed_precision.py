"""Mixed-precision training: bfloat16 and float16 (with loss scaling) on every backend."""

import keras
import numpy as np
import pytest

from conftest import random_images, random_noise, tiny_mae, to_numpy

# One batch shape in every test, so that JAX reuses its compiled eager ops.
BATCH = 4


def batch():
    return random_images(BATCH), random_noise(BATCH, 16)


@pytest.fixture
def global_policy():
    """Sets the global dtype policy for one test and always puts float32 back."""

    def set_policy(name):
        keras.mixed_precision.set_dtype_policy(name)

    try:
        yield set_policy
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def dtype_of(x):
    return keras.backend.standardize_dtype(x.dtype)


def fixed_batch_loss(model, x, noise):
    return float(to_numpy(model.compute_loss(x=x, y_pred=model(x, noise=noise))))


def train_and_check(model, x, noise, before, steps=5):
    """Fits on the fixed batch; the loss stays finite and falls on fixed masks."""
    history = model.fit(x, batch_size=BATCH, epochs=steps, verbose=0)
    losses = history.history["loss"]
    after = fixed_batch_loss(model, x, noise)
    assert np.all(np.isfinite(losses)) and np.isfinite(after), (losses, after)
    assert after < before, (before, after)


def test_bfloat16_global_policy_trains_with_float32_variables_and_loss(global_policy):
    global_policy("mixed_bfloat16")
    model = tiny_mae(depth=1)
    x, noise = batch()
    out = model(x, noise=noise)
    assert model.dtype_policy.name == "mixed_bfloat16"
    # variables stay float32; the blocks compute in bfloat16, and so does the head
    assert {dtype_of(v) for v in model.weights} == {"float32"}
    assert dtype_of(out["pred"]) == "bfloat16"
    assert dtype_of(out["mask"]) == "bfloat16"
    assert dtype_of(out["ids_restore"]) == "int32"
    np.testing.assert_array_equal(to_numpy(out["mask"]).astype("float32").sum(1), 12)
    # the loss is reduced in float32 from the bfloat16 prediction
    loss = model.compute_loss(x=x, y_pred=out)
    assert dtype_of(loss) == "float32"
    pred = to_numpy(keras.ops.cast(out["pred"], "float32"))
    mask = to_numpy(keras.ops.cast(out["mask"], "float32"))
    target = to_numpy(model.target_patches(x))
    per_patch = ((pred - target) ** 2).mean(-1)
    assert float(to_numpy(loss)) == pytest.approx((per_patch * mask).sum() / mask.sum(), rel=1e-5)

    model.compile(optimizer=keras.optimizers.AdamW(3e-3, beta_2=0.95))
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    train_and_check(model, x, noise, before=float(to_numpy(loss)))
    assert {dtype_of(v) for v in model.trainable_weights} == {"float32"}


def test_bfloat16_mask_follows_the_given_noise_exactly(global_policy):
    """Explicit noise fixes the mask as in float32, even where bfloat16 would round it."""
    # distinct in float32, equal once rounded to bfloat16: decreasing, so the
    # four kept patches are the last four
    noise = np.tile(0.5 + 1e-4 * np.arange(15, -1, -1, dtype="float32"), (BATCH, 1))
    x = random_images(BATCH)
    expected = (np.argsort(np.argsort(noise, 1), 1) >= 4).astype("float32")
    global_policy("mixed_bfloat16")
    out = tiny_mae(depth=1)(x, noise=noise)
    np.testing.assert_array_equal(to_numpy(keras.ops.cast(out["mask"], "float32")), expected)


def test_bfloat16_model_argument_leaves_the_global_policy_alone():
    model = tiny_mae(depth=1, dtype="mixed_bfloat16")
    x, noise = batch()
    out = model(x, noise=noise)
    assert keras.config.dtype_policy().name == "float32"
    assert model.decoder.blocks[0].fc1.dtype_policy.name == "mixed_bfloat16"
    assert dtype_of(out["pred"]) == "bfloat16"
    assert {dtype_of(v) for v in model.weights} == {"float32"}


def on_jax_cpu():
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def test_float16_compile_wraps_optimizer_in_loss_scaling():
    model = tiny_mae(depth=1, dtype="mixed_float16")
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, beta_2=0.95))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, noise = batch()
    out = model(x, noise=noise)
    assert dtype_of(out["pred"]) == "float16"
    assert dtype_of(model.compute_loss(x=x, y_pred=out)) == "float32"


@pytest.mark.skipif(on_jax_cpu(), reason="XLA on CPU has no float16 x float16 -> float32 dot, "
                    "which jax.nn.dot_product_attention uses under jit (eager steps work, ~1 min)")
def test_float16_training_steps_give_a_finite_loss():
    model = tiny_mae(depth=1, dtype="mixed_float16")
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, beta_2=0.95))
    x, noise = batch()
    history = model.fit(x, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(to_numpy(model.optimizer.iterations)) == 2
    # the dynamic scale is in use: finite and a power of two
    scale = float(to_numpy(model.optimizer.dynamic_scale))
    assert np.isfinite(scale) and scale >= 1 and np.log2(scale) == int(np.log2(scale))
    assert {dtype_of(v) for v in model.trainable_weights} == {"float32"}


def test_mixed_precision_keras_round_trip(tmp_path):
    model = tiny_mae(depth=1, dtype="mixed_bfloat16", norm_pix_loss=True)
    x, noise = batch()
    out = model(x, noise=noise)
    path = str(tmp_path / "mixed.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert loaded.encoder.blocks[0].attention.qkv.dtype_policy.name == "mixed_bfloat16"
    assert {dtype_of(v) for v in loaded.weights} == {"float32"}
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    again = loaded(x, noise=noise)
    assert dtype_of(again["pred"]) == "bfloat16"
    for key in out:
        np.testing.assert_array_equal(
            to_numpy(keras.ops.cast(out[key], "float32")),
            to_numpy(keras.ops.cast(again[key], "float32")))
