"""The models' input contract: what a batch may look like, and pixels a model accepts."""

import numpy as np

IMAGES_KEY = "images"
# Pixels in [0, 1] normalised with the ImageNet mean and std lie within about
# [-2.2, 2.7]; a larger magnitude means the images were not normalised.
MAX_ABS_PIXEL = 20.0


def images_from_batch(inputs):
    """Returns the images of a batch: images, `(images, labels, ...)` or `{"images": ...}`."""
    if isinstance(inputs, dict):
        if IMAGES_KEY not in inputs:
            raise ValueError(
                f"A dict batch needs an {IMAGES_KEY!r} key. Received keys: {sorted(inputs)}"
            )
        return inputs[IMAGES_KEY]
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise ValueError("Received an empty tuple as a batch; expected images first.")
        return inputs[0]
    return inputs


def check_pixel_values(images):
    """Raises `ValueError` for non-finite or unnormalised pixels of a numpy batch.

    Only concrete float numpy arrays are inspected (a cheap pass on the host):
    tensors, as `fit` and traced functions see them, pass through untouched.
    """
    if not isinstance(images, np.ndarray) or images.size == 0:
        return
    if not np.issubdtype(images.dtype, np.floating):
        return
    finite = np.isfinite(images)
    if not finite.all():
        bad = images[~finite]
        raise ValueError(
            f"Images contain {bad.size} non-finite pixel value(s), e.g. {bad.flat[0]!r} "
            f"(nan or inf). Received: shape={images.shape}"
        )
    peak = float(np.abs(images).max())
    if peak > MAX_ABS_PIXEL:
        raise ValueError(
            f"Images hold pixel values up to {peak:g} in absolute value (max |x| > "
            f"{MAX_ABS_PIXEL:g}): they look unnormalised (0-255?). Expected pixels in "
            f"[0, 1] normalised with the ImageNet mean and std: "
            f"(images / 255 - keras_mae.ops.IMAGENET_MEAN) / keras_mae.ops.IMAGENET_STD, "
            f"as `keras_mae.data` produces."
        )


def check_call_inputs(args, kwargs, name):
    """A model's `__call__` check: the pixels of a concrete numpy batch, before Keras converts it.

    Tensors (as `fit` and traced functions pass them) are not inspected.

    Args:
        args, kwargs: the `__call__` arguments.
        name: the name of the call's first argument.

    Example:
    ```python
    def __call__(self, *args, **kwargs):
        check_call_inputs(args, kwargs, "images")
        return super().__call__(*args, **kwargs)
    ```
    """
    check_pixel_values(images_from_batch(args[0] if args else kwargs.get(name)))
