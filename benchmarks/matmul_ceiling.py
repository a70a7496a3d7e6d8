"""The fastest an MAE training step can run here: its matrix multiplications alone.

Lists every matrix multiplication of one training step of a
`MaskedAutoencoder` at the step's own shapes (each forward product, and for
each the two products of the backward pass: the input and the weight
gradients), runs them in one compiled TensorFlow function, with XLA and
without it (where TensorFlow calls oneDNN), and reports the images/s of a step
that did nothing else. A real step also runs norms, softmax, GELU, the masking
gathers and the optimizer update, so no implementation of the same model in the
same precision beats this figure on the same machine: a throughput target
above it cannot be met by software.

The products sum to `benchmarks.flops.mae_train_flops` exactly (checked in
tests/test_benchmarks.py).

Usage: `KERAS_BACKEND=tensorflow python benchmarks/matmul_ceiling.py
[--config mae_vit_tiny_patch4] [--batch 128] [--dtype float32]`; prints one
JSON line. `benchmarks/train_throughput.py` runs it next to the training steps.

Measured: see the table in `benchmarks/train_throughput.py`.
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


def time_products(products, dtype="float32", jit_compile=True, repeats=5):
    """Median seconds of running all `products` once, in one `tf.function`."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(0)
    operands = [(tf.constant(rng.rand(count, m, k).astype("float32"), dtype),
                 tf.constant(rng.rand(count, k, n).astype("float32"), dtype))
                for count, m, k, n in products]

    @tf.function(jit_compile=jit_compile)
    def run(operands):
        return [tf.matmul(a, b) for a, b in operands]

    run(operands)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = run(operands)
        _ = outputs[-1].numpy()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def ceiling(config_name, batch, dtype="float32", encoder_tokens=None):
    """images/s of a step made only of its matrix products, with and without XLA."""
    import keras_mae

    model = keras_mae.models.build(config_name)
    products = step_products(model, batch, encoder_tokens)
    result = {"impl": "matmul_ceiling/tensorflow", "config": config_name, "batch": batch,
              "dtype": dtype, "train_gflops_per_image": product_flops(products) / batch / 1e9}
    for jit in (True, False):
        seconds = time_products(products, dtype, jit)
        result["xla" if jit else "no_xla"] = {
            "step_s": seconds, "images_per_s": batch / seconds,
            "gflops_per_s": product_flops(products) / seconds / 1e9}
    best = max(result["xla"], result["no_xla"], key=lambda r: r["images_per_s"])
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
