"""The private Keras APIs `keras_mae.keras_internals` wraps still behave as it assumes."""

import keras
import numpy as np
from conftest import random_images, tiny_mae, to_numpy

from keras_mae import keras_internals
from keras_mae.layers import DropPath, RandomMasking, TransformerBlock


def test_sublayers_walks_the_whole_tree():
    model = tiny_mae(drop_path_rate=0.1)
    layers = keras_internals.sublayers(model)
    assert layers[0] is model
    assert sum(isinstance(layer, RandomMasking) for layer in layers) == 1
    # 2 encoder blocks and 1 decoder block, each with its own DropPath
    assert sum(isinstance(layer, TransformerBlock) for layer in layers) == 3
    assert sum(isinstance(layer, DropPath) for layer in layers) == 3
    assert model.encoder.blocks[1].drop_path in layers


def variables_and_gradients():
    a = keras.Variable(np.ones((2, 3), "float32"), name="kernel")
    b = keras.Variable(np.ones((3,), "float32"), name="bias")
    grads = [keras.ops.full((2, 3), 0.5), keras.ops.full((3,), 2.0)]
    return [a, b], grads


def test_optimizer_slots_and_weight_decay_queries():
    variables, grads = variables_and_gradients()
    optimizer = keras.optimizers.AdamW(0.1, weight_decay=0.5, beta_1=0.9, beta_2=0.99)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.build(variables)
    assert [keras_internals.variable_index(optimizer, v) for v in variables] == [0, 1]
    assert keras_internals.uses_weight_decay(optimizer, variables[0])
    assert not keras_internals.uses_weight_decay(optimizer, variables[1])
    optimizer.apply(grads, variables)
    m, v = keras_internals.adam_moments(optimizer, variables[1])
    np.testing.assert_allclose(to_numpy(m), 0.1 * 2.0, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(v), 0.01 * 4.0, rtol=1e-6)


def test_keras_calls_the_weight_decay_hook_that_subclasses_override():
    calls = []

    class Recording(keras.optimizers.AdamW):
        def _apply_weight_decay(self, variables):
            calls.append(len(variables))

    variables, grads = variables_and_gradients()
    optimizer = Recording(0.1, weight_decay=0.5)
    optimizer.apply(grads, variables)
    optimizer.apply(grads, variables)
    assert calls == [2, 2]
    # and the hook is what decays: with it off, AdamW steps as Adam does
    plain, _ = variables_and_gradients()
    adam = keras.optimizers.Adam(0.1)
    adam.apply(grads, plain)
    adam.apply(grads, plain)
    np.testing.assert_allclose(to_numpy(variables[0]), to_numpy(plain[0]), rtol=1e-6)
    decayed, once = variables_and_gradients()[0], variables_and_gradients()[0]
    keras.optimizers.AdamW(0.1, weight_decay=0.5).apply(grads, decayed)
    keras.optimizers.Adam(0.1).apply(grads, once)
    np.testing.assert_allclose(to_numpy(once[0]) - to_numpy(decayed[0]), 0.1 * 0.5, rtol=1e-4)


def test_training_loss_and_loss_tracker():

    model = tiny_mae(seed=0)
    model.compile(optimizer="adamw")
    x = random_images(2)
    y_pred = model(x, training=True)
    loss = keras_internals.training_loss(model, x, None, y_pred, None)
    expected = model.compute_loss(x=x, y_pred=y_pred)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), keras.ops.convert_to_numpy(expected))
    tracker = keras_internals.loss_tracker(model)
    history = model.fit(x, epochs=1, verbose=0)
    # the metric Keras' `fit` reports as `loss`, not merely some Mean
    assert float(tracker.count) == len(x)  # weighted by the batch size
    np.testing.assert_allclose(float(tracker.result()), history.history["loss"][0], rtol=1e-6)
