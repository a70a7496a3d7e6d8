"""Image folders as users have them: every colour mode decodes to RGB, and a file that cannot be
decoded is named (or, asked for, left out and listed) in the library, the scan command and the recipes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_mae.data import load_source, pretrain_dataset, scan_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = {"truncated.jpg": "truncated or corrupt JPEG data", "empty.jpg": "empty file",
       "notes.jpg": "not a PNG, JPEG, BMP or GIF file", "cut.png": "truncated or corrupt PNG data"}


def _photo(seed=0, size=(40, 48)):
    """A smooth colour image (JPEG-friendly) with some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    base = np.stack([xx * 5, yy * 6, (xx + yy) * 3], -1) + rng.integers(0, 20, size + (3,))
    return np.clip(base, 0, 255).astype(np.uint8)


def _write_modes(folder):
    """One file per colour mode or disguise; returns {name: PIL's RGB image of the file}."""
    rgb = Image.fromarray(_photo())
    files = {"rgb.jpg": rgb, "gray.jpg": rgb.convert("L"), "cmyk.jpg": rgb.convert("CMYK"),
             "rgba.png": rgb.convert("RGBA"), "palette.png": rgb.convert("P"),
             "png_named.jpg": rgb, "gray.png": rgb.convert("L")}
    for name, image in files.items():
        image.save(folder / name, format="PNG" if name.endswith(".png") or name == "png_named.jpg"
                   else "JPEG", quality=95)
    return {name: np.asarray(Image.open(folder / name).convert("RGB")) for name in files}


def _write_bad(folder):
    jpeg = (folder / "rgb.jpg").read_bytes() if (folder / "rgb.jpg").exists() else None
    if jpeg is None:
        Image.fromarray(_photo(1)).save(folder / "tmp.jpg", quality=95)
        jpeg = (folder / "tmp.jpg").read_bytes()
        os.remove(folder / "tmp.jpg")
    (folder / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("a text file with an image's name")
    Image.fromarray(_photo(2)).save(folder / "full.png")
    png = (folder / "full.png").read_bytes()
    os.remove(folder / "full.png")
    (folder / "cut.png").write_bytes(png[:len(png) // 3])


def test_every_colour_mode_decodes_to_rgb_as_pil_converts_it(tmp_path):
    expected = _write_modes(tmp_path)
    source = load_source(str(tmp_path))
    names = sorted(expected)
    for name, element in zip(names, source.dataset):
        image = element["images"].numpy()
        assert image.shape == expected[name].shape, name
        tolerance = 0 if name.endswith(".png") or name == "png_named.jpg" else 6
        assert np.abs(image.astype(int) - expected[name]).max() <= tolerance, name


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_file_that_cannot_be_decoded_is_named_with_its_problem(tmp_path, name):
    _write_modes(tmp_path)
    _write_bad(tmp_path)
    for other in set(BAD) - {name}:
        os.remove(tmp_path / other)
    source = load_source(str(tmp_path))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(pretrain_dataset(source, 8, 4, drop_remainder=False))
    assert os.path.join(str(tmp_path), name) in str(error.value)
    assert BAD[name] in str(error.value)


def test_skip_bad_images_leaves_them_out_and_says_which(tmp_path):
    good = _write_modes(tmp_path)
    _write_bad(tmp_path)
    source = load_source(str(tmp_path), skip_bad_images=True)
    assert source.num_examples == len(good)
    assert sorted((os.path.basename(p), problem) for p, problem in source.skipped) == \
        sorted(BAD.items())
    batches = list(pretrain_dataset(source, 8, 7, seed=1))
    assert len(batches) == 1 and batches[0].shape == (7, 8, 8, 3)
    with pytest.raises(ValueError, match="skip_bad_images applies to folders of images only"):
        load_source("digits", skip_bad_images=True)


def test_scan_lists_the_bad_files_from_python_and_the_shell(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_modes(tmp_path / "a")
    _write_bad(tmp_path / "b")
    found = scan_images(str(tmp_path))
    assert sorted(os.path.relpath(p, tmp_path) for p, _ in found) == \
        sorted(os.path.join("b", name) for name in BAD)
    run = subprocess.run([sys.executable, "-m", "keras_mae.data.image_files", str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    assert run.returncode == 1, run.stderr[-2000:]
    lines = sorted(run.stdout.strip().splitlines())
    assert lines == sorted(f"{tmp_path / 'b' / name}\t{problem}" for name, problem in BAD.items())
    assert f"4 of {len(BAD) + 7} files cannot be decoded" in run.stderr


def _pretrain(folder, out, *extra):
    command = [sys.executable, os.path.join(REPO, "recipes", "pretrain.py"), "--config", "digits",
               "--dataset", str(folder), "--model-overrides",
               '{"image_size": 8, "patch_size": 4, "hidden_dim": 16, "depth": 1, "num_heads": 2, '
               '"decoder_hidden_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2}',
               "--image-size", "8", "--batch-size", "4", "--epochs", "1", "--warmup-epochs", "0",
               "--knn-every-epochs", "0", "--jit-compile", "false", "--output-dir", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))


def test_recipe_names_a_bad_file_or_skips_and_lists_it(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _write_modes(folder)
    (folder / "truncated.jpg").write_bytes((folder / "rgb.jpg").read_bytes()[:300])
    failed = _pretrain(folder, tmp_path / "failed")
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert (f"error: cannot decode image file '{folder / 'truncated.jpg'}' "
            "(truncated or corrupt JPEG data)") in failed.stderr
    assert "--skip-bad-images true" in failed.stderr
    skipped = _pretrain(folder, tmp_path / "skipped", "--skip-bad-images", "true")
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "bad images     1 skipped" in skipped.stdout
    assert (tmp_path / "skipped" / "bad_images.txt").read_text() == \
        f"{folder / 'truncated.jpg'}\ttruncated or corrupt JPEG data\n"
    assert "7 images" in skipped.stdout


@pytest.mark.parametrize("window_above", [0, None])   # every JPEG by its window; the default
def test_jpeg_crops_decode_only_the_window_and_equal_cropping_the_whole_image(
        tmp_path, monkeypatch, window_above):
    from keras_mae.data import image_files

    if window_above is not None:
        monkeypatch.setattr(image_files, "WINDOW_DECODE_MIN_BYTES", window_above)
    for k in range(12):
        Image.fromarray(_photo(k, size=(60, 80))).save(tmp_path / f"{k:02d}.jpg", quality=90)
    Image.fromarray(_photo(99, size=(60, 80))).save(tmp_path / "12.png")
    folder = load_source(str(tmp_path))
    whole = np.stack([e["images"].numpy() for e in folder.dataset])   # full decodes
    pixels = dict(seed=5, drop_remainder=False, crop_scale=(0.1, 0.5), mean=(0.0,),
                  std=(1 / 255,))   # outputs on the 0-255 scale
    from_files = next(iter(pretrain_dataset(folder, 32, 13, **pixels))).numpy()
    from_arrays = next(iter(pretrain_dataset(whole, 32, 13, **pixels))).numpy()
    difference = np.abs(from_files - from_arrays)
    # a JPEG window differs from the cropped whole image only where libjpeg upsamples
    # the colour planes at the window's edges
    assert difference.max() <= 4.0, difference.max()
    assert (difference > 1e-3).mean() < 0.02, (difference > 1e-3).mean()
