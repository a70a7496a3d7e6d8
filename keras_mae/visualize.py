"""Reconstruction grids: what the Masked Autoencoder sees and what it predicts."""

import keras
import numpy as np

from keras_mae import files
from keras_mae import ops as mae_ops

IMAGENET_MEAN = mae_ops.IMAGENET_MEAN
IMAGENET_STD = mae_ops.IMAGENET_STD
PANELS = ("original", "masked", "reconstruction", "reconstruction + visible")


def _to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def denormalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """`(..., C)` normalised images -> pixels in [0, 1] (clipped).

    `mean`/`std` of None means the images are already in [0, 1].
    """
    images = np.asarray(images, np.float32)
    channels = images.shape[-1]
    if mean is not None:
        mean = np.resize(np.asarray(mean, np.float32), channels)
        std = np.resize(np.asarray(std, np.float32), channels)
        if channels == 1:
            mean, std = np.mean(mean), np.mean(std)
        images = images * std + mean
    return np.clip(images, 0.0, 1.0)


def reconstruction_panels(model, images, noise=None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                          mask_ratio=None, with_prediction=False):
    """The four panels of the paper's demo for each image, as float arrays.

    Predictions of a model trained with `norm_pix_loss` are per-patch
    normalised pixels: they are mapped back to pixels with the mean and
    (unbiased) variance of each patch of the *input image*. For removed patches
    that borrows the true patch's colour statistics, which the model never saw:
    the panel then shows the predicted structure and texture, not the predicted
    colour. A model trained without `norm_pix_loss` predicts pixels directly and
    is shown as is (the official `mae_visualize_*` checkpoints are of this kind).

    Args:
        model: a `MaskedAutoencoder`.
        images: `(N, H, W, C)` float images as the model takes them.
        noise: optional `(N, L)` noise fixing the masks.
        mean: the normalisation mean of `images` (ImageNet by default; None
            for images already in [0, 1]).
        std: the normalisation std of `images` (ImageNet by default; None
            for images already in [0, 1]).
        mask_ratio: optional mask ratio for this call (the model's own when None).
        with_prediction: for a `norm_pix_loss` model, add a fifth panel: the
            prediction itself on the removed patches, per-patch normalised
            pixels shown as `0.5 + x / 4` (visible patches grey).

    Returns:
        `(N, P, H, W, C)` float32 in [0, 1]: original, masked (removed patches
        grey), reconstruction, reconstruction with visible patches pasted back
        (`P` = 4), and with `with_prediction` on a `norm_pix_loss` model the
        normalised prediction (`P` = 5).
    """
    images = np.asarray(images, np.float32)
    ratio = {} if mask_ratio is None else {"mask_ratio": mask_ratio}  # models without the argument
    out = model(images, noise=noise, training=False, **ratio)
    pred = _to_numpy(out["pred"]).astype(np.float32)
    mask = _to_numpy(out["mask"]).astype(np.float32)[..., None]
    patch = model.encoder.patch_size
    grid = (images.shape[1] // patch, images.shape[2] // patch)
    patches = _to_numpy(mae_ops.patchify(images, patch))
    normalised = np.clip(0.5 + pred / 4, 0.0, 1.0) * mask + 0.5 * (1 - mask)
    if model.norm_pix_loss:
        patch_mean = patches.mean(-1, keepdims=True)
        patch_var = patches.var(-1, ddof=1, keepdims=True)
        pred = pred * np.sqrt(patch_var + mae_ops.NORM_PIX_EPSILON) + patch_mean

    def to_image(x):
        return _to_numpy(mae_ops.unpatchify(x, patch, grid, images.shape[-1]))

    original = denormalize(images, mean, std)
    recon = denormalize(to_image(pred), mean, std)
    pasted = denormalize(to_image(pred * mask + patches * (1 - mask)), mean, std)
    pixel_mask = to_image(np.broadcast_to(mask, patches.shape))
    masked = original * (1 - pixel_mask) + 0.5 * pixel_mask
    panels = [original, masked, recon, pasted]
    if with_prediction and model.norm_pix_loss:
        panels.append(to_image(normalised))
    return np.stack(panels, axis=1)


def panels_to_grid(panels, padding=2):
    """`(N, P, H, W, C)` floats in [0, 1] -> one `(rows, cols, 3)` uint8 image."""
    n, p, h, w, c = panels.shape
    if c == 1:
        panels = np.repeat(panels, 3, axis=-1)
    grid = np.ones((n * (h + padding) + padding, p * (w + padding) + padding, 3), np.float32)
    for i in range(n):
        for j in range(p):
            top, left = padding + i * (h + padding), padding + j * (w + padding)
            grid[top:top + h, left:left + w] = panels[i, j, ..., :3]
    return np.round(grid * 255).astype(np.uint8)


COLUMN_TITLES = ("original", "masked", "reconstruction", "reconstruction + visible")
"""The columns of `reconstruction_grid`, left to right."""

PREDICTION_TITLE = "prediction (normalised pixels)"
"""The fifth column of `reconstruction_grid` for a `norm_pix_loss` model."""

NORM_PIX_CAPTION = ("norm_pix model: a hidden patch is drawn with the mean and variance of the input's "
                    "patch (the model predicts normalised pixels only; last column)")
"""The caption of `reconstruction_grid` for a `norm_pix_loss` model."""

CAPTION_LINE = 12
"""Pixels per caption line of `save_png`."""

CAPTION_HEIGHT = 4 + 3 * CAPTION_LINE
"""Pixels of the caption strip `save_png` adds below an image given `caption` (three lines at most)."""

TITLE_HEIGHT = 28
"""Pixels of the title strip `save_png` adds above an image given `titles` (two text lines)."""


def _wrap(draw, text, width):
    """`text`'s words in lines of at most `width` pixels as `draw` measures them."""
    lines = [""]
    for word in text.split():
        trial = f"{lines[-1]} {word}".strip()
        if lines[-1] and draw.textlength(trial) > width:
            lines.append(word)
        else:
            lines[-1] = trial
    return lines


def _title_strip(width, titles):
    """A white `(TITLE_HEIGHT, width)` PIL image with `titles` centred over equal columns."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, TITLE_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    column = width / len(titles)
    for j, title in enumerate(titles):
        for k, line in enumerate(_wrap(draw, title, column - 4)[:2]):
            x = j * column + (column - draw.textlength(line)) / 2
            draw.text((max(x, j * column), 2 + CAPTION_LINE * k), line, fill=(0, 0, 0))
    return strip


def _caption_strip(width, caption):
    """A white `(CAPTION_HEIGHT, width)` PIL image with `caption` wrapped to `width` (three lines at most)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, CAPTION_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, line in enumerate(_wrap(draw, caption, width - 8)[:3]):
        draw.text((4, 2 + CAPTION_LINE * k), line, fill=(0, 0, 0))
    return strip


def save_png(image, path, scale=1, titles=None, caption=None):
    """Writes a `(H, W, 3)` uint8 image as PNG atomically (temp file, then rename).

    Args:
        image: `(H, W, 3)` uint8.
        path: the PNG file.
        scale: integer upscaling (nearest neighbour).
        titles: optional column titles, drawn in a white strip of
            `TITLE_HEIGHT` pixels above the (scaled) image, one per
            equal-width column.
        caption: optional text, wrapped in a white strip of `CAPTION_HEIGHT`
            pixels below the image.

    Returns:
        `path`.
    """
    from PIL import Image

    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    top = _title_strip(picture.width, titles) if titles else None
    bottom = _caption_strip(picture.width, caption) if caption else None
    if top or bottom:
        height = picture.height + (top.height if top else 0) + (bottom.height if bottom else 0)
        framed = Image.new("RGB", (picture.width, height), (255, 255, 255))
        if top:
            framed.paste(top, (0, 0))
        framed.paste(picture, (0, top.height if top else 0))
        if bottom:
            framed.paste(bottom, (0, height - bottom.height))
        picture = framed
    with files.atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path


def reconstruction_grid(model, images, noise=None, path=None, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD, scale=None, mask_ratio=None, caption=None):
    """One image with a row per input: original, masked, reconstruction, pasted.

    A `norm_pix_loss` model gets a fifth column, its normalised prediction
    (`reconstruction_panels(..., with_prediction=True)`). The PNG written to
    `path` carries the column titles in a strip above the grid and, below it,
    `caption` and, for a `norm_pix_loss` model, `NORM_PIX_CAPTION`; the
    returned array is the grid alone.

    Args:
        model: a `MaskedAutoencoder`.
        images: `(N, H, W, C)` float images, normalised with `mean`/`std`.
        noise: optional `(N, L)` noise fixing the masks.
        path: optional PNG path to write.
        mean: the normalisation mean of `images` (None: already in [0, 1]).
        std: the normalisation std of `images` (None: already in [0, 1]).
        scale: integer upscaling of the saved PNG (default: to about 128 px
            per panel for small images).
        mask_ratio: optional mask ratio for these panels (the model's own
            when None).
        caption: optional text for the PNG (e.g. the epoch).

    Returns:
        `(N * (H + 2) + 2, P * (W + 2) + 2, 3)` uint8 grid, `P` panels (4, or
        5 for a `norm_pix_loss` model).

    Example:
    ```python
    import numpy as np
    import keras_mae
    model = keras_mae.models.mae_vit_tiny_patch4(depth=1, decoder_depth=1)
    grid = keras_mae.visualize.reconstruction_grid(
        model, np.random.rand(2, 32, 32, 3).astype("float32"), path="/tmp/grid.png")
    grid.shape  # (70, 138, 3)
    ```
    """
    panels = reconstruction_panels(model, images, noise, mean, std, mask_ratio, with_prediction=True)
    grid = panels_to_grid(panels)
    if path is not None:
        if scale is None:
            scale = max(1, 128 // max(np.shape(images)[1:3]))
        titles, notes = COLUMN_TITLES, [caption] if caption else []
        if panels.shape[1] == 5:
            titles, notes = titles + (PREDICTION_TITLE,), notes + [NORM_PIX_CAPTION]
        save_png(grid, path, scale=scale, titles=titles, caption="; ".join(notes) or None)
    return grid
