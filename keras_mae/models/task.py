"""What every task built on a `ViTEncoder` checks of the encoder it is given."""

import keras

from keras_mae.models.vit_encoder import ViTEncoder


def task_kwargs(task_name, encoder, kwargs):
    """The model arguments of a task on `encoder`: its dtype policy unless one is given.

    Raises `ValueError` before anything is built when `encoder` is not a
    `ViTEncoder`, or when a given policy differs from the encoder's (a task
    and its encoder compute in one precision).

    Args:
        task_name: str, the task's class name, for messages.
        encoder: the `encoder` argument.
        kwargs: dict of the task's other model arguments (`name`, `dtype`).

    Returns:
        A new dict of `kwargs` with `"dtype"` set.

    Example:
    ```python
    def __init__(self, encoder, **kwargs):
        super().__init__(**task_kwargs("MyTask", encoder, kwargs))
    ```
    """
    if not isinstance(encoder, ViTEncoder):
        raise ValueError(
            f"{task_name}: `encoder` must be a keras_mae.models.ViTEncoder. "
            f"Received: encoder={encoder!r}"
        )
    kwargs = dict(kwargs)
    policy = keras.dtype_policies.get(kwargs.get("dtype") or encoder.dtype_policy)
    if policy.name != encoder.dtype_policy.name:
        raise ValueError(
            f"{task_name}: the dtype policy {policy.name!r} differs from its encoder's "
            f"{encoder.dtype_policy.name!r}; build the encoder with the policy you want "
            "(`ViTEncoder(..., dtype=...)` or `encoder.copy(dtype=...)`)."
        )
    kwargs["dtype"] = policy
    return kwargs
