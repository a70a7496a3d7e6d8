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
                          mask_ratio=None):
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
        mean, std: the normalisation of `images` (ImageNet by default; None
            for images already in [0, 1]).
        mask_ratio: optional mask ratio for this call (the model's own when None).

    Returns:
        `(N, 4, H, W, C)` float32 in [0, 1]: original, masked (removed patches
        grey), reconstruction, reconstruction with visible patches pasted back.
    """
    images = np.asarray(images, np.float32)
    ratio = {} if mask_ratio is None else {"mask_ratio": mask_ratio}  # models without the argument
    out = model(images, noise=noise, training=False, **ratio)
    pred = _to_numpy(out["pred"]).astype(np.float32)
    mask = _to_numpy(out["mask"]).astype(np.float32)[..., None]
    patch = model.encoder.patch_size
    grid = (images.shape[1] // patch, images.shape[2] // patch)
    patches = _to_numpy(mae_ops.patchify(images, patch))
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
    return np.stack([original, masked, recon, pasted], axis=1)


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

TITLE_HEIGHT = 28
"""Pixels of the title strip `save_png` adds above an image given `titles` (two text lines)."""


def _title_strip(width, titles):
    """A white `(TITLE_HEIGHT, width)` PIL image with `titles` centred over equal columns."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, TITLE_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    column = width / len(titles)
    for j, title in enumerate(titles):
        lines, words = [""], title.split()
        for word in words:  # wrap onto a second line when the column is narrow
            trial = f"{lines[-1]} {word}".strip()
            if lines[-1] and draw.textlength(trial) > column - 4:
                lines.append(word)
            else:
                lines[-1] = trial
        for k, line in enumerate(lines[:2]):
            x = j * column + (column - draw.textlength(line)) / 2
            draw.text((max(x, j * column), 2 + 12 * k), line, fill=(0, 0, 0))
    return strip


def save_png(image, path, scale=1, titles=None):
    """Writes a `(H, W, 3)` uint8 image as PNG atomically (temp file, then rename).

    `titles`: optional column titles, drawn in a white strip of `TITLE_HEIGHT`
    pixels above the (scaled) image, one per equal-width column.
    """
    from PIL import Image

    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    if titles:
        titled = Image.new("RGB", (picture.width, picture.height + TITLE_HEIGHT), (255, 255, 255))
        titled.paste(_title_strip(picture.width, titles), (0, 0))
        titled.paste(picture, (0, TITLE_HEIGHT))
        picture = titled
    with files.atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path


def reconstruction_grid(model, images, noise=None, path=None, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD, scale=None, mask_ratio=None):
    """One image with a row per input: original, masked, reconstruction, pasted.

    The PNG written to `path` carries `COLUMN_TITLES` in a strip above the
    grid; the returned array is the grid alone.

    Args:
        model: a `MaskedAutoencoder`.
        images: `(N, H, W, C)` float images, normalised with `mean`/`std`.
        noise: optional `(N, L)` noise fixing the masks.
        path: optional PNG path to write.
        mean, std: the normalisation of `images` (None: already in [0, 1]).
        scale: integer upscaling of the saved PNG (default: to about 128 px
            per panel for small images).
        mask_ratio: optional mask ratio for these panels (the model's own
            when None).

    Returns:
        `(N * (H + 2) + 2, 4 * (W + 2) + 2, 3)` uint8 grid.

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
    grid = panels_to_grid(reconstruction_panels(model, images, noise, mean, std, mask_ratio))
    if path is not None:
        if scale is None:
            scale = max(1, 128 // max(np.shape(images)[1:3]))
        save_png(grid, path, scale=scale, titles=COLUMN_TITLES)
    return grid
