import os
import types

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import random_images, random_noise, tiny_mae, to_numpy
from keras_mae import callbacks, ops as mae_ops, visualize

MEAN = np.array(visualize.IMAGENET_MEAN, "float32")
STD = np.array(visualize.IMAGENET_STD, "float32")


class PerfectModel:
    """Predicts exactly its training target: reconstructions must equal the input."""

    def __init__(self, norm_pix_loss):
        self.encoder = types.SimpleNamespace(patch_size=8)
        self.norm_pix_loss = norm_pix_loss

    def __call__(self, images, noise=None, training=False):
        patches = mae_ops.patchify(images, 8)
        pred = mae_ops.norm_pix_target(patches) if self.norm_pix_loss else patches
        mask = (np.argsort(np.argsort(noise, 1), 1) >= 4).astype("float32")
        return {"pred": pred, "mask": mask}


@pytest.mark.parametrize("norm_pix", [False, True])
def test_panels_invert_normalisation(norm_pix):
    pixels = random_images(2)
    images = (pixels - MEAN) / STD
    noise = random_noise(2, 16)
    panels = visualize.reconstruction_panels(PerfectModel(norm_pix), images, noise)
    assert panels.shape == (2, 4, 32, 32, 3)
    np.testing.assert_allclose(panels[:, 0], pixels, atol=1e-5)
    np.testing.assert_allclose(panels[:, 2], pixels, atol=1e-4)
    np.testing.assert_allclose(panels[:, 3], pixels, atol=1e-4)
    # removed patches are grey in the masked panel, visible ones are the input
    mask = (np.argsort(np.argsort(noise, 1), 1) >= 4)
    row, col = divmod(int(np.argmax(mask[0])), 4)
    np.testing.assert_allclose(panels[0, 1, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8], 0.5)
    row, col = divmod(int(np.argmin(mask[0])), 4)
    block = np.s_[row * 8:(row + 1) * 8, col * 8:(col + 1) * 8]
    np.testing.assert_allclose(panels[0, 1][block], pixels[0][block], atol=1e-5)


def test_grid_png_and_visible_patches_pasted(tmp_path):
    model = tiny_mae()
    images = (random_images(3) - MEAN) / STD
    noise = random_noise(3, 16)
    path = str(tmp_path / "grid.png")
    grid = visualize.reconstruction_grid(model, images, noise=noise, path=path, scale=1)
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2, 3) and grid.dtype == np.uint8
    saved = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(saved[visualize.TITLE_HEIGHT:], grid)  # below the titles
    panels = visualize.reconstruction_panels(model, images, noise)
    mask = to_numpy(model(images, noise=noise)["mask"])
    row, col = divmod(int(np.argmin(mask[1])), 4)
    block = np.s_[row * 8:(row + 1) * 8, col * 8:(col + 1) * 8]
    np.testing.assert_allclose(panels[1, 3][block], panels[1, 0][block], atol=1e-5)
    # a mask ratio for these panels only: half the patches grey instead of 12 of 16
    half = visualize.reconstruction_panels(model, images, noise, mask_ratio=0.5)
    grey = lambda p: int(np.sum(np.all(p.reshape(4, 8, 4, 8, 3) == 0.5, axis=(1, 3, 4))))
    assert [grey(half[i, 1]) for i in range(3)] == [8, 8, 8]
    assert [grey(panels[i, 1]) for i in range(3)] == [12, 12, 12]
    assert model.mask_ratio == 0.75


def test_reconstruction_callback_writes_every_n_epochs(tmp_path):
    model = tiny_mae()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    images = random_images(4)
    callback = callbacks.ReconstructionCallback(images[:2], str(tmp_path), every_n_epochs=2)
    model.fit(images, batch_size=2, epochs=4, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(tmp_path)) == ["epoch_0002.png", "epoch_0004.png"]
    with pytest.raises(ValueError, match="every_n_epochs"):
        callbacks.ReconstructionCallback(images, str(tmp_path), every_n_epochs=0)


def test_stop_on_non_finite_loss_names_the_step():
    model = tiny_mae()
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    images = random_images(8) * 1e6
    with pytest.raises(FloatingPointError, match=r"at step \d+"):
        model.fit(images, batch_size=2, epochs=3, verbose=0,
                  callbacks=[callbacks.StopOnNonFiniteLoss(start_step=10)])


def test_reconstruction_grids_pose_the_same_masks_every_epoch(tmp_path):
    model = tiny_mae()
    images = random_images(3)
    callback = callbacks.ReconstructionCallback(images, str(tmp_path / "a"), seed=4)
    callback.set_model(model)
    body = visualize.TITLE_HEIGHT + (3 * 34 + 2) * 4  # above the caption, which names the epoch

    def grid(path):
        return np.asarray(Image.open(path).convert("RGB"))[:body]

    first, second = callback.write(1), callback.write(2)
    np.testing.assert_array_equal(grid(first), grid(second))
    other = callbacks.ReconstructionCallback(images, str(tmp_path / "b"), seed=5)
    other.set_model(model)
    assert not np.array_equal(grid(other.write(1)), grid(first))


def test_non_finite_loss_is_reported_at_its_global_step():
    callback = callbacks.StopOnNonFiniteLoss(start_step=10)
    callback.set_model(tiny_mae())
    for batch in range(3):  # global steps 11, 12, 13
        callback.on_train_batch_end(batch, {"loss": 0.5})
    with pytest.raises(FloatingPointError, match=r"Loss became inf at step 14 \(epoch batch 3\)"):
        callback.on_train_batch_end(3, {"loss": float("inf")})
    assert callback.model.stop_training


def test_saved_grid_has_column_titles_above_the_unchanged_grid(tmp_path):
    from PIL import Image

    model = tiny_mae()
    path = str(tmp_path / "grid.png")
    grid = visualize.reconstruction_grid(model, random_images(2), path=path, scale=4)
    saved = np.asarray(Image.open(path).convert("RGB"))
    strip, body = saved[:visualize.TITLE_HEIGHT], saved[visualize.TITLE_HEIGHT:]
    np.testing.assert_array_equal(body, np.repeat(np.repeat(grid, 4, 0), 4, 1))
    assert len(visualize.COLUMN_TITLES) == 4
    # every column's title leaves dark text pixels inside its own quarter of the strip
    quarters = np.array_split(np.arange(strip.shape[1]), 4)
    assert all((strip[:, q].min(axis=-1) < 128).sum() > 10 for q in quarters)
    untitled = str(tmp_path / "plain.png")
    visualize.save_png(grid, untitled)
    np.testing.assert_array_equal(np.asarray(Image.open(untitled).convert("RGB")), grid)


def test_norm_pix_panel_shows_the_normalised_prediction_of_hidden_patches_only():
    images = (random_images(2) - MEAN) / STD
    noise = random_noise(2, 16)
    plain = visualize.reconstruction_panels(PerfectModel(False), images, noise, with_prediction=True)
    assert plain.shape[1] == 4  # a pixel model predicts pixels: nothing more to show
    panels = visualize.reconstruction_panels(PerfectModel(True), images, noise, with_prediction=True)
    assert panels.shape == (2, 5, 32, 32, 3)
    target = mae_ops.unpatchify(mae_ops.norm_pix_target(mae_ops.patchify(images, 8)), 8, (4, 4), 3)
    hidden = np.repeat(np.repeat((np.argsort(np.argsort(noise, 1), 1) >= 4).reshape(2, 4, 4), 8, 1), 8, 2)
    want = np.where(hidden[..., None], np.clip(0.5 + to_numpy(target) / 4, 0, 1), 0.5)
    np.testing.assert_allclose(panels[:, 4], want, atol=1e-5)


def test_saved_grid_is_captioned_with_its_epoch_and_the_norm_pix_note(tmp_path):
    model = tiny_mae(norm_pix_loss=True)
    callback = callbacks.ReconstructionCallback(random_images(2), str(tmp_path))
    callback.set_model(model)
    first, later = callback.write(0), callback.write(3)
    grid = visualize.reconstruction_grid(model, random_images(2), noise=random_noise(2, 16))
    assert grid.shape[1] == 5 * 34 + 2  # the fifth column of a norm_pix model
    saved = [np.asarray(Image.open(p).convert("RGB")) for p in (first, later)]
    scale = 128 // 32
    body = visualize.TITLE_HEIGHT + grid.shape[0] * scale
    captions = [s[body:] for s in saved]
    assert all(c.shape[0] == visualize.CAPTION_HEIGHT and (c.min(-1) < 128).sum() > 50 for c in captions)
    # the epoch is written: the two captions differ, and nothing else does
    assert not np.array_equal(captions[0], captions[1])
    np.testing.assert_array_equal(saved[0][:body], saved[1][:body])
    plain = visualize.reconstruction_grid(tiny_mae(), random_images(2), path=str(tmp_path / "p.png"))
    assert np.asarray(Image.open(tmp_path / "p.png")).shape[0] == visualize.TITLE_HEIGHT + plain.shape[0] * scale
