"""`jit_compile=True` trains as the uncompiled step does, on every backend.

On PyTorch the MAE's compiled step is its own (`keras_mae.models.torch_step`):
the masking noise drawn eagerly, the forward pass and loss one graph without
breaks (`fullgraph=True` raises on any).
"""

import keras
import numpy as np
import pytest

import keras_mae
from conftest import random_images, tiny_mae


def fit_twice(jit_compile, **overrides):
    """Two epochs of 10 images in batches of 4 (the last one 2): losses, weights, the model."""
    keras.utils.set_random_seed(0)
    model = tiny_mae(image_size=16, patch_size=4, depth=1, norm_pix_loss=True, seed=3, **overrides)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, beta_2=0.95, weight_decay=0.05),
                  jit_compile=jit_compile)
    history = model.fit(random_images(10, 16), batch_size=4, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], [keras.ops.convert_to_numpy(w) for w in model.weights], model


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="under XLA, TensorFlow's stateless RNG draws other masks for the same seed")
def test_compiled_fit_equals_uncompiled_fit():
    eager_losses, eager_weights, eager = fit_twice(False)
    losses, weights, model = fit_twice(True)
    uses_own_step = getattr(model.train_function, "compiled_forward", None) is not None
    assert uses_own_step == (keras.backend.backend() == "torch")
    assert getattr(eager.train_function, "compiled_forward", None) is None
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    assert eager_losses[1] < eager_losses[0]
    assert len(weights) == len(eager_weights)
    for a, b in zip(weights, eager_weights):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch step")
def test_stochastic_depth_keeps_the_keras_step():
    model = tiny_mae(drop_path_rate=0.1)
    model.compile(optimizer="adamw", jit_compile=True)
    assert getattr(model.make_train_function(), "compiled_forward", None) is None
    assert not keras_mae.config.torch_compiled_step(model)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch step")
def test_many_models_in_one_process_each_compile_their_own_step():
    """Dynamo's recompile limit counts per code object: each model's step has its own."""
    import torch

    x = random_images(4, size=16)
    with torch._dynamo.config.patch(recompile_limit=1):
        for seed in range(2):  # one more than the limit
            model = tiny_mae(image_size=16, patch_size=4, depth=1, seed=seed)
            model.compile(jit_compile=True)
            assert np.isfinite(float(model.train_on_batch(x)))
