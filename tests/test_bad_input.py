"""Bad input, in one table: every case fails at once with an error naming the bad value.

Each row is `(id, trigger, exception type, regex)`; `trigger(tmp_path)` builds
whatever the case needs (files, models) and makes the one call that must fail.
The errors are `ValueError` raised where the value enters (constructor, first
call, source loading, recipe start), except an unreadable image inside a
folder, which `keras_mae.data` documents as failing while the dataset is read
(`tf.errors.InvalidArgumentError` naming the file).
"""

import numpy as np
import pytest
import tensorflow as tf

import keras_mae
from conftest import random_images, tiny_mae
from keras_mae import checkpoint
from keras_mae.data import load_source
from recipes import pretrain
from recipes.pretrain_configs import get_config


def images(shape, dtype="float32", fill=0.0):
    return np.full(shape, fill, dtype)


def unnormalised_images(tmp_path):
    # what a uint8 batch becomes with a plain float cast: 0-255 floats
    x = (random_images(2) * 255.0).round()
    x[0, 0, 0, 0] = 255.0
    tiny_mae()(x)


def nan_pixel(tmp_path):
    x = random_images(2)
    x[1, 5, 7, 2] = np.nan
    tiny_mae()(x)


def nan_pixel_in_dict_batch(tmp_path):
    x = random_images(2)
    x[0, 0, 0, 0] = np.inf
    tiny_mae()({"images": x})


def missing_images_key(tmp_path):
    tiny_mae()({"pixels": random_images(2)})


def empty_directory(tmp_path):
    load_source(str(tmp_path))


def unreadable_image(tmp_path):
    good = np.zeros((4, 4, 3), np.uint8)
    tf.io.write_file(str(tmp_path / "good.png"), tf.io.encode_png(good))
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    for _ in load_source(str(tmp_path)).dataset:
        pass


def unwritable_output_dir(tmp_path):
    # tests run as root, where permissions do not stop writes: a folder under
    # a regular file can never be created
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    pretrain.run(get_config("digits"), str(blocker / "run"))


def wrong_architecture_checkpoint(tmp_path):
    saved = tiny_mae(depth=1)
    saved.build()
    folder = checkpoint.save_checkpoint(str(tmp_path / "ckpt"), saved, 3, 0, 3)
    other = tiny_mae(depth=1, hidden_dim=64)  # refused on its config, before any weight is read
    checkpoint.restore_checkpoint(folder, other)


CASES = [
    ("rank_3_images", lambda t: tiny_mae()(images((2, 32, 32))),
     ValueError, r"rank 4.*shape=\(2, 32, 32\)"),
    ("rank_5_images", lambda t: tiny_mae()(images((1, 2, 32, 32, 3))),
     ValueError, r"rank 4.*shape=\(1, 2, 32, 32, 3\)"),
    ("one_channel_for_rgb_model", lambda t: tiny_mae()(images((2, 32, 32, 1))),
     ValueError, r"3 channels.*Received: 1 channels"),
    ("height_not_divisible_by_patch", lambda t: tiny_mae()(images((2, 30, 32, 3))),
     ValueError, r"divisible by the patch size 8.*shape=\(2, 30, 32, 3\)"),
    ("image_size_not_divisible_by_patch", lambda t: tiny_mae(image_size=(32, 36)),
     ValueError, r"divisible by the patch size 8.*image_size=\(32, 36\)"),
    ("images_of_another_size", lambda t: tiny_mae()(images((2, 64, 64, 3))),
     ValueError, r"size \(32, 32\).*shape=\(2, 64, 64, 3\)"),
    ("zero_size_batch", lambda t: tiny_mae()(images((0, 32, 32, 3))),
     ValueError, r"empty batch.*shape=\(0, 32, 32, 3\)"),
    ("uint8_images", lambda t: tiny_mae()(images((2, 32, 32, 3), "uint8", 200)),
     ValueError, r"float images.*dtype=uint8"),
    ("int32_images", lambda t: tiny_mae()(images((2, 32, 32, 3), "int32", 1)),
     ValueError, r"float images.*dtype=int32"),
    ("images_in_0_255", unnormalised_images,
     ValueError, r"up to 255 .*ImageNet mean and std"),
    ("nan_pixel", nan_pixel, ValueError, r"non-finite.*nan"),
    ("inf_pixel_in_dict_batch", nan_pixel_in_dict_batch, ValueError, r"non-finite.*inf"),
    ("dict_batch_without_images", missing_images_key,
     ValueError, r"'images' key.*\['pixels'\]"),
    ("noise_of_wrong_length",
     lambda t: tiny_mae()(random_images(2), noise=np.zeros((2, 15), "float32")),
     ValueError, r"noise.shape=\(2, 15\)"),
    ("mask_ratio_one", lambda t: tiny_mae(mask_ratio=1.0),
     ValueError, r"\[0, 1\).*mask_ratio=1.0"),
    ("mask_ratio_negative", lambda t: tiny_mae(mask_ratio=-0.25),
     ValueError, r"mask_ratio=-0.25"),
    ("mask_ratio_leaving_no_patch", lambda t: tiny_mae(mask_ratio=0.97),
     ValueError, r"mask_ratio=0.97 leaves no visible patch out of 16"),
    ("call_mask_ratio_one", lambda t: tiny_mae()(random_images(2), mask_ratio=1.0),
     ValueError, r"\[0, 1\).*mask_ratio=1.0"),
    ("encoder_heads_not_dividing_width", lambda t: tiny_mae(num_heads=5),
     ValueError, r"num_heads=5 does not divide hidden_dim=32"),
    ("decoder_heads_not_dividing_width", lambda t: tiny_mae(decoder_num_heads=3),
     ValueError, r"num_heads=3 does not divide decoder hidden_dim=16"),
    ("zero_depth", lambda t: tiny_mae(depth=0), ValueError, r"depth=0"),
    ("unknown_model_config", lambda t: keras_mae.models.build("mae_vit_gigantic"),
     ValueError, r"Unknown config 'mae_vit_gigantic'.*mae_vit_base_patch16"),
    ("unknown_pretrain_config", lambda t: get_config("nope"),
     ValueError, r"Unknown pretraining config 'nope'"),
    ("compile_with_a_loss", lambda t: tiny_mae().compile(optimizer="adam", loss="mse"),
     ValueError, r"loss='mse'"),
    ("missing_npz_file", lambda t: load_source(str(t / "absent.npz")),
     ValueError, r"names no data: no such file or folder\. A source is 'digits'.*source='.*absent\.npz'"),
    ("missing_folder", lambda t: load_source(str(t / "absent") + "/"),
     ValueError, r"no such file or folder\..*source='.*absent/'"),
    ("unknown_dataset_name", lambda t: load_source("not_a_dataset_name"),
     ValueError, r"not a registered TFDS name\..*source='not_a_dataset_name'"),
    ("empty_directory", empty_directory, ValueError, r"directory '.*' contains no images"),
    ("unreadable_image_file", unreadable_image,
     tf.errors.InvalidArgumentError, r"cannot decode image file.*broken\.jpg"),
    ("unwritable_output_dir", unwritable_output_dir,
     ValueError, r"Output directory '.*plain_file/run' is not writable"),
    ("checkpoint_of_another_architecture", wrong_architecture_checkpoint,
     ValueError, r"state\.weights\.h5 is of another model config.*hidden_dim: checkpoint 32 vs model 64"),
]


@pytest.mark.parametrize("trigger,error,message", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_naming_the_value(tmp_path, trigger, error, message):
    with pytest.raises(error, match=message):
        trigger(tmp_path)


def test_pixel_check_leaves_valid_images_and_tensors_alone():
    """Normalised numpy images pass; tensors (what fit and jit see) are not inspected.

    Training under jit through the same entry is exercised by the fit tests of
    test_masked_autoencoder.py and test_mixed_precision.py.
    """
    import keras

    model = tiny_mae(depth=1)
    mean = np.asarray(keras_mae.ops.IMAGENET_MEAN, "float32")
    std = np.asarray(keras_mae.ops.IMAGENET_STD, "float32")
    normalised = (random_images(2) - mean) / std
    assert tuple(model(normalised)["pred"].shape) == (2, 16, 192)
    # a backend tensor holding 0-255 values is not checked (no host sync)
    raw = keras.ops.convert_to_tensor(random_images(2) * 255.0)
    assert tuple(model(raw)["pred"].shape) == (2, 16, 192)


def test_the_encoder_and_the_classifier_check_pixels_as_the_mae_does():
    model = tiny_mae(depth=1)
    classifier = keras_mae.models.ViTClassifier(model.encoder, num_classes=3)
    raw = random_images(2) * 255.0
    for call in (model.encoder, classifier, lambda x: classifier(images=x)):
        with pytest.raises(ValueError, match="unnormalised"):
            call(raw)
    mean = np.asarray(keras_mae.ops.IMAGENET_MEAN, "float32")
    std = np.asarray(keras_mae.ops.IMAGENET_STD, "float32")
    assert tuple(classifier((random_images(2) - mean) / std).shape) == (2, 3)
