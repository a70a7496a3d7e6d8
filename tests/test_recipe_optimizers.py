"""The optimizers the recipes build, read back variable by variable, against the official groups.

Official rules (facebookresearch/mae with timm 0.3.2): pretraining decays
everything but `ndim <= 1` parameters and biases (`add_weight_decay`);
fine-tuning exempts `ndim == 1`, `pos_embed` and `cls_token`, with layer ids
0 (embeddings), i + 1 (block i), depth + 1 (head) and scale
`layer_decay ** (depth + 1 - id)` (`param_groups_lrd`); the probe's LARS
skips decay and the trust ratio on `ndim <= 1` parameters.
"""

import dataclasses

import keras
import pytest

from keras_mae import keras_internals
from keras_mae.models import ViTEncoder
from recipes import finetune, linear_probe, pretrain
from recipes.classify_configs import get_finetune_config, get_probe_config
from recipes.pretrain_configs import get_config

SMALL = dict(hidden_dim=32, depth=3, num_heads=4, decoder_hidden_dim=16, decoder_depth=1,
             decoder_num_heads=2, patch_size=8)


def relative(path, model):
    """A variable path without the task's name: `encoder/...`, `decoder/...`, `head/...`."""
    prefix = f"{model.name}/"
    return path[len(prefix):] if path.startswith(prefix) else path


def decayed_paths(optimizer, model):
    optimizer.build(model.trainable_variables)
    return {relative(v.path, model) for v in model.trainable_variables
            if keras_internals.uses_weight_decay(optimizer, v)}


def test_pretraining_optimizer_decays_as_timms_add_weight_decay():
    config = dataclasses.replace(get_config("paper_vit_base"), model="mae_vit_tiny_patch4",
                                 model_overrides=SMALL, image_size=32)
    model = pretrain.build_model(config)
    optimizer, peak = pretrain.build_optimizer(config, model, steps_per_epoch=10)
    assert peak == pytest.approx(1.5e-4 * 4096 / 256)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.95, 1e-8)
    assert optimizer.weight_decay == 0.05
    decayed = decayed_paths(optimizer, model)
    expected = {relative(v.path, model) for v in model.trainable_variables
                if len(v.shape) > 1 and not v.path.endswith("bias")}
    assert decayed == expected
    assert "encoder/cls_token" in decayed and "decoder/mask_token" in decayed
    assert not any(p.endswith(("gamma", "beta", "bias")) for p in decayed)


def test_finetuning_optimizer_has_the_official_groups_and_layer_scales():
    config = dataclasses.replace(get_finetune_config("paper_vit_base"), image_size=0)
    encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=3, num_heads=4,
                         name="encoder")
    encoder.build()
    model = finetune.build_classifier(config, encoder, 10)
    assert model.encoder.drop_path_rate == 0.1 and model.pooling == "avg"
    optimizer, peak = finetune.build_optimizer(config, model, steps_per_epoch=10)
    assert peak == pytest.approx(5e-4 * 1024 / 256)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-8)
    decayed = decayed_paths(optimizer, model)
    expected = {relative(v.path, model) for v in model.trainable_variables
                if len(v.shape) > 1 and "cls_token" not in v.path
                and "position_embedding" not in v.path}
    assert decayed == expected and "encoder/cls_token" not in decayed
    # the position table trains (official pos_embed: layer 0, no weight decay)
    assert "encoder/position_embedding/table" not in decayed
    scales = {relative(p, model): m for p, m in optimizer.learning_rate_multipliers.items()}
    decay = config.layer_decay
    assert scales["encoder/cls_token"] == pytest.approx(decay ** 4)
    assert scales["encoder/patch_embedding/projection/kernel"] == pytest.approx(decay ** 4)
    assert scales["encoder/encoder_block_0/attention/qkv/kernel"] == pytest.approx(decay ** 3)
    assert scales["encoder/encoder_block_2/fc2/bias"] == pytest.approx(decay)
    assert scales["head/kernel"] == scales["fc_norm/gamma"] == 1.0
    assert scales["encoder/position_embedding/table"] == pytest.approx(decay ** 4)
    # the bypassed encoder norm is not trained at all
    assert not any("encoder_norm" in p for p in scales)


def test_probe_optimizer_is_lars_without_decay_on_vectors():
    config = get_probe_config("paper_vit_base")
    optimizer, peak = linear_probe.build_optimizer(config, steps_per_epoch=10)
    assert peak == pytest.approx(0.1 * 16384 / 256)
    assert type(optimizer).__name__ == "LARS" and optimizer.momentum == 0.9
    assert optimizer.weight_decay == 0.0
    probe = linear_probe.build_probe(
        ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=1, num_heads=4), 10, "cls")
    assert {relative(v.path, probe) for v in probe.trainable_variables} == {
        "head/kernel", "head/bias"}
    assert isinstance(probe.head_norm, keras.layers.BatchNormalization)
    assert probe.head_norm.momentum == 0.9 and probe.head_norm.epsilon == 1e-6
