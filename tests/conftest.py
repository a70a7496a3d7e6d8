"""Shared test helpers. The Keras backend is fixed by KERAS_BACKEND per process."""

# torch and transformers before TensorFlow: the other order can segfault when
# triton is present (a CUDA torch build).
try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError:
    pass

import keras
import numpy as np

import keras_mae


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def gradients_of_weighted_sum(fn, inputs, weights):
    """`d sum(fn(*inputs) * weights) / d inputs` as numpy arrays, on the running backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        grads = jax.grad(lambda *xs: (fn(*xs) * weights).sum(), argnums=tuple(range(len(inputs))))
        return [np.asarray(g) for g in grads(*inputs)]
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            value = tf.reduce_sum(fn(*xs) * weights)
        return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, xs)]
    xs = [torch.tensor(x, requires_grad=True) for x in inputs]
    (fn(*xs) * torch.tensor(weights)).sum().backward()
    return [x.grad.numpy() for x in xs]


def tiny_mae(**overrides):
    """A 32 px MAE small enough for a CPU test: 2 encoder blocks, 1 decoder block."""
    config = dict(
        image_size=32, patch_size=8, hidden_dim=32, depth=2, num_heads=4,
        decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2, seed=0,
    )
    config.update(overrides)
    return keras_mae.models.from_arguments(**config)


def random_images(n=4, size=32, channels=3, seed=0):
    size = (size, size) if isinstance(size, int) else size
    return np.random.RandomState(seed).rand(n, *size, channels).astype("float32")


def random_noise(n, length, seed=1):
    return np.random.RandomState(seed).rand(n, length).astype("float32")


def write_recipe_inputs(folder, splits, unlabelled, encoder_arch):
    """Files the probe and fine-tuning recipes read, written into `folder`.

    Args:
        folder: a `pathlib.Path`.
        splits: dict name -> (uint8 images `(N, H, W, 3)`, int labels `(N,)`).
        unlabelled: uint8 images without labels (saved as `unlabelled.npz`).
        encoder_arch: `ViTEncoder` arguments; the encoder (seed 0) is saved
            as `encoder.keras`.

    Returns:
        dict of paths: one per split, `"unlabelled"` and `"encoder"`.
    """
    paths = {}
    for name, (x, y) in splits.items():
        paths[name] = str(folder / f"{name}.npz")
        np.savez(paths[name], x=x, y=y)
    paths["unlabelled"] = str(folder / "unlabelled.npz")
    np.savez(paths["unlabelled"], x=unlabelled)
    encoder = keras_mae.models.ViTEncoder(**encoder_arch, seed=0)
    encoder.build()
    paths["encoder"] = str(folder / "encoder.keras")
    encoder.save(paths["encoder"])
    return paths
