"""What every keras_mae model shares: the base of its config, its weights by path below it."""

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


def weights_below(layer):
    """`{path below the layer: variable}` of a built layer, e.g. `"encoder_block_0/fc1/kernel"`.

    Variable paths start with the path of the model a layer was first built in;
    the keys here do not depend on it.
    """
    prefix = f"{layer.path}/"
    return {v.path[len(prefix):] if v.path.startswith(prefix) else v.path: v
            for v in layer.weights}
