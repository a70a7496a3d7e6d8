"""What every task built on a `ViTEncoder` shares: the check of its encoder, its config."""

import keras

from keras_mae.models.serialization import base_config
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


def task_config(task, **fields):
    """A task's `get_config`: name, dtype, trainable, its encoder's nested config, `fields`."""
    return {**base_config(task), "encoder": keras.saving.serialize_keras_object(task.encoder),
            **fields}


def config_with_encoder(config, legacy_encoder):
    """A copy of a task's saved config holding its encoder object, for `from_config`.

    Args:
        config: dict from `task_config` (the encoder nested), or of an older
            layout without an `"encoder"` key.
        legacy_encoder: function of the copied config that pops the older
            layout's encoder fields and returns the `ViTEncoder` they describe.

    Returns:
        dict of the task's constructor arguments.
    """
    config = dict(config)
    if "encoder" in config:
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
    else:
        config["encoder"] = legacy_encoder(config)
    return config
