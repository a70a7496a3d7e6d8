"""The part of a functional-free model's config that every keras_mae model shares."""

import keras


def base_config(model):
    """`name`, `trainable` and `dtype` of a subclassed `keras.Model`, as `get_config` needs them.

    A subclassed model's `get_config` must start from these so that
    `from_config` rebuilds it with the same name and dtype policy (mixed
    precision included); the model then adds its own arguments.

    Args:
        model: a `keras.Model`.

    Returns:
        dict.

    Example:
    ```python
    def get_config(self):
        return {**base_config(self), "hidden_dim": self.hidden_dim}
    ```
    """
    return {
        "name": model.name,
        "trainable": model.trainable,
        "dtype": keras.saving.serialize_keras_object(model.dtype_policy),
    }
