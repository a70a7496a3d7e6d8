"""Weights saved under one Keras backend load under another with identical outputs."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from conftest import random_images, random_noise, tiny_mae, to_numpy

BACKENDS = ("tensorflow", "jax", "torch")
WRITER = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import random_images, random_noise, tiny_mae
import keras
model = tiny_mae(norm_pix_loss=True)
out = model(random_images(2), noise=random_noise(2, 16))
model.save_weights({weights!r})
model.save({whole!r})
np.save({pred!r}, keras.ops.convert_to_numpy(out["pred"]))
"""


def test_weights_from_another_backend_give_identical_outputs(tmp_path):
    here = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(here) + 1) % 3]
    paths = {k: str(tmp_path / name) for k, name in
             (("weights", "m.weights.h5"), ("whole", "m.keras"), ("pred", "pred.npy"))}
    script = WRITER.format(tests=os.path.dirname(__file__), **paths)
    env = dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = np.load(paths["pred"])
    x, noise = random_images(2), random_noise(2, 16)
    model = tiny_mae(norm_pix_loss=True, seed=123)
    model.build()
    model.load_weights(paths["weights"])
    np.testing.assert_allclose(to_numpy(model(x, noise=noise)["pred"]), expected, atol=1e-5)
    loaded = keras.saving.load_model(paths["whole"])
    np.testing.assert_allclose(to_numpy(loaded(x, noise=noise)["pred"]), expected, atol=1e-5)


def test_same_seeds_same_masks_and_loss_curve():
    x = random_images(8)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)

    def curve():
        keras.utils.set_random_seed(42)
        model = tiny_mae(seed=7)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, beta_2=0.95))
        history = model.fit(dataset, epochs=3, verbose=0)
        return history.history["loss"], to_numpy(model(x)["mask"])

    (loss_a, mask_a), (loss_b, mask_b) = curve(), curve()
    np.testing.assert_array_equal(mask_a, mask_b)
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    assert loss_a[-1] != loss_a[0]
