import keras
import numpy as np
import pytest

from conftest import gradients_of_weighted_sum, random_noise, to_numpy
from keras_mae import layers


def test_patch_embedding_shape_and_init():
    layer = layers.PatchEmbedding(24)
    x = np.random.RandomState(0).rand(2, 16, 48).astype("float32")
    out = layer(x)
    assert tuple(out.shape) == (2, 16, 24)
    kernel = to_numpy(layer.projection.kernel)
    limit = np.sqrt(6.0 / (48 + 24))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
    np.testing.assert_array_equal(to_numpy(layer.projection.bias), 0.0)
    assert tuple(layer.compute_output_shape((2, 16, 48))) == (2, 16, 24)
    assert tuple(layer(keras.Input((16, 48))).shape) == (None, 16, 24)


def test_position_embedding_is_fixed_table():
    layer = layers.SinCosPositionEmbedding((2, 4), 16)
    x = np.zeros((3, 8, 16), "float32")
    out = to_numpy(layer(x))
    from keras_mae.ops import sincos_2d_table
    np.testing.assert_allclose(out[1], sincos_2d_table(16, (2, 4))[1:], atol=1e-7)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
    np.testing.assert_array_equal(to_numpy(layer.cls_row), np.zeros((1, 1, 16)))  # the class token's row
    table = np.random.RandomState(0).rand(9, 16).astype("float32")
    layer.table.assign(table)
    np.testing.assert_array_equal(to_numpy(layer.cls_row), table[:1][None])
    np.testing.assert_allclose(to_numpy(layer(x)), x + table[1:], atol=1e-7)


def test_random_masking_counts_restore_and_mask():
    tokens = np.random.RandomState(0).rand(5, 20, 3).astype("float32")
    noise = random_noise(5, 20)
    visible, mask, ids_restore = layers.RandomMasking(0.75)(tokens, noise=noise)
    visible, mask, ids_restore = map(to_numpy, (visible, mask, ids_restore))
    assert visible.shape == (5, 5, 3) and mask.shape == (5, 20) and ids_restore.shape == (5, 20)
    np.testing.assert_array_equal(mask.sum(1), 15)
    order = np.argsort(noise, axis=1)
    for i in range(5):
        np.testing.assert_array_equal(order[i][ids_restore[i]], np.arange(20))
        kept = order[i][:5]
        np.testing.assert_array_equal(visible[i], tokens[i][kept])
        np.testing.assert_array_equal(mask[i][kept], 0)
        expected_mask = np.ones(20)
        expected_mask[kept] = 0
        np.testing.assert_array_equal(mask[i], expected_mask)


def test_random_masking_defaults_to_the_papers_ratio_and_orders_by_float32_noise():
    visible, mask, _ = layers.RandomMasking(seed=0)(np.zeros((2, 64, 8), "float32"))
    assert visible.shape == (2, 16, 8)  # mask ratio 0.75 (the paper's)
    np.testing.assert_array_equal(to_numpy(mask).sum(1), [48, 48])
    # under mixed_bfloat16 the noise keeps float32: steps of 1e-5 (below bfloat16's 4e-3 at 0.5) still order
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = layers.RandomMasking(0.5)
        tokens = np.arange(16, dtype="float32")[None, :, None]
        noise = (0.5 + 1e-5 * np.arange(16)[::-1])[None].astype("float32")
        visible, _, _ = layer(tokens, noise=noise)
    finally:
        keras.config.set_dtype_policy(policy)
    np.testing.assert_array_equal(to_numpy(visible)[0, :, 0], np.arange(15, 7, -1))


def test_random_masking_seeded_determinism():
    tokens = np.zeros((4, 16, 2), "float32")
    a = to_numpy(layers.RandomMasking(0.5, seed=3)(tokens)[1])
    b = to_numpy(layers.RandomMasking(0.5, seed=3)(tokens)[1])
    c = to_numpy(layers.RandomMasking(0.5, seed=4)(tokens)[1])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    layer = layers.RandomMasking(0.5, seed=3)
    first, second = to_numpy(layer(tokens)[1]), to_numpy(layer(tokens)[1])
    assert not np.array_equal(first, second), "successive calls must draw new masks"
    assert len({tuple(row) for row in first}) > 1, "each sample draws its own mask"


def test_random_masking_noise_on_one_replica_is_keras_uniform_from_the_layers_seed():
    def expected_draws(count):
        generator = keras.random.SeedGenerator(5)
        return [to_numpy(keras.random.uniform((3, 8), seed=generator)) for _ in range(count)]

    layer = layers.RandomMasking(0.5, seed=5)
    drawn = [to_numpy(layer.draw_noise(3, 8)) for _ in range(2)]  # the generator advances
    np.testing.assert_array_equal(drawn, expected_draws(2))
    if keras.backend.backend() == "tensorflow":  # a one-replica strategy takes the same path
        import tensorflow as tf

        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            layer = layers.RandomMasking(0.5, seed=5)
            cross_replica = to_numpy(layer.draw_noise(3, 8))
        in_replica = to_numpy(strategy.run(lambda: layer.draw_noise(3, 8)))
        np.testing.assert_array_equal([cross_replica, in_replica], expected_draws(2))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "0.5"])
def test_random_masking_rejects_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        layers.RandomMasking(ratio)


def test_random_masking_rejects_ratio_leaving_nothing_and_bad_noise():
    with pytest.raises(ValueError, match="no visible patch out of 4"):
        layers.RandomMasking(0.9)(np.zeros((1, 4, 2), "float32"))
    with pytest.raises(ValueError, match=r"noise.shape=\(2, 7\)"):
        layers.RandomMasking(0.5)(np.zeros((2, 8, 2), "float32"), noise=np.zeros((2, 7), "float32"))


def test_transformer_block_residual():
    block = layers.TransformerBlock(16, 4, layer_norm_epsilon=1e-6)
    x = np.random.RandomState(0).rand(2, 5, 16).astype("float32")
    out = to_numpy(block(x))
    assert out.shape == (2, 5, 16)
    for w in block.attention.proj.weights + block.fc2.weights:
        w.assign(np.zeros(w.shape, "float32"))
    np.testing.assert_allclose(to_numpy(block(x)), x, atol=1e-6)


def numpy_attention(layer, x):
    """Multi-head self-attention of `x` `(B, L, D)` with `layer`'s weights and heads, in numpy."""
    (b, length, width), heads = x.shape, layer.num_heads
    dim = width // heads
    wq, bq = (to_numpy(v) for v in layer.qkv.weights)
    wo, bo = (to_numpy(v) for v in layer.proj.weights)
    qkv = (x @ wq + bq).reshape(b, length, 3, heads, dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dim)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(b, length, width) @ wo + bo


def test_attention_matches_numpy_reference():
    layer = layers.MultiHeadSelfAttention(8, 2)
    x = np.random.RandomState(0).rand(2, 3, 8).astype("float32")
    out = to_numpy(layer(x))
    np.testing.assert_allclose(out, numpy_attention(layer, x), rtol=1e-5, atol=1e-5)


def test_transformer_block_matches_numpy_pre_norm_reference():
    # timm's Block as MAE builds it: x + attn(LN(x)), then x + fc2(GELU(fc1(LN(x)))); by default
    # the MLP is 4x wide, GELU exact (erf) and LayerNorm's epsilon 1e-6
    import math

    block = layers.TransformerBlock(8, 2)
    rng = np.random.RandomState(1)
    x = (1e-3 * rng.randn(2, 3, 8)).astype("float32")  # a variance near epsilon: its value shows
    block(x)
    for weight in block.weights:
        weight.assign((0.5 * rng.randn(*weight.shape)).astype("float32"))
    assert tuple(block.fc1.weights[0].shape) == (8, 32)

    def layer_norm(norm, v):
        gamma, beta = to_numpy(norm.gamma), to_numpy(norm.beta)
        v = v.astype("float64")
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-6) * gamma + beta

    def dense(layer, v):
        kernel, bias = (to_numpy(w) for w in layer.weights)
        return v @ kernel + bias

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    h = x + numpy_attention(block.attention, layer_norm(block.norm1, x))
    expected = h + dense(block.fc2, gelu(dense(block.fc1, layer_norm(block.norm2, h))))
    np.testing.assert_allclose(to_numpy(block(x, training=False)), expected, rtol=1e-4, atol=1e-5)


def test_attention_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match="num_heads=5.*hidden_dim=16"):
        layers.MultiHeadSelfAttention(16, 5)


def test_drop_path_drops_whole_samples():
    layer = layers.DropPath(0.5, seed=0)
    x = np.ones((64, 3, 4), "float32")
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    out = to_numpy(layer(x, training=True))
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1))
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    # off by default (timm's drop_path_rate 0.0): the identity even while training
    np.testing.assert_array_equal(to_numpy(layers.DropPath()(x * 3, training=True)), x * 3)


def test_explicit_attention_equals_fused_attention():
    from keras_mae.layers.attention import explicit_attention

    rng = np.random.RandomState(0)
    q, k, v = (rng.randn(2, 17, 3, 8).astype("float32") for _ in range(3))
    fused = keras.ops.convert_to_numpy(keras.ops.dot_product_attention(q, k, v))
    explicit = keras.ops.convert_to_numpy(explicit_attention(q, k, v))
    np.testing.assert_allclose(explicit, fused, atol=1e-6)
    # by hand for one head of one image
    scores = q[1, :, 2] @ k[1, :, 2].T / np.sqrt(8)
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    np.testing.assert_allclose(explicit[1, :, 2], weights @ v[1, :, 2], atol=1e-5)


def test_attention_keeping_weights_has_the_gradient_of_explicit_attention():
    from keras_mae.layers.attention import attention_keeping_weights, explicit_attention

    rng = np.random.RandomState(2)
    q, k, v = (rng.randn(2, 11, 3, 8).astype("float32") for _ in range(3))
    upstream = rng.randn(2, 11, 3, 8).astype("float32")
    np.testing.assert_allclose(to_numpy(attention_keeping_weights(q, k, v)),
                               to_numpy(explicit_attention(q, k, v)), atol=1e-6)
    written = gradients_of_weighted_sum(attention_keeping_weights, [q, k, v], upstream)
    derived = gradients_of_weighted_sum(explicit_attention, [q, k, v], upstream)
    for name, a, b in zip("qkv", written, derived):
        assert np.abs(b).max() > 0.1, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_attention_path_choice_and_bfloat16_output():
    from keras_mae import config

    x32 = keras.ops.convert_to_tensor(np.random.RandomState(1).randn(2, 9, 16).astype("float32"))
    x16 = keras.ops.cast(x32, "bfloat16")
    backend = keras.backend.backend()  # the suite runs on CPU
    want32 = "keep_weights" if backend == "jax" else "fused"
    assert config.attention_kernel(x32) == want32
    assert config.attention_kernel(x16) == ("explicit" if backend == "torch" else want32)
    layer = layers.MultiHeadSelfAttention(16, 4)
    layer.build((2, 9, 16))
    mixed = layers.MultiHeadSelfAttention(16, 4, dtype="mixed_bfloat16")
    mixed.build((2, 9, 16))
    mixed.set_weights(layer.get_weights())
    out32 = to_numpy(layer(x32))
    out16 = to_numpy(keras.ops.cast(mixed(x32), "float32"))
    np.testing.assert_allclose(out16, out32, atol=0.05)
    assert np.abs(out32).max() > 0.1


def test_token_dense_equals_dense_on_every_rank():
    from keras_mae.layers import TokenDense

    dense = keras.layers.Dense(6, activation="gelu", name="fc")
    tokens = TokenDense(6, activation="gelu", name="fc")
    for shape in [(3, 5), (2, 7, 5), (2, 3, 4, 5)]:
        x = np.random.RandomState(len(shape)).rand(*shape).astype("float32")
        if not dense.built:
            dense.build(shape)
            tokens.build(shape)
            tokens.set_weights(dense.get_weights())
        out = keras.ops.convert_to_numpy(tokens(x))
        assert out.shape == shape[:-1] + (6,)
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(dense(x)), atol=1e-6)
    assert [w.path for w in tokens.weights] == [w.path for w in dense.weights] == ["fc/kernel", "fc/bias"]
    restored = TokenDense.from_config(tokens.get_config())
    assert type(restored) is TokenDense and restored.units == 6
    # token sequences of any length: unknown when the model is built, and empty
    assert tuple(tokens(keras.Input((None, 5))).shape) == (None, None, 6)
    assert tuple(tokens(keras.Input((None, 4, 5))).shape) == (None, None, 4, 6)
    assert tuple(tokens(np.zeros((2, 0, 5), "float32")).shape) == (2, 0, 6)


def test_transformer_block_recomputes_norms_and_gelu_under_xla_with_the_same_training_step():
    import keras_mae

    def model():
        keras.utils.set_random_seed(3)  # the same initial weights and masks
        return keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1, seed=3)

    recomputed = model()
    with keras_mae.config.choices(remat=False):
        kept = model()  # built with nothing recomputed
    blocks = list(recomputed.encoder.blocks) + list(recomputed.decoder.blocks)
    modes = {(layer.name, getattr(layer._remat_mode, "mode", None))
             for block in blocks for layer in (block.norm1, block.norm2, block.fc1)}
    xla = keras.backend.backend() in ("jax", "tensorflow")
    want = {("norm1", "full"), ("norm2", "full"), ("fc1", "activations")}
    assert modes == (want if xla else {("norm1", None), ("norm2", None), ("fc1", None)})
    assert all(getattr(layer._remat_mode, "mode", None) is None for block in kept.encoder.blocks
               for layer in (block.norm1, block.norm2, block.fc1))
    x = np.random.RandomState(0).rand(4, 32, 32, 3).astype("float32")
    for m in (recomputed, kept):
        m.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=keras.backend.backend() != "torch")
        m.train_on_batch(x)
    assert len(recomputed.weights) == len(kept.weights)
    for a, b in zip(recomputed.weights, kept.weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6, err_msg=a.path)
    moved = max(float(np.abs(to_numpy(a) - to_numpy(b)).max())
                for a, b in zip(recomputed.weights, model().weights))
    assert moved > 1e-3  # the step changed the weights
