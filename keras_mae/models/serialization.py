"""What every keras_mae model shares: the base of its config, its weights by path below it.

Model configs carry `keras_mae.formats.FORMAT_VERSION` (`base_config`) and are
checked against it when read (`config_arguments`).
"""

import keras

from keras_mae.formats import FORMAT_VERSION, check_format_version

def base_config(model):
    """`name`, `trainable`, `dtype` and `format_version` of a subclassed `keras.Model`'s config.

    A subclassed model's `get_config` must start from these so that
    `from_config` rebuilds it with the same name and dtype policy (mixed
    precision included) and knows the layout it reads
    (`config_arguments`); the model then adds its own arguments.

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
        "format_version": FORMAT_VERSION,
    }


def config_arguments(cls, config):
    """The constructor arguments in a saved model config: a copy without its format version.

    Args:
        cls: the model class, named in the error of a version this code cannot read.
        config: dict from the model's `get_config`.

    Returns:
        dict.

    Example:
    ```python
    @classmethod
    def from_config(cls, config):
        return cls(**config_arguments(cls, config))
    ```
    """
    check_format_version(config, f"The saved {cls.__name__} config")
    return {key: value for key, value in config.items() if key != "format_version"}


def weights_below(layer):
    """`{path below the layer: variable}` of a built layer, e.g. `"encoder_block_0/fc1/kernel"`.

    Variable paths start with the path of the model a layer was first built in;
    the keys here do not depend on it.
    """
    prefix = f"{layer.path}/"
    return {v.path[len(prefix):] if v.path.startswith(prefix) else v.path: v
            for v in layer.weights}
