"""Every public layer and model through `harness.py`: config, files, mixed precision, one fit step."""

import keras
import numpy as np
import pytest

from conftest import random_images, random_noise, tiny_mae
from harness import run_layer_test, run_model_test
from keras_mae import layers
from keras_mae.models import MAEDecoder, ViTClassifier, ViTEncoder


def rand(*shape, seed=0):
    return np.random.RandomState(seed).rand(*shape).astype("float32")


LAYERS = {
    "PatchEmbedding": (layers.PatchEmbedding, dict(hidden_dim=24), rand(2, 16, 48), {},
                       (2, 16, 24), True),
    "SinCosPositionEmbedding": (layers.SinCosPositionEmbedding, dict(grid=(2, 4), hidden_dim=16),
                                rand(3, 8, 16), {}, (3, 8, 16), False),
    "SinCosPositionEmbedding_trained": (layers.SinCosPositionEmbedding,
                                        dict(grid=(2, 4), hidden_dim=16, trainable_table=True),
                                        rand(3, 8, 16), {}, (3, 8, 16), True),
    "RandomMasking": (layers.RandomMasking, dict(mask_ratio=0.5, seed=0), rand(2, 8, 16),
                      dict(noise=random_noise(2, 8)), [(2, 4, 16), (2, 8), (2, 8)], False),
    "TransformerBlock": (layers.TransformerBlock, dict(hidden_dim=16, num_heads=4, drop_path_rate=0.1,
                                                       seed=1), rand(2, 5, 16), {}, (2, 5, 16), True),
    "MultiHeadSelfAttention": (layers.MultiHeadSelfAttention, dict(hidden_dim=16, num_heads=4),
                               rand(2, 5, 16), {}, (2, 5, 16), True),
    "DropPath": (layers.DropPath, dict(rate=0.5, seed=0), rand(4, 3, 8), {}, (4, 3, 8), False),
    "TokenDense": (layers.TokenDense, dict(units=6, activation="gelu"), rand(2, 7, 5), {},
                   (2, 7, 6), True),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer(name, tmp_path):
    layer_cls, kwargs, x, call_kwargs, shape, trains = LAYERS[name]
    # the masking keeps its inputs' dtype, so that float32 noise is not rounded
    mixed_dtype = "float32" if layer_cls is layers.RandomMasking else "bfloat16"
    run_layer_test(layer_cls, kwargs, x, tmp_path, call_kwargs=call_kwargs, output_shape=shape,
                   mixed_dtype=mixed_dtype, trains=trains)


def test_every_public_layer_is_in_the_table():
    public = {name for name in dir(layers) if isinstance(getattr(layers, name), type)
              and issubclass(getattr(layers, name), keras.layers.Layer)}
    assert public == {name.split("_")[0] for name in LAYERS}


ENCODER = dict(image_size=16, patch_size=8, hidden_dim=16, depth=2, num_heads=2)


def encoder(dtype=None, init_seed=0, **overrides):
    keras.utils.set_random_seed(init_seed)
    return ViTEncoder(**{**ENCODER, **overrides}, dtype=dtype)


def test_vit_encoder(tmp_path):
    run_model_test(lambda dtype=None, seed=0: encoder(dtype, seed, drop_path_rate=0.1, seed=3),
                   random_images(2, size=16), tmp_path)


def test_mae_decoder(tmp_path):
    ids_restore = np.argsort(random_noise(2, 16), axis=1).astype("int32")
    run_layer_test(MAEDecoder, dict(grid=(4, 4), patch_size=4, num_channels=3, hidden_dim=16,
                                    depth=1, num_heads=2),
                   rand(2, 5, 16), tmp_path, call_kwargs=dict(ids_restore=ids_restore),
                   output_shape=(2, 16, 48), fit=False)


def test_masked_autoencoder(tmp_path):
    def make(dtype=None, seed=0):
        keras.utils.set_random_seed(seed)
        return tiny_mae(depth=1, norm_pix_loss=True, image_size=(32, 16), dtype=dtype, seed=seed)

    run_model_test(make, random_images(2, size=(32, 16)), tmp_path,
                   call_kwargs=dict(noise=random_noise(2, 8)))


@pytest.mark.parametrize("pooling", ["avg", "cls"])
def test_vit_classifier(pooling, tmp_path):
    def make(dtype=None, seed=0):
        return ViTClassifier(encoder(dtype, seed), 3, pooling=pooling, head_init_std=0.5,
                             head_batch_norm=pooling == "cls")

    run_model_test(make, random_images(2, size=16), tmp_path, y=np.array([0, 2]))
