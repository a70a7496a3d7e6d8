"""Conversion from and to the official PyTorch MAE and Hugging Face ViT-MAE.

The references are Hugging Face models with random weights built from tiny
configs; nothing is downloaded.
"""

# torch and transformers first: importing them after tensorflow can crash.
import torch
import transformers  # noqa: F401
import torch.nn.functional as F
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_mae  # noqa: E402
from conftest import random_images, random_noise, tiny_mae, to_numpy  # noqa: E402
from keras_mae.convert import (  # noqa: E402
    from_official_checkpoint,
    from_transformers,
    hf_to_official_state_dict,
    interpolate_pos_embed,
    load_official_state_dict,
    to_official_state_dict,
)
from keras_mae.layers import RandomMasking  # noqa: E402

TOLERANCE = 1e-5
# Heads of the tiny configs (not inferable from shapes) and Hugging Face's epsilon.
TINY_HEADS = dict(num_heads=4, decoder_num_heads=2, layer_norm_epsilon=1e-12)


def hf_config(**overrides):
    config = dict(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, decoder_hidden_size=16,
        decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=64, hidden_act="gelu", mask_ratio=0.75,
    )
    config.update(overrides)
    return ViTMAEConfig(**config)


def randomized(module, seed=0):
    """`module` in eval mode with every parameter (tables included) random."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim == 1:
                is_gain = "norm" in name and name.endswith("weight")
                param.copy_(1.0 + 0.1 * noise if is_gain else 0.1 * noise)
            elif param.ndim == 3:  # class and mask tokens, position tables
                param.copy_(0.2 * noise)
            else:  # Linear and Conv2d weights: unit-variance outputs
                param.copy_(noise / np.sqrt(np.prod(param.shape[1:])))
    return module.eval()


def nchw(images):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def encode_visible(encoder, images, noise, mask_ratio=0.75):
    """Encoder tokens of the visible patches, as Hugging Face's `ViTMAEModel`."""
    tokens = encoder.embed_patches(encoder.patchify(images))
    visible, mask, _ = RandomMasking(mask_ratio)(tokens, noise=noise)
    return encoder.encode_tokens(visible), mask


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(to_numpy(a), "float64") - np.asarray(b, "float64"))))


def assert_same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(to_numpy(x), to_numpy(y), err_msg=x.path)


def assert_matches_hf_pretraining(model, hf, images, noise):
    with torch.no_grad():
        ref = hf(nchw(images), noise=torch.from_numpy(noise))
    out = model(images, noise=noise, training=False)
    loss = model.compute_loss(x=images, y_pred=out, training=False)
    diffs = {
        "loss": max_diff(loss, ref.loss.numpy()),
        "pred": max_diff(out["pred"], ref.logits.numpy()),
        "mask": max_diff(out["mask"], ref.mask.numpy()),
    }
    np.testing.assert_array_equal(to_numpy(out["ids_restore"]), ref.ids_restore.numpy())
    assert all(d <= TOLERANCE for d in diffs.values()), diffs
    return diffs


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize(
    "old,new",
    [((4, 4), (6, 6)), ((4, 4), (6, 5)), ((5, 5), (3, 3)), ((3, 7), (8, 2)), ((14, 14), (16, 16))],
)
def test_interpolate_pos_embed_matches_torch_bicubic(old, new):
    table = np.random.RandomState(0).randn(1 + old[0] * old[1], 8).astype("float32")
    patches = torch.from_numpy(table[1:]).reshape(1, *old, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(patches, size=new, mode="bicubic", align_corners=False)
    ref = ref.permute(0, 2, 3, 1).reshape(-1, 8).numpy()
    old_grid = None if old[0] == old[1] else old
    out = interpolate_pos_embed(table, new, old_grid)
    assert out.shape == (1 + new[0] * new[1], 8) and out.dtype == table.dtype
    np.testing.assert_array_equal(out[0], table[0])
    np.testing.assert_allclose(out[1:], ref, atol=2e-6)
    batched = interpolate_pos_embed(table[None], new, old_grid)
    np.testing.assert_array_equal(batched[0], out)


def test_interpolate_pos_embed_checks_grids():
    table = np.zeros((1 + 12, 4), "float32")
    with pytest.raises(ValueError, match="old_grid"):
        interpolate_pos_embed(table, (4, 4))
    with pytest.raises(ValueError, match="old_grid"):
        interpolate_pos_embed(table, (4, 4), old_grid=(4, 4))
    assert interpolate_pos_embed(table, (3, 4), old_grid=(3, 4)) is table


# ------------------------------------------------------------- Hugging Face


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_from_transformers_pretraining_matches_hf(norm_pix_loss):
    hf = randomized(ViTMAEForPreTraining(hf_config(norm_pix_loss=norm_pix_loss)))
    model = from_transformers(hf)
    assert isinstance(model, keras_mae.MaskedAutoencoder)
    assert (model.encoder.num_heads, model.decoder_num_heads, model.norm_pix_loss) == (4, 2, norm_pix_loss)
    assert model.encoder.layer_norm_epsilon == 1e-12
    images, noise = random_images(2), random_noise(2, 16)
    assert_matches_hf_pretraining(model, hf, images, noise)


def test_from_transformers_encoder_matches_hf_model():
    hf = randomized(ViTMAEModel(hf_config()), seed=1)
    encoder = from_transformers(hf)
    assert isinstance(encoder, keras_mae.models.ViTEncoder)
    images, noise = random_images(2), random_noise(2, 16)
    with torch.no_grad():
        ref = hf(nchw(images), noise=torch.from_numpy(noise))
    latent, mask = encode_visible(encoder, images, noise)
    assert max_diff(latent, ref.last_hidden_state.numpy()) <= TOLERANCE
    assert max_diff(mask, ref.mask.numpy()) == 0.0


def test_encoder_on_all_patches_matches_hf_without_masking():
    # With mask_ratio 0 Hugging Face keeps every patch but still shuffles them
    # by the noise; ids_restore puts them back in grid order.
    hf = randomized(ViTMAEModel(hf_config(mask_ratio=0.0)), seed=2)
    encoder = from_transformers(hf)
    images, noise = random_images(2), random_noise(2, 16)
    with torch.no_grad():
        ref = hf(nchw(images), noise=torch.from_numpy(noise))
    hidden = ref.last_hidden_state.numpy()
    restore = ref.ids_restore.numpy()
    patches = np.take_along_axis(hidden[:, 1:], restore[:, :, None], axis=1)
    ref_tokens = np.concatenate([hidden[:, :1], patches], axis=1)
    assert max_diff(encoder(images), ref_tokens) <= TOLERANCE


def test_from_transformers_directory(tmp_path):
    hf = randomized(ViTMAEForPreTraining(hf_config(norm_pix_loss=True)), seed=3)
    hf.save_pretrained(tmp_path)
    model = from_transformers(str(tmp_path), seed=7)
    assert model.seed == 7 and model.norm_pix_loss
    assert_matches_hf_pretraining(model, hf, random_images(2), random_noise(2, 16))


def test_hf_key_names_of_older_transformers_are_understood():
    hf = randomized(ViTMAEForPreTraining(hf_config()), seed=4)
    current = hf.state_dict()
    renames = [
        ("vit.layers.", "vit.encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.k_proj", "attention.attention.key"),
        ("attention.v_proj", "attention.attention.value"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ]
    older = {}
    for key, value in current.items():
        for new, old in renames:
            key = key.replace(new, old)
        older[key] = value
    assert "vit.encoder.layer.0.attention.attention.query.weight" in older
    a, b = hf_to_official_state_dict(current), hf_to_official_state_dict(older)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_from_transformers_rejects_unsupported_config():
    with pytest.raises(ValueError, match="hidden_act='gelu_new'"):
        from_transformers(ViTMAEModel(hf_config(hidden_act="gelu_new")))
    with pytest.raises(ValueError, match="mlp_ratio"):
        from_transformers(ViTMAEForPreTraining(hf_config(decoder_intermediate_size=32)))


# ------------------------------------------------------------- official


def test_official_state_dict_layout_and_round_trip():
    model = tiny_mae()
    model.build()
    state = to_official_state_dict(model)
    assert state["patch_embed.proj.weight"].shape == (32, 3, 8, 8)
    assert state["pos_embed"].shape == (1, 17, 32)
    assert state["blocks.1.attn.qkv.weight"].shape == (96, 32)
    assert state["decoder_blocks.0.mlp.fc1.weight"].shape == (64, 16)
    assert state["decoder_pred.weight"].shape == (192, 16)
    assert len(state) == 4 + 12 * 2 + 2 + 4 + 12 + 4
    restored = from_official_checkpoint(state, num_heads=4, decoder_num_heads=2, seed=0)
    assert isinstance(restored, keras_mae.MaskedAutoencoder)
    assert (restored.encoder.depth, restored.decoder_depth, restored.encoder.hidden_dim) == (2, 1, 32)
    assert_same_weights(model, restored)
    again = to_official_state_dict(restored)
    for key in state:
        np.testing.assert_array_equal(state[key], again[key])
    images, noise = random_images(2), random_noise(2, 16)
    before, after = model(images, noise=noise), restored(images, noise=noise)
    np.testing.assert_array_equal(to_numpy(before["pred"]), to_numpy(after["pred"]))
    encoder_state = to_official_state_dict(model.encoder)
    assert sorted(encoder_state) == sorted(
        k for k in state if not (k.startswith("decoder") or k == "mask_token")
    )


def test_official_round_trip_of_encoder_and_torch_tensors():
    encoder = keras_mae.models.ViTEncoder(
        image_size=(32, 16), patch_size=8, hidden_dim=32, depth=1, num_heads=4
    )
    encoder.build()
    state = to_official_state_dict(encoder, as_torch=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not any(k.startswith("decoder") or k == "mask_token" for k in state)
    # 4 x 2 patches: not square, so the grid comes from image_size.
    restored = from_official_checkpoint(state, image_size=(32, 16), num_heads=4)
    assert isinstance(restored, keras_mae.models.ViTEncoder)
    assert_same_weights(encoder, restored)


def test_official_key_errors_name_the_keys():
    model = tiny_mae()
    model.build()
    state = to_official_state_dict(model)
    heads = dict(num_heads=4, decoder_num_heads=2)

    extra = dict(state, **{"head.weight": np.zeros((10, 32), "float32")})
    with pytest.raises(ValueError, match=r"Unused keys: \['head.weight'\]"):
        from_official_checkpoint(extra, **heads)

    missing = dict(state)
    del missing["blocks.1.norm2.bias"]
    with pytest.raises(ValueError, match=r"Missing keys: \['blocks.1.norm2.bias'\]"):
        from_official_checkpoint(missing, **heads)

    wrong = dict(state, **{"decoder_pred.bias": np.zeros((191,), "float32")})
    with pytest.raises(ValueError, match=r"decoder_pred.bias: \(191,\) vs expected \(192,\)"):
        from_official_checkpoint(wrong, **heads)

    with pytest.raises(ValueError, match="Pass `num_heads=...`"):
        from_official_checkpoint(state, decoder_num_heads=2)
    with pytest.raises(ValueError, match="Pass `decoder_num_heads=...`"):
        from_official_checkpoint(state, num_heads=4)
    with pytest.raises(ValueError, match="depth=3"):
        from_official_checkpoint(state, depth=3, **heads)

    other = tiny_mae(depth=1)
    with pytest.raises(ValueError, match="blocks.1.attn.qkv.weight"):
        load_official_state_dict(other, state)


def test_official_pth_and_safetensors_files_match_hf(tmp_path):
    from safetensors.numpy import save_file

    hf = randomized(ViTMAEForPreTraining(hf_config()), seed=5)
    state = to_official_state_dict(from_transformers(hf), as_torch=True)
    path = tmp_path / "mae_visualize_tiny.pth"
    torch.save({"model": state, "epoch": 3}, path)
    model = from_official_checkpoint(str(path), **TINY_HEADS)
    images, noise = random_images(2), random_noise(2, 16)
    assert_matches_hf_pretraining(model, hf, images, noise)

    encoder_keys = {
        k: v.numpy() for k, v in state.items() if not (k.startswith("decoder") or k == "mask_token")
    }
    save_file(encoder_keys, str(tmp_path / "mae_pretrain_tiny.safetensors"))
    encoder = from_official_checkpoint(
        tmp_path / "mae_pretrain_tiny.safetensors", num_heads=4, layer_norm_epsilon=1e-12
    )
    assert isinstance(encoder, keras_mae.models.ViTEncoder)
    np.testing.assert_allclose(
        to_numpy(encoder(images)), to_numpy(model.encoder(images)), atol=1e-6
    )
    with pytest.raises(ValueError, match="mask_ratio"):
        from_official_checkpoint(encoder_keys, num_heads=4, mask_ratio=0.5)

    import argparse

    training = tmp_path / "checkpoint-799.pth"
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-3)}, training)
    with pytest.raises(ValueError, match="weights_only"):
        from_official_checkpoint(training, **TINY_HEADS)


def test_new_image_size_interpolates_position_tables():
    model = tiny_mae()
    model.build()
    state = to_official_state_dict(model)
    bigger = from_official_checkpoint(state, image_size=(48, 40), num_heads=4, decoder_num_heads=2)
    assert bigger.encoder.grid == bigger.decoder.grid == (6, 5)
    np.testing.assert_allclose(
        to_numpy(bigger.encoder.position_embedding.table),
        interpolate_pos_embed(state["pos_embed"][0], (6, 5)),
    )
    np.testing.assert_allclose(
        to_numpy(bigger.decoder.position_embedding.table),
        interpolate_pos_embed(state["decoder_pos_embed"][0], (6, 5)),
    )
    assert bigger.num_patches == 30


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="eager JAX compiles every op anew for the base widths (~10 s on 2 cores); "
    "the conversion is numpy and backend-independent, checked on the other backends",
)
def test_base_size_encoder_matches_hf():
    # ViT-B/16 widths and depth on a 64 px image (16 patches) to stay fast.
    config = hf_config(
        image_size=64, patch_size=16, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072,
    )
    torch.manual_seed(6)
    hf = ViTMAEModel(config).eval()  # Hugging Face's own random initialisation
    encoder = from_transformers(hf)
    assert (encoder.hidden_dim, encoder.depth, encoder.num_heads) == (768, 12, 12)
    images, noise = random_images(2, size=64), random_noise(2, 16)
    with torch.no_grad():
        ref = hf(nchw(images), noise=torch.from_numpy(noise)).last_hidden_state.numpy()
    diff = max_diff(encode_visible(encoder, images, noise)[0], ref)
    print(f"base-size encoder vs HF: max abs diff {diff:.3g}")
    assert diff <= TOLERANCE
