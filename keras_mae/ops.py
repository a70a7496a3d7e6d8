"""Pure functions of the Masked Autoencoder: patches, position tables and the loss.

Everything here is stateless. Tensor functions use `keras.ops` only and run on
every Keras backend; position tables are numpy: the sin-cos table (built once)
and its bicubic resize to another patch grid (`interpolate_pos_embed`).

References:
    He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners",
    arXiv:2111.06377.
"""

import math

import numpy as np
from keras import ops

NORM_PIX_EPSILON = 1e-6
# Per-channel statistics of ImageNet RGB pixels in [0, 1], the normalisation of
# the official MAE and of `keras_mae.data`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_pair(value, name="image_size"):
    """Returns `value` as a `(height, width)` tuple of positive ints.

    Args:
        value: an int or a sequence of two ints.
        name: the argument name used in the error message.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ValueError(
            f"`{name}` must be an int or a pair of ints. Received: {name}={value!r}"
        )
    if not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
        for v in pair
    ):
        raise ValueError(
            f"`{name}` must hold positive ints. Received: {name}={value!r}"
        )
    return (int(pair[0]), int(pair[1]))


def grid_size(image_size, patch_size):
    """Returns the patch grid `(h, w)` of an image size, or raises.

    Args:
        image_size: int or `(height, width)`.
        patch_size: int, the side of a square patch.

    Returns:
        `(height // patch_size, width // patch_size)`.
    """
    height, width = to_pair(image_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"Image sides must be divisible by the patch size {patch_size}. "
            f"Received: image_size={(height, width)}"
        )
    return height // patch_size, width // patch_size


def patchify(images, patch_size):
    """Cuts images into flattened non-overlapping patches.

    Args:
        images: `(B, H, W, C)`, with `H` and `W` divisible by `patch_size`.
        patch_size: int `p`.

    Returns:
        `(B, L, p * p * C)` with `L = (H / p) * (W / p)`, patches in row-major
        grid order and each patch flattened in `(p, p, C)` order, as the
        official implementation.

    Example:
    ```python
    import numpy as np
    from keras_mae.ops import patchify
    patchify(np.zeros((2, 32, 32, 3), "float32"), 4).shape  # (2, 64, 48)
    ```
    """
    _, height, width, channels = images.shape
    h, w = grid_size((height, width), patch_size)
    p = patch_size
    x = ops.reshape(images, (-1, h, p, w, p, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, h * w, p * p * channels))


def unpatchify(patches, patch_size, grid, num_channels=3):
    """Inverse of `patchify`.

    Args:
        patches: `(B, L, p * p * C)`.
        patch_size: int `p`.
        grid: `(h, w)` with `h * w = L`.
        num_channels: int `C`.

    Returns:
        `(B, h * p, w * p, C)` images.

    Example:
    ```python
    import numpy as np
    from keras_mae.ops import patchify, unpatchify
    x = np.random.rand(2, 32, 16, 3).astype("float32")
    y = unpatchify(patchify(x, 4), 4, (8, 4), 3)  # equal to x
    ```
    """
    h, w = grid
    p = patch_size
    length, dim = patches.shape[1], patches.shape[2]
    if length != h * w or dim != p * p * num_channels:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit grid={grid}, "
            f"patch_size={p}, num_channels={num_channels}"
        )
    x = ops.reshape(patches, (-1, h, w, p, p, num_channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, h * p, w * p, num_channels))


def sincos_1d(dim, positions):
    """1-D sin-cos embedding of `positions` into `dim` features (numpy).

    Returns `(len(positions), dim)`: `[sin(pos * omega), cos(pos * omega)]` with
    `omega_i = 1 / 10000 ** (i / (dim / 2))`.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim. Received: {dim}")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = np.outer(np.asarray(positions, np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d_table(dim, grid, cls_token=True):
    """Fixed 2-D sin-cos position table, as the official MAE (numpy, float32).

    The first half of the features encodes the column (w) coordinate and the
    second half the row (h) coordinate, i.e. each row is
    `[sin(w), cos(w), sin(h), cos(h)]`, positions in row-major grid order.

    Args:
        dim: int, embedding width, divisible by 4.
        grid: `(h, w)` patch grid.
        cls_token: bool, prepend an all-zero row for the class token.

    Returns:
        `(h * w + cls_token, dim)` float32 array.
    """
    if dim % 4:
        raise ValueError(
            f"2-D sin-cos embedding needs a width divisible by 4. Received: {dim}"
        )
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    table = np.concatenate(
        [sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1
    )
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return table.astype("float32")


# Coefficient of the cubic convolution kernel used by PyTorch's bicubic mode
# (`torch.nn.functional.interpolate(mode="bicubic")`), which the official MAE
# uses to resize position tables. TensorFlow's bicubic resize uses -0.5.
CUBIC_COEFFICIENT = -0.75


def _cubic_weights(t, a=CUBIC_COEFFICIENT):
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractional positions `t`.

    Args:
        t: `(n,)` array in [0, 1), distance from the left tap at offset 0.
        a: the kernel's coefficient.

    Returns:
        `(n, 4)` weights summing to 1 per row.
    """

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def bicubic_matrix(in_size, out_size):
    """The `(out_size, in_size)` matrix resizing one axis as PyTorch's bicubic.

    Output pixel centres are mapped back with `align_corners=False`
    (`(i + 0.5) * in_size / out_size - 0.5`), taps beyond the borders are
    clamped to the edge, as `F.interpolate(mode="bicubic", align_corners=False)`
    does when given an output size.

    Args:
        in_size: int, input length along the axis.
        out_size: int, output length.

    Returns:
        float64 `(out_size, in_size)` array.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(
            f"Sizes must be positive. Received: in_size={in_size}, out_size={out_size}"
        )
    scale = in_size / out_size
    source = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    left = np.floor(source)
    weights = _cubic_weights(source - left)
    taps = left[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
    taps = np.clip(taps, 0, in_size - 1)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.repeat(np.arange(out_size), 4)
    np.add.at(matrix, (rows, taps.reshape(-1)), weights.reshape(-1))
    return matrix


def _square_grid(num_patches):
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f"Cannot infer the grid of a table with {num_patches} patch rows: it is "
            "not a square. Pass `old_grid=(h, w)`."
        )
    return side, side


def interpolate_pos_embed(table, new_grid, old_grid=None):
    """Resizes the patch rows of a position table to `new_grid`, bicubically.

    The class-token row (row 0) is kept as is; the `h * w` patch rows, in
    row-major grid order, are seen as an `(h, w, D)` image and resized to
    `new_grid` with PyTorch's bicubic kernel (`a = -0.75`,
    `align_corners=False`), as the official MAE's `interpolate_pos_embed` does
    before fine-tuning at another resolution. Works in float64 with numpy only
    and returns the input's dtype.

    Args:
        table: `(1 + h * w, D)` or `(1, 1 + h * w, D)` array (numpy or anything
            `np.asarray` accepts).
        new_grid: int or `(new_h, new_w)` target patch grid.
        old_grid: `(h, w)` of `table`; inferred as square when None.

    Returns:
        An array of the same rank as `table`, `(1 + new_h * new_w, D)` (or with
        a leading 1). The input itself when the grids are equal.

    Example:
    ```python
    import numpy as np
    from keras_mae.ops import interpolate_pos_embed
    table = np.random.rand(1 + 14 * 14, 768).astype("float32")
    interpolate_pos_embed(table, (16, 16)).shape  # (257, 768)
    ```
    """
    array = np.asarray(table)
    batched = array.ndim == 3
    if batched:
        if array.shape[0] != 1:
            raise ValueError(
                f"A 3-D position table must be (1, 1 + h * w, D). Received: shape={array.shape}"
            )
        array = array[0]
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(
            f"Expected a (1 + h * w, D) position table. Received: shape={np.shape(table)}"
        )
    num_patches, dim = array.shape[0] - 1, array.shape[1]
    if isinstance(new_grid, (int, np.integer)):
        new_grid = (int(new_grid), int(new_grid))
    new_grid = tuple(int(v) for v in new_grid)
    old_grid = _square_grid(num_patches) if old_grid is None else tuple(int(v) for v in old_grid)
    if old_grid[0] * old_grid[1] != num_patches:
        raise ValueError(
            f"old_grid={old_grid} has {old_grid[0] * old_grid[1]} patches but the "
            f"table has {num_patches} patch rows"
        )
    if len(new_grid) != 2 or min(new_grid) < 1:
        raise ValueError(f"new_grid must be two positive ints. Received: new_grid={new_grid}")
    if new_grid == old_grid:
        return table if not batched else np.asarray(table)
    patches = array[1:].astype(np.float64).reshape(old_grid[0], old_grid[1], dim)
    rows = bicubic_matrix(old_grid[0], new_grid[0])
    cols = bicubic_matrix(old_grid[1], new_grid[1])
    resized = np.einsum("ih,hwd,jw->ijd", rows, patches, cols)
    out = np.concatenate([array[:1].astype(np.float64), resized.reshape(-1, dim)], axis=0)
    out = out.astype(array.dtype)
    return out[None] if batched else out


def gather_tokens(tokens, ids):
    """Per-sample row gather: `out[b, k] = tokens[b, ids[b, k]]`.

    One gather of `B * K` rows from the `(B * N, D)` token table, the same
    values as `take_along_axis` with `ids` broadcast to `(B, K, D)`, without
    that `(B, K, D)` index tensor: faster, and its gradient keeps less memory
    under XLA; measured by `benchmarks/peak_memory.py`.

    Args:
        tokens: `(B, N, D)`.
        ids: `(B, K)` integer indices in `[0, N)`.

    Returns:
        `(B, K, D)` in the dtype of `tokens`.

    Example:
    ```python
    import numpy as np
    from keras_mae.ops import gather_tokens
    gather_tokens(np.arange(12.0).reshape(2, 3, 2), np.array([[2, 0], [1, 1]]))
    # [[[4, 5], [0, 1]], [[8, 9], [8, 9]]]
    ```
    """
    tokens = ops.convert_to_tensor(tokens)
    ids = ops.cast(ids, "int32")
    num_tokens, dim = tokens.shape[1], tokens.shape[2]
    batch = ops.shape(tokens)[0]
    rows = ids + ops.arange(batch, dtype="int32")[:, None] * num_tokens
    table = ops.reshape(tokens, (-1, dim))
    return ops.reshape(ops.take(table, ops.reshape(rows, (-1,)), axis=0), (-1, ids.shape[1], dim))


def norm_pix_target(patches, epsilon=NORM_PIX_EPSILON):
    """Normalises each patch by its own mean and unbiased variance.

    Args:
        patches: `(B, L, P)` pixel patches.
        epsilon: float added to the variance.

    Returns:
        `(B, L, P)`: `(x - mean) / sqrt(var + epsilon)` per patch, where `var`
        divides by `P - 1` as `torch.var` does in the reference code.
    """
    patches = ops.convert_to_tensor(patches)
    mean = ops.mean(patches, axis=-1, keepdims=True)
    centred = patches - mean
    n = patches.shape[-1]
    var = ops.sum(ops.square(centred), axis=-1, keepdims=True) / (n - 1)
    return centred / ops.sqrt(var + epsilon)


def masked_patch_loss(target, pred, mask):
    """Per-image mean squared error over the removed patches.

    Args:
        target: `(B, L, P)` target patches.
        pred: `(B, L, P)` predicted patches.
        mask: `(B, L)`, 1 for removed patches, 0 for visible ones.

    Returns:
        `(B,)`: for each image, the mean over its removed patches of the
        per-patch mean squared error. With the same number of removed patches
        in every image (as `RandomMasking` guarantees), the batch mean of this
        equals the official loss `sum(loss * mask) / sum(mask)`.
    """
    per_patch = ops.mean(ops.square(ops.subtract(pred, target)), axis=-1)
    removed = ops.sum(mask, axis=-1)
    return ops.divide_no_nan(ops.sum(per_patch * mask, axis=-1), removed)
