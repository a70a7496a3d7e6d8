"""The base class of the models built on a `ViTEncoder` (keras-hub's `Task` pattern)."""

import keras

from keras_mae.models.inputs import check_call_inputs
from keras_mae.models.serialization import base_config, config_arguments
from keras_mae.models.vit_encoder import ViTEncoder
from keras_mae.presets import PresetMethods


class Task(PresetMethods, keras.Model):
    """A model on a `ViTEncoder` object, which it shares rather than copies.

    What the tasks (`MaskedAutoencoder`, `ViTClassifier`) share: the check of
    the encoder and the dtype policy (a task computes in its encoder's),
    the encoder nested in the config (`get_config` / `from_config`), the
    pixel check of concrete numpy inputs in `__call__`, a `.keras` file that
    loads compiled as it was saved (`compile_from_config`), and
    `from_preset` / `save_to_preset` (`keras_mae.presets.PresetMethods`).
    A subclass adds its own arguments to `get_config`.

    Args:
        encoder: a `keras_mae.models.ViTEncoder`.
        **kwargs: `keras.Model` arguments (`name`, `dtype`: the encoder's
            policy when not given).

    Raises:
        ValueError: before anything is built, when `encoder` is not a
            `ViTEncoder`, or a given dtype policy differs from the encoder's.

    Example:
    ```python
    import keras
    from keras_mae.models import Task
    class MeanToken(Task):
        def call(self, images):
            return keras.ops.mean(self.encoder(images)[:, 1:], axis=1)
    ```
    """

    abstract = True  # read off this class only: `Task.from_preset` loads tasks, builds none
    input_argument = "images"  # the name of `call`'s first argument

    def __init__(self, encoder, **kwargs):
        name = type(self).__name__
        if not isinstance(encoder, ViTEncoder):
            raise ValueError(
                f"{name}: `encoder` must be a keras_mae.models.ViTEncoder. "
                f"Received: encoder={encoder!r}"
            )
        policy = keras.dtype_policies.get(kwargs.get("dtype") or encoder.dtype_policy)
        if policy.name != encoder.dtype_policy.name:
            raise ValueError(
                f"{name}: the dtype policy {policy.name!r} differs from its encoder's "
                f"{encoder.dtype_policy.name!r}; build the encoder with the policy you want "
                "(`ViTEncoder(..., dtype=...)` or `encoder.copy(dtype=...)`)."
            )
        super().__init__(**{**kwargs, "dtype": policy})
        self.encoder = encoder

    def __call__(self, *args, **kwargs):
        check_call_inputs(args, kwargs, self.input_argument)
        return super().__call__(*args, **kwargs)

    def compile_from_config(self, config):
        # Keras' own skips models whose `compile` is overridden; the tasks'
        # `compile` takes everything Keras saves.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {**base_config(self), "encoder": keras.saving.serialize_keras_object(self.encoder)}

    @classmethod
    def from_config(cls, config):
        config = config_arguments(cls, config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
