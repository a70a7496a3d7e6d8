"""Smoke tests for the benchmark helpers (timings are never asserted)."""

import keras
import numpy as np

from benchmarks.flops import block_flops, mae_forward_flops, mae_train_flops
from benchmarks.mask_tokens_baseline import MaskTokensInEncoderMAE
from conftest import random_images, random_noise, tiny_mae, to_numpy
import keras_mae


def test_block_flops_by_hand():
    # N=3 tokens, D=4, MLP 16: 2 * (4*3*16 + 2*9*4 + 2*3*4*16) = 2 * (192 + 72 + 384)
    assert block_flops(3, 4) == 1296


def test_vit_base_flops_ratio_grows_with_encoder_share():
    model = keras_mae.models.mae_vit_base_patch16()
    sparse = mae_train_flops(model)
    full = mae_train_flops(model, encoder_tokens=model.num_patches)
    assert full == 3 * mae_forward_flops(model, encoder_tokens=196)
    # encoder on 49 of 196 patches; the 8-block decoder still sees all 197 tokens
    assert 2.3 < full / sparse < 2.4
    large = keras_mae.models.mae_vit_large_patch16()
    ratio = mae_train_flops(large, encoder_tokens=196) / mae_train_flops(large)
    assert 3.1 < ratio < 3.4  # the paper reports 3.3x training FLOPs for ViT-L


def test_mask_tokens_baseline_trains_one_step():
    config = tiny_mae().get_config()
    config.pop("name")
    model = MaskTokensInEncoderMAE(**config)
    x = random_images(2)
    out = model(x, noise=random_noise(2, 16))
    assert tuple(out["pred"].shape) == (2, 16, 192)
    np.testing.assert_array_equal(to_numpy(out["mask"]).sum(1), 12)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    loss = model.train_on_batch(x)
    assert np.isfinite(float(loss if not isinstance(loss, list) else loss[0]))
