"""Resizing a position table to a new patch grid by bicubic interpolation."""

import math

import numpy as np

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
    from keras_mae.convert import interpolate_pos_embed
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
