"""Tests for keras_mae.optimizers (run once per Keras backend)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_mae.optimizers import LARS
from keras_mae.optimizers import AdamW
from keras_mae.optimizers import LayerDecayAdamW
from keras_mae.optimizers import WarmupCosineDecay
from keras_mae.optimizers import exclude_from_weight_decay_mae
from keras_mae.optimizers import layer_decay_multipliers
from keras_mae.optimizers import layer_id_for_variable
from keras_mae.optimizers import scaled_learning_rate


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def _apply(optimizer, grads, variables):
    optimizer.apply(
        [ops.convert_to_tensor(np.asarray(g, "float32")) for g in grads],
        variables,
    )


class _Tokens(keras.layers.Layer):
    """Adds learned cls / position tokens to a `(batch, 3, dim)` input."""

    def build(self, input_shape):
        dim = input_shape[-1]
        self.cls_token = self.add_weight(
            shape=(1, 1, dim), initializer="ones", name="cls_token"
        )
        self.pos_embed = self.add_weight(
            shape=(1, 4, dim), initializer="ones", name="pos_embed"
        )

    def call(self, x):
        cls = ops.broadcast_to(self.cls_token, (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([cls, x], axis=1) + self.pos_embed


def _tiny_vit(num_blocks=3, dim=4):
    """A small model whose layer names follow the keras_mae convention."""
    inputs = keras.Input((3, dim))
    x = keras.layers.Dense(dim, name="patch_embedding")(inputs)
    x = _Tokens(name="tokens")(x)
    for i in range(num_blocks):
        x = keras.layers.Dense(dim, name=f"encoder_block_{i}")(x)
    x = keras.layers.LayerNormalization(name="encoder_norm")(x)
    outputs = keras.layers.Dense(2, name="head")(x[:, 0])
    return keras.Model(inputs, outputs, name="tiny_vit")


# ----------------------------------------------------------------- schedules


def _official_lr(epoch, lr, min_lr, warmup_epochs, epochs):
    """The official MAE `adjust_learning_rate` formula (fractional epoch)."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    return min_lr + (lr - min_lr) * 0.5 * (
        1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs))
    )


def test_scaled_learning_rate():
    assert scaled_learning_rate(1.5e-4, 4096) == pytest.approx(2.4e-3)
    assert scaled_learning_rate(0.1, 256) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="global_batch_size=0"):
        scaled_learning_rate(1e-3, 0)
    with pytest.raises(ValueError, match="base_lr=-0.1"):
        scaled_learning_rate(-0.1, 256)


def test_warmup_cosine_matches_official_per_iteration():
    steps_per_epoch, warmup_epochs, epochs = 7, 2, 10
    peak, min_lr = 2e-3, 1e-5
    schedule = WarmupCosineDecay(
        peak_lr=peak,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_epochs * steps_per_epoch,
        min_lr=min_lr,
    )
    steps = np.arange(epochs * steps_per_epoch)
    expected = [
        _official_lr(s / steps_per_epoch, peak, min_lr, warmup_epochs, epochs)
        for s in steps
    ]
    actual = [float(_np(schedule(int(s)))) for s in steps]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-9)
    assert actual[0] == 0.0
    # Clamped at min_lr after the end of the run.
    for step in (70, 71, 1000):
        assert float(_np(schedule(step))) == pytest.approx(min_lr)


def test_warmup_cosine_edge_cases():
    no_warmup = WarmupCosineDecay(1.0, total_steps=10, warmup_steps=0)
    assert float(_np(no_warmup(0))) == pytest.approx(1.0)
    assert float(_np(no_warmup(5))) == pytest.approx(0.5)
    only_warmup = WarmupCosineDecay(1.0, 4, 4, min_lr=0.1)
    values = [float(_np(only_warmup(s))) for s in range(6)]
    np.testing.assert_allclose(values, [0, 0.25, 0.5, 0.75, 0.1, 0.1], atol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_warmup_cosine_holds_each_accumulation_groups_first_rate(k):
    # the official engines set the rate only when `data_iter_step % accum_iter == 0`
    plain = WarmupCosineDecay(1.0, total_steps=12, warmup_steps=4, min_lr=0.1)
    accumulated = WarmupCosineDecay(1.0, total_steps=12, warmup_steps=4, min_lr=0.1, accumulation_steps=k)
    values = [float(_np(accumulated(s))) for s in range(14)]
    expected = [float(_np(plain(s - s % k))) for s in range(14)]
    np.testing.assert_allclose(values, expected, atol=1e-7)
    assert values[1] == 0.0 and values[k] > 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(peak_lr=1.0, total_steps=10, warmup_steps=11), "warmup_steps=11"),
        (dict(peak_lr=-1.0, total_steps=10, warmup_steps=1), "peak_lr=-1.0"),
        (dict(peak_lr=1.0, total_steps=0, warmup_steps=0), "total_steps=0"),
        (dict(peak_lr=1.0, total_steps=10, warmup_steps=-1), "warmup_steps=-1"),
        (dict(peak_lr=1.0, total_steps=10, warmup_steps=1, min_lr=-1e-6), "min_lr"),
        (dict(peak_lr=1.0, total_steps=10, warmup_steps=1, min_lr=2.0), "min_lr=2.0"),
    ],
)
def test_warmup_cosine_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineDecay(**kwargs)


def test_warmup_cosine_serialization_and_optimizer_use():
    schedule = WarmupCosineDecay(1e-3, total_steps=100, warmup_steps=10, min_lr=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, WarmupCosineDecay)
    assert restored.get_config() == schedule.get_config()

    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    restored_opt = keras.optimizers.SGD.from_config(optimizer.get_config())
    assert isinstance(restored_opt._learning_rate, WarmupCosineDecay)

    variable = keras.Variable(np.zeros((2,), "float32"))
    for _ in range(3):
        _apply(optimizer, [np.ones((2,))], [variable])
    # Steps 0, 1, 2 use lr = 0, 1e-4, 2e-4.
    np.testing.assert_allclose(_np(variable), [-3e-4, -3e-4], rtol=1e-5)


# ---------------------------------------------------------------------- LARS


def _lars_reference(params, grads_per_step, lr, momentum, trust, weight_decay):
    """Plain numpy LARS (official MAE variant), float64."""
    params = [p.astype(np.float64).copy() for p in params]
    mus = [np.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            g = g.astype(np.float64)
            if p.ndim > 1:
                g = g + weight_decay * p
                p_norm, g_norm = np.linalg.norm(p), np.linalg.norm(g)
                q = trust * p_norm / g_norm if p_norm > 0 and g_norm > 0 else 1.0
                g = g * q
            mus[i] = momentum * mus[i] + g
            params[i] = p - lr * mus[i]
    return params


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lars_matches_numpy_reference(weight_decay):
    rng = np.random.RandomState(0)
    initial = [
        rng.randn(3, 4).astype("float32"),  # kernel
        rng.randn(4).astype("float32"),  # bias
        np.zeros((2, 2), "float32"),  # zero-norm parameter
        rng.randn(2, 3).astype("float32"),  # receives a zero gradient
    ]
    grads_per_step = []
    for _ in range(4):
        grads = [rng.randn(*p.shape).astype("float32") for p in initial]
        grads[3] = np.zeros_like(initial[3])
        grads_per_step.append(grads)

    variables = [keras.Variable(p) for p in initial]
    optimizer = LARS(
        learning_rate=0.5,
        momentum=0.9,
        trust_coefficient=0.02,
        weight_decay=weight_decay,
    )
    for grads in grads_per_step:
        _apply(optimizer, grads, variables)

    expected = _lars_reference(initial, grads_per_step, 0.5, 0.9, 0.02, weight_decay)
    for variable, want in zip(variables, expected, strict=True):
        np.testing.assert_allclose(_np(variable), want, rtol=2e-5, atol=1e-6)
    if weight_decay == 0.0:
        np.testing.assert_array_equal(_np(variables[3]), initial[3])


def test_lars_serialization_and_validation():
    optimizer = LARS(
        learning_rate=0.2, momentum=0.8, trust_coefficient=0.01, weight_decay=1e-4
    )
    config = optimizer.get_config()
    assert config["weight_decay"] == 1e-4
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, LARS)
    assert restored.momentum == 0.8
    assert restored.trust_coefficient == 0.01
    assert restored.weight_decay == 1e-4
    assert float(_np(restored.learning_rate)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="momentum=-0.1"):
        LARS(momentum=-0.1)
    with pytest.raises(ValueError, match="trust_coefficient=-1"):
        LARS(trust_coefficient=-1)
    with pytest.raises(ValueError, match="weight_decay=-0.5"):
        LARS(weight_decay=-0.5)


# --------------------------------------------------------------- layer decay


def test_layer_id_for_variable():
    assert layer_id_for_variable("m/patch_embedding/kernel", 12) == 0
    assert layer_id_for_variable("m/cls_token", 12) == 0
    assert layer_id_for_variable("m/position_embedding/embeddings", 12) == 0
    assert layer_id_for_variable("m/pos_embed", 12) == 0
    assert layer_id_for_variable("m/encoder_block_0/mlp/kernel", 12) == 1
    assert layer_id_for_variable("m/encoder_block_11/attn/bias", 12) == 12
    assert layer_id_for_variable("m/encoder_norm/gamma", 12) == 13
    assert layer_id_for_variable("m/head/kernel", 12) == 13
    assert layer_id_for_variable("m/decoder_block_0/kernel", 12) == 13
    with pytest.raises(ValueError, match="encoder_block_12"):
        layer_id_for_variable("m/encoder_block_12/kernel", 12)
    with pytest.raises(ValueError, match="num_layers=0"):
        layer_id_for_variable("m/head/kernel", 0)
    with pytest.raises(ValueError, match="layer_decay=1.5"):
        layer_decay_multipliers([], 12, decay=1.5)


def test_layer_decay_multipliers_for_tiny_model():
    model = _tiny_vit(num_blocks=3)
    multipliers = layer_decay_multipliers(model.trainable_variables, 3, 0.5)
    expected_layer = {
        "patch_embedding": 0,
        "cls_token": 0,
        "pos_embed": 0,
        "encoder_block_0": 1,
        "encoder_block_1": 2,
        "encoder_block_2": 3,
        "encoder_norm": 4,
        "head": 4,
    }
    assert len(multipliers) == len(model.trainable_variables) == 14
    for path, multiplier in multipliers.items():
        key = next(k for k in expected_layer if k in path)
        assert multiplier == 0.5 ** (4 - expected_layer[key]), path


def test_layer_decay_adamw_equals_adamw_with_scaled_lr():
    rng = np.random.RandomState(1)
    model = _tiny_vit(num_blocks=3)
    variables = model.trainable_variables
    for v in variables:
        v.assign(rng.randn(*v.shape).astype("float32"))
    initial = [_np(v).astype("float32") for v in variables]
    grads_per_step = [
        [rng.randn(*v.shape).astype("float32") for v in variables] for _ in range(3)
    ]
    lr, decay, wd = 0.01, 0.5, 0.1

    optimizer = LayerDecayAdamW(
        learning_rate=lr, num_layers=3, layer_decay=decay, weight_decay=wd
    )
    # No backend-specific fused replacement: update_step is what runs.
    assert type(optimizer) is LayerDecayAdamW
    for grads in grads_per_step:
        _apply(optimizer, grads, variables)

    multipliers = layer_decay_multipliers(variables, 3, decay)
    assert optimizer.learning_rate_multipliers == multipliers
    for index, variable in enumerate(variables):
        multiplier = multipliers[variable.path]
        reference = keras.Variable(initial[index])
        plain = AdamW(learning_rate=lr * multiplier, weight_decay=wd)
        for grads in grads_per_step:
            _apply(plain, [grads[index]], [reference])
        np.testing.assert_allclose(
            _np(variable),
            _np(reference),
            rtol=1e-5,
            atol=1e-7,
            err_msg=variable.path,
        )
    assert multipliers["patch_embedding/kernel"] == decay**4
    assert multipliers["head/kernel"] == 1.0


def test_layer_decay_adamw_fit_and_serialization():
    schedule = WarmupCosineDecay(1e-3, total_steps=4, warmup_steps=1)
    optimizer = LayerDecayAdamW(
        schedule, num_layers=3, layer_decay=0.65, weight_decay=0.05
    )
    config = optimizer.get_config()
    restored = LayerDecayAdamW.from_config(config)
    assert restored.num_layers == 3 and restored.layer_decay == 0.65
    assert restored.weight_decay == 0.05
    assert isinstance(restored._learning_rate, WarmupCosineDecay)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, LayerDecayAdamW)

    model = _tiny_vit(num_blocks=3)
    exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "finetune")
    model.compile(optimizer=optimizer, loss="mse")
    x = np.random.RandomState(2).randn(8, 3, 4).astype("float32")
    history = model.fit(
        x, np.zeros((8, 2), "float32"), batch_size=4, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="num_layers=-2"):
        LayerDecayAdamW(num_layers=-2)


def test_lars_fit():
    model = _tiny_vit(num_blocks=1)
    model.compile(optimizer=LARS(learning_rate=0.1, weight_decay=1e-4), loss="mse")
    x = np.random.RandomState(3).randn(8, 3, 4).astype("float32")
    history = model.fit(
        x, np.zeros((8, 2), "float32"), batch_size=4, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


# -------------------------------------------------------------- weight decay


def test_exclusion_list():
    model = _tiny_vit(num_blocks=1)
    optimizer = keras.optimizers.AdamW(weight_decay=0.05)
    excluded = exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "finetune")
    # main_finetune.py's param_groups_lrd: ndim == 1 and the ViT's no_weight_decay() names
    assert excluded == [
        "patch_embedding/bias",
        "tokens/cls_token",
        "tokens/pos_embed",
        "encoder_block_0/bias",
        "encoder_norm/gamma",
        "encoder_norm/beta",
        "head/bias",
    ]
    # main_pretrain.py's timm add_weight_decay: ndim <= 1 or a name ending in bias; tokens decay
    pretrain = exclude_from_weight_decay_mae(keras.optimizers.AdamW(weight_decay=0.05),
                                             model.trainable_variables, "pretrain")
    assert pretrain == [p for p in excluded if p not in ("tokens/cls_token", "tokens/pos_embed")]
    optimizer.build(model.trainable_variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "finetune")
    with pytest.raises(ValueError, match="groups='official'"):
        exclude_from_weight_decay_mae(keras.optimizers.AdamW(), model.trainable_variables,
                                      "official")


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5),
        lambda: LayerDecayAdamW(0.1, num_layers=1, weight_decay=0.5),
        lambda: LARS(learning_rate=0.1, weight_decay=0.5),
    ],
    ids=["AdamW", "LayerDecayAdamW", "LARS"],
)
def test_zero_gradient_decays_only_included_variables(make_optimizer):
    model = _tiny_vit(num_blocks=1)
    for v in model.trainable_variables:
        v.assign(np.ones(v.shape, "float32"))
    variables = model.trainable_variables
    optimizer = make_optimizer()
    excluded = exclude_from_weight_decay_mae(optimizer, variables, "finetune")
    _apply(optimizer, [np.zeros(v.shape) for v in variables], variables)
    for v in variables:
        value = _np(v)
        if v.path in excluded:
            np.testing.assert_array_equal(value, 1.0, err_msg=v.path)
        else:
            assert np.all(value < 1.0), v.path
    head = [v for v in variables if v.path == "head/kernel"][0]
    if isinstance(optimizer, LARS):
        # g = wd * p, scaled by trust * ||p|| / ||g||: step = lr * trust * p.
        want = 1.0 - 0.1 * 0.001
    else:
        # Decoupled: p * (1 - lr * wd); the head has multiplier 1.
        want = 1.0 - 0.1 * 0.5
    np.testing.assert_allclose(_np(head), want, rtol=1e-6)


def test_warmup_cosine_equals_keras_cosine_decay_and_takes_arrays():
    ours = WarmupCosineDecay(2e-3, total_steps=1200, warmup_steps=100, min_lr=1e-5)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0, 1100, alpha=1e-5 / 2e-3, warmup_target=2e-3, warmup_steps=100)
    for step in (0, 1, 50, 99, 100, 101, 600, 1199, 1200, 1500):
        assert float(ours(step)) == pytest.approx(float(keras_schedule(step)), abs=2e-9), step
    steps = np.arange(0, 1300, 7)
    np.testing.assert_allclose(_np(ours(steps)), [float(ours(int(s))) for s in steps],
                               rtol=0, atol=2e-9)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile")
def test_warmup_cosine_compiles_as_one_torch_graph_where_keras_cosine_decay_breaks():
    # why the schedule is ours: the compiled PyTorch step's optimizer update stays one graph
    import torch

    ours = WarmupCosineDecay(2e-3, total_steps=1200, warmup_steps=100, min_lr=1e-5)
    compiled = torch.compile(ours, fullgraph=True)
    for step in (0.0, 50.0, 100.0, 700.0, 1300.0):
        step = torch.tensor(step)
        assert float(compiled(step)) == pytest.approx(float(ours(step)), abs=1e-12)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0, 1100, alpha=1e-5 / 2e-3, warmup_target=2e-3, warmup_steps=100)
    # Keras' warmup branch is `ops.cond`, data-dependent control flow for Dynamo;
    # when this stops raising, Keras' schedule can replace ours
    with pytest.raises(Exception, match="[Dd]ata-dependent"):
        torch.compile(keras_schedule, fullgraph=True)(torch.tensor(50.0))
