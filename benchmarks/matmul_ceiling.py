"""The fastest an MAE training step can run here: its matrix multiplications alone.

Lists every matrix multiplication of one training step of a
`MaskedAutoencoder` at the step's own shapes (each forward product, and for
each the two products of the backward pass: the input and the weight
gradients), runs them all, and reports the images/s of a step that did
nothing else. A real step also runs norms, softmax, GELU, the masking
gathers and the optimizer update, so no implementation of the same model in the
same precision and with the same product kernels beats this figure on the same
machine: a throughput above the fastest backend's figure cannot be reached
with these libraries.

The products sum to `benchmarks.flops.mae_train_flops` exactly (checked in
tests/test_benchmarks.py).

Each backend runs the products its own way (`VARIANTS`): TensorFlow with
XLA and without it (where it calls oneDNN), keeping the faster; JAX under
`jax.jit`; PyTorch eagerly (`mm`/`bmm`, the kernels its compiled step calls).
A backend's figure is what its step would run at with nothing but its
products; the fastest of the three is that for any implementation here.

Usage: `KERAS_BACKEND=jax python benchmarks/matmul_ceiling.py
[--config mae_vit_tiny_patch4] [--batch 128] [--dtype float32]`; prints one
JSON line. `benchmarks/train_throughput.py` runs it on each backend next to
the training steps.

Measured with `benchmarks/train_throughput.py --ceilings`, in `benchmarks/RESULTS.md`.
"""

import argparse
import json
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def forward_products(model, batch, encoder_tokens=None):
    """The forward matrix products of one step as `(count, m, k, n)`.

    `count` independent `(m, k) @ (k, n)` products (batched over heads for
    attention). `encoder_tokens` as in `benchmarks.flops.mae_forward_flops`.
    """
    visible = model.num_visible if encoder_tokens is None else encoder_tokens
    patch_dim = model.encoder.patch_size ** 2 * model.encoder.num_channels
    products = [(1, batch * model.num_patches, patch_dim, model.encoder.hidden_dim)]

    def blocks(depth, tokens, width, heads):
        rows, head_dim, hidden = batch * tokens, width // heads, int(width * model.encoder.mlp_ratio)
        block = [(1, rows, width, 3 * width), (1, rows, width, width),
                 (batch * heads, tokens, head_dim, tokens), (batch * heads, tokens, tokens, head_dim),
                 (1, rows, width, hidden), (1, rows, hidden, width)]
        return block * depth

    products += blocks(model.encoder.depth, 1 + visible, model.encoder.hidden_dim, model.encoder.num_heads)
    products.append((1, batch * (1 + visible), model.encoder.hidden_dim, model.decoder_hidden_dim))
    products += blocks(model.decoder_depth, 1 + model.num_patches, model.decoder_hidden_dim,
                       model.decoder_num_heads)
    products.append((1, batch * (1 + model.num_patches), model.decoder_hidden_dim, patch_dim))
    return products


def step_products(model, batch, encoder_tokens=None):
    """Forward products and, for each, its two backward products (dX, dW)."""
    products = []
    for count, m, k, n in forward_products(model, batch, encoder_tokens):
        products += [(count, m, k, n), (count, m, n, k), (count, k, m, n)]
    return products


def product_flops(products):
    return sum(2 * count * m * k * n for count, m, k, n in products)


def product_operands(products, dtype="float32", seed=0):
    """Random operands `[(a, b)]` for `products`, `a`: `(count, m, k)`, `b`: `(count, k, n)`, as backend tensors."""
    import keras
    import numpy as np

    rng = np.random.RandomState(seed)
    return [(keras.ops.cast(rng.rand(count, m, k).astype("float32"), dtype),
             keras.ops.cast(rng.rand(count, k, n).astype("float32"), dtype))
            for count, m, k, n in products]


def products_function(jit_compile=True):
    """`run(operands) -> [a @ b, ...]` on the Keras backend of this process.

    TensorFlow: one `tf.function`, with XLA or without it (oneDNN's products on
    a CPU). JAX: one `jax.jit` (XLA; `jit_compile` must be True). PyTorch: eager
    `torch.matmul` (`mm`/`bmm`, the kernels its compiled training step calls
    for the products; `jit_compile` must be False).
    """
    import keras

    def run(operands):
        return [keras.ops.matmul(a, b) for a, b in operands]

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(run, jit_compile=jit_compile)
    if (backend == "jax") != bool(jit_compile):
        raise ValueError(f"jit_compile={jit_compile!r} on {backend}: JAX's products run compiled "
                         f"(True), PyTorch's eager (False)")
    if backend == "jax":
        import jax

        return jax.jit(run)
    return run


def time_products(products, dtype="float32", jit_compile=True, repeats=5):
    """Median seconds of running all `products` once (`products_function`), outputs read back."""
    import keras

    operands = product_operands(products, dtype)
    run = products_function(jit_compile)
    keras.ops.convert_to_numpy(run(operands)[-1])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = run(operands)
        keras.ops.convert_to_numpy(outputs[-1])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# how each backend runs the products: the variants `ceiling` times, by jit_compile
VARIANTS = {"tensorflow": {"xla": True, "no_xla": False}, "jax": {"xla": True},
            "torch": {"eager": False}}


def ceiling(config_name, batch, dtype="float32", encoder_tokens=None):
    """images/s of a step made only of its matrix products, on this process' Keras backend.

    Times each of the backend's `VARIANTS` and reports the fastest as the
    result's `step_s` and `images_per_s`.
    """
    import keras

    import keras_mae

    backend = keras.backend.backend()
    model = keras_mae.models.build(config_name)
    products = step_products(model, batch, encoder_tokens)
    result = {"impl": f"matmul_ceiling/{backend}", "config": config_name, "batch": batch,
              "dtype": dtype, "train_gflops_per_image": product_flops(products) / batch / 1e9}
    for name, jit in VARIANTS[backend].items():
        seconds = time_products(products, dtype, jit)
        result[name] = {"step_s": seconds, "images_per_s": batch / seconds,
                        "gflops_per_s": product_flops(products) / seconds / 1e9}
    best = max((result[name] for name in VARIANTS[backend]), key=lambda r: r["images_per_s"])
    result.update(step_s=best["step_s"], images_per_s=best["images_per_s"])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mae_vit_tiny_patch4")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    print(json.dumps(ceiling(args.config, args.batch, args.dtype)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
