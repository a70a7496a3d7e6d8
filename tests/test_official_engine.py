"""The recipes' optimizers, step for step, against numpy transcriptions of the official engine.

Each test builds the real model of a recipe and the optimizer the recipe
builds for it, applies a few steps of fixed random gradients, and compares
every variable with a plain numpy implementation of what facebookresearch/mae
does in PyTorch:

- pretraining (`main_pretrain.py`, `engine_pretrain.py`): timm's
  `add_weight_decay` groups (no decay for `ndim <= 1` or names ending in
  `.bias`), `torch.optim.AdamW` (betas from the config, eps 1e-8), the
  per-iteration `util/lr_sched.adjust_learning_rate`;
- fine-tuning (`main_finetune.py`, `util/lr_decay.py`): `param_groups_lrd`
  (no decay for `ndim == 1`, `pos_embed`, `cls_token`; layer id 0 for
  `cls_token`, `pos_embed`, `patch_embed`, `i + 1` for `blocks.i`, else
  `num_layers`; lr scale `layer_decay ** (num_layers - layer_id)` with
  `num_layers = depth + 1`), torch AdamW with the scaled lr and decay;
- linear probe (`main_linprobe.py`, `util/lars.py`): LARS on the head.

torch.optim.AdamW (PyTorch documentation, algorithm box): `p *= 1 - lr * wd`;
`m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`;
`p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
"""

import math
import re

import keras
import numpy as np
import pytest

from recipes import finetune, linear_probe, pretrain
from recipes.classify_configs import FinetuneConfig, ProbeConfig
from recipes.pretrain_configs import PretrainConfig

SMALL = dict(hidden_dim=16, depth=2, num_heads=2, decoder_hidden_dim=8, decoder_depth=1,
             decoder_num_heads=2)
STEPS_PER_EPOCH = 3


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)


def _official_lr(step, peak, epochs, warmup_epochs, min_lr=0.0):
    """util/lr_sched.adjust_learning_rate at the fractional epoch of iteration `step`."""
    epoch = step / STEPS_PER_EPOCH
    if epoch < warmup_epochs:
        return peak * epoch / warmup_epochs
    return min_lr + (peak - min_lr) * 0.5 * (
        1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


def _gradients(variables, steps, seed):
    """Fixed gradients of mixed scales (1e-5 .. 1e-1), so that epsilon matters."""
    rng = np.random.RandomState(seed)
    return [[(rng.randn(*v.shape) * 10.0 ** rng.uniform(-5, -1)).astype("float32")
             for v in variables] for _ in range(steps)]


def _run(optimizer, variables, gradients):
    for grads in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)


def _torch_adamw(params, gradients, lrs, decay, beta_1, beta_2, eps=1e-8):
    """torch.optim.AdamW: `lrs[t][i]` and `decay[i]` per parameter and step."""
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(gradients, start=1):
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            lr = lrs[t - 1][i]
            params[i] *= 1.0 - lr * decay[i]
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            denom = np.sqrt(v[i]) / math.sqrt(1 - beta_2 ** t) + eps
            params[i] -= lr / (1 - beta_1 ** t) * m[i] / denom
    return params


def _assert_close(variables, expected):
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(_numpy(variable), want, rtol=2e-5, atol=1e-6,
                                   err_msg=variable.path)


def test_pretraining_optimizer_is_torch_adamw_with_timm_groups():
    config = PretrainConfig(model_overrides=SMALL, epochs=2, warmup_epochs=1.0, base_lr=1e-2,
                            batch_size=256, weight_decay=0.5, beta_1=0.9, beta_2=0.95)
    model = pretrain.build_model(config)
    model.build()
    optimizer, peak = pretrain.build_optimizer(config, model, STEPS_PER_EPOCH)
    variables = model.trainable_variables
    initial = [_numpy(v) for v in variables]
    # timm add_weight_decay: the class and mask tokens (1, 1, D) are decayed
    decayed = [not (v.ndim <= 1 or v.path.endswith("bias")) for v in variables]
    paths = [v.path for v in variables]
    for name in ("/encoder/cls_token", "/decoder/mask_token"):
        (index,) = [i for i, p in enumerate(paths) if p.endswith(name)]
        assert decayed[index], name
    steps = 5
    gradients = _gradients(variables, steps, seed=0)
    _run(optimizer, variables, gradients)

    lrs = [[_official_lr(t, peak, config.epochs, config.warmup_epochs)] * len(variables)
           for t in range(steps)]
    decay = [config.weight_decay if d else 0.0 for d in decayed]
    _assert_close(variables, _torch_adamw(initial, gradients, lrs, decay, 0.9, 0.95))


def test_keras_adamw_differs_from_the_official_update():
    """The reference above tells Keras' own AdamW (epsilon 1e-7, outside the correction) apart."""
    config = PretrainConfig(model_overrides=SMALL, epochs=2, warmup_epochs=0.0, base_lr=1e-2)
    model = pretrain.build_model(config)
    model.build()
    variables = model.trainable_variables
    initial = [_numpy(v) for v in variables]
    gradients = _gradients(variables, 3, seed=1)
    _run(keras.optimizers.AdamW(1e-2, weight_decay=0.0, beta_2=0.95), variables, gradients)
    want = _torch_adamw(initial, gradients, [[1e-2] * len(variables)] * 3,
                        [0.0] * len(variables), 0.9, 0.95)
    worst = max(np.linalg.norm(_numpy(v) - w) / np.linalg.norm(w - p0)
                for v, w, p0 in zip(variables, want, initial))
    assert worst > 1e-2  # a relative change of the update of more than 1%


def _official_layer_id(path, depth):
    """get_layer_id_for_vit on the official name of a keras_mae classifier variable."""
    block = re.search(r"encoder_block_(\d+)/", path)
    if "cls_token" in path or "position_embedding" in path:
        return 0  # 'cls_token', 'pos_embed'
    if "patch_embedding" in path:
        return 0  # 'patch_embed.proj.*'
    if block:
        return int(block.group(1)) + 1  # 'blocks.i.*'
    return depth + 1  # fc_norm, head: num_layers = len(blocks) + 1


def _param_groups_lrd(variables, depth, layer_decay):
    """(lr scale, excluded from weight decay) of each variable, as `param_groups_lrd`."""
    scales = [layer_decay ** (depth + 1 - _official_layer_id(v.path, depth)) for v in variables]
    no_decay = [v.ndim == 1 or "cls_token" in v.path or "position_embedding" in v.path
                for v in variables]
    return scales, no_decay


def test_finetuning_optimizer_is_param_groups_lrd_with_torch_adamw():
    config = FinetuneConfig(model_overrides=dict(hidden_dim=16, depth=3, num_heads=2),
                            epochs=2, warmup_epochs=1.0, base_lr=4e-2, batch_size=256,
                            weight_decay=0.3, layer_decay=0.6, min_lr=1e-4)
    from keras_mae.models import ViTEncoder

    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=16, depth=3, num_heads=2)
    encoder.build()
    model = finetune.build_classifier(config, encoder, 10)
    optimizer, peak = finetune.build_optimizer(config, model, STEPS_PER_EPOCH)
    variables = model.trainable_variables
    # the official fine-tuning trains pos_embed (an nn.Parameter in timm's VisionTransformer)
    assert any(v.path.endswith("position_embedding/table") for v in variables)
    initial = [_numpy(v) for v in variables]
    steps = 4
    gradients = _gradients(variables, steps, seed=2)
    _run(optimizer, variables, gradients)

    scales, no_decay = _param_groups_lrd(variables, 3, config.layer_decay)
    lrs = [[_official_lr(t, peak, config.epochs, config.warmup_epochs, config.min_lr) * s
            for s in scales] for t in range(steps)]
    decay = [0.0 if n else config.weight_decay for n in no_decay]
    assert min(scales) == pytest.approx(0.6 ** 4) and max(scales) == 1.0
    _assert_close(variables, _torch_adamw(initial, gradients, lrs, decay,
                                          config.beta_1, config.beta_2))


def test_accumulated_finetuning_steps_follow_the_official_engine():
    """k accumulated batches: one update with their mean gradient at the lr of the group's first batch.

    `engine_finetune.py`: the lr is set when `data_iter_step % accum_iter == 0`
    and the optimizer steps on the summed (loss / accum_iter) gradients when
    `(data_iter_step + 1) % accum_iter == 0`.
    """
    config = FinetuneConfig(model_overrides=dict(hidden_dim=16, depth=2, num_heads=2),
                            epochs=4, warmup_epochs=1.0, base_lr=4e-2, batch_size=128,
                            accum_steps=2, weight_decay=0.3, layer_decay=0.6)
    from keras_mae.models import ViTEncoder

    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=16, depth=2, num_heads=2)
    encoder.build()
    model = finetune.build_classifier(config, encoder, 10)
    optimizer, peak = finetune.build_optimizer(config, model, STEPS_PER_EPOCH)
    assert peak == pytest.approx(4e-2 * 256 / 256)  # lr from the effective batch
    variables = model.trainable_variables
    initial = [_numpy(v) for v in variables]
    batches = 8
    gradients = _gradients(variables, batches, seed=3)
    _run(optimizer, variables, gradients)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == batches // 2

    scales, no_decay = _param_groups_lrd(variables, 2, config.layer_decay)
    updates = [[(a + b) / 2 for a, b in zip(gradients[u * 2], gradients[u * 2 + 1])]
               for u in range(batches // 2)]
    lrs = [[_official_lr(u * 2, peak, config.epochs, config.warmup_epochs) * s for s in scales]
           for u in range(batches // 2)]
    decay = [0.0 if n else config.weight_decay for n in no_decay]
    _assert_close(variables, _torch_adamw(initial, updates, lrs, decay,
                                          config.beta_1, config.beta_2))


def test_compile_without_an_optimizer_is_the_official_one():
    """`model.compile()` (the easy path) updates as the official engines at the base rate."""
    from keras_mae.models import ViTEncoder
    from keras_mae.models.classifier import ViTClassifier

    mae = pretrain.build_model(PretrainConfig(model_overrides=SMALL))
    mae.compile()
    variables = mae.trainable_variables
    initial = [_numpy(v) for v in variables]
    gradients = _gradients(variables, 3, seed=4)
    _run(mae.optimizer, variables, gradients)
    decay = [0.0 if (v.ndim <= 1 or v.path.endswith("bias")) else 0.05 for v in variables]
    _assert_close(variables, _torch_adamw(initial, gradients, [[1.5e-4] * len(variables)] * 3,
                                          decay, 0.9, 0.95))

    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=16, depth=2, num_heads=2,
                         trainable_positions=True)
    classifier = ViTClassifier(encoder, 10)
    classifier.compile()
    assert isinstance(classifier.loss, keras.losses.SparseCategoricalCrossentropy)
    variables = classifier.trainable_variables
    initial = [_numpy(v) for v in variables]
    gradients = _gradients(variables, 3, seed=5)
    _run(classifier.optimizer, variables, gradients)
    scales, no_decay = _param_groups_lrd(variables, 2, 0.75)
    _assert_close(variables, _torch_adamw(
        initial, gradients, [[1e-3 * s for s in scales]] * 3,
        [0.0 if n else 0.05 for n in no_decay], 0.9, 0.999))


def _official_lars(params, gradients, lrs, weight_decay, momentum=0.9, trust=0.001):
    """util/lars.py: decay and trust ratio for ndim > 1 only; mu = m mu + dp; p -= lr mu."""
    params = [p.copy() for p in params]
    mu = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(gradients):
        for i, g in enumerate(grads):
            dp = g.astype(np.float64)
            if params[i].ndim > 1:
                dp = dp + weight_decay * params[i]
                param_norm, update_norm = np.linalg.norm(params[i]), np.linalg.norm(dp)
                q = trust * param_norm / update_norm if param_norm > 0 and update_norm > 0 \
                    else 1.0
                dp = dp * q
            mu[i] = momentum * mu[i] + dp
            params[i] -= lrs[t] * mu[i]
    return params


def test_probe_optimizer_is_official_lars():
    config = ProbeConfig(epochs=2, warmup_epochs=1.0, base_lr=2.0, batch_size=256,
                         weight_decay=0.01)
    from keras_mae.models import ViTEncoder

    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=16, depth=1, num_heads=2)
    encoder.build()
    head = linear_probe.head_model(linear_probe.build_probe(encoder, 10, "avg"))
    optimizer, peak = linear_probe.build_optimizer(config, STEPS_PER_EPOCH)
    variables = head.trainable_variables
    assert sorted(v.ndim for v in variables) == [1, 2]  # BatchNorm without affine: kernel, bias
    for v in variables:  # non-zero parameters, so that the trust ratio acts
        v.assign(np.random.RandomState(3).randn(*v.shape).astype("float32") * 0.1)
    initial = [_numpy(v) for v in variables]
    steps = 4
    gradients = _gradients(variables, steps, seed=3)
    _run(optimizer, variables, gradients)
    lrs = [_official_lr(t, peak, config.epochs, config.warmup_epochs) for t in range(steps)]
    _assert_close(variables, _official_lars(initial, gradients, lrs, config.weight_decay))


def test_probe_batch_norm_running_mean_as_torch_momentum():
    """BatchNorm1d(affine=False, eps=1e-6), momentum 0.1: running = 0.9 running + 0.1 batch mean."""
    from keras_mae.models import ViTEncoder

    encoder = ViTEncoder(image_size=32, patch_size=4, hidden_dim=16, depth=1, num_heads=2)
    encoder.build()
    head = linear_probe.head_model(linear_probe.build_probe(encoder, 10, "cls"))
    head.compile(optimizer=keras.optimizers.SGD(0.0),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(4).randn(64, 16).astype("float32") + 3.0
    head.train_on_batch(x, np.zeros(64, "int64"))
    (norm,) = [layer for layer in head.layers if isinstance(layer, keras.layers.BatchNormalization)]
    np.testing.assert_allclose(_numpy(norm.moving_mean), 0.1 * x.mean(0), rtol=1e-5)
    assert norm.epsilon == 1e-6 and not norm.center and not norm.scale
