"""Backend and speed choices, in one place.

Every choice that depends on the backend or the device is made here, and the
layers, models and recipes read it from here. Each has a default (`"auto"`,
resolved per backend and device as the table says), an environment variable
read when the choice is first needed, and a setter that wins over both.
None of them changes what a model computes beyond float rounding; they trade
speed against memory. `benchmarks/train_throughput.py` and
`benchmarks/peak_memory.py` measure each "auto" choice against the others
(`benchmarks/RESULTS.md`).

| choice | setter | variable | `"auto"` means |
|---|---|---|---|
| attention kernel | `set_attention_kernel` | `KERAS_MAE_ATTENTION` | `"explicit"` on PyTorch's CPU in 16-bit floats, `"keep_weights"` on JAX's CPU, else `"fused"` |
| recomputed norms and GELU | `set_remat` | `KERAS_MAE_REMAT` | on for JAX and TensorFlow, off for PyTorch |
| the MAE's compiled PyTorch step | `set_torch_compiled_step` | `KERAS_MAE_TORCH_COMPILED_STEP` | on, for models without stochastic depth |
| glibc's heap kept (recipes on JAX) | `set_keep_heap` | `KERAS_MAE_KEEP_HEAP` | on for JAX on Linux with glibc |

`jit_compile="auto"` in `MaskedAutoencoder.compile` and `ViTClassifier.compile`
resolves through `resolve_jit_compile`.

Example:
```python
import keras_mae
keras_mae.config.set_remat(False)  # blocks built from now on keep activations
keras_mae.config.describe()["remat"]  # False
keras_mae.config.set_remat("auto")
```
"""

import contextlib
import os
import sys

# Keras is imported inside the functions that need it: a recipe reads
# `keep_heap()` before anything imports Keras, and restarts itself on it.

ATTENTION_KERNELS = ("fused", "explicit", "keep_weights")
_SET = {}  # choice -> value given to a setter; absent: the environment, then "auto"


def _switch(value, name):
    """`"auto"`, a bool, or on/off/true/false/1/0 -> "auto", True or False."""
    if value == "auto" or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be 'auto', true or false. Received: {name}={value!r}")


def _kernel(value, name):
    if value == "auto" or value in ATTENTION_KERNELS:
        return value
    raise ValueError(f"{name} must be 'auto' or one of {ATTENTION_KERNELS}. "
                     f"Received: {name}={value!r}")


# choice -> (its environment variable, the parser of its values)
_CHOICES = {
    "attention_kernel": ("KERAS_MAE_ATTENTION", _kernel),
    "remat": ("KERAS_MAE_REMAT", _switch),
    "torch_compiled_step": ("KERAS_MAE_TORCH_COMPILED_STEP", _switch),
    "keep_heap": ("KERAS_MAE_KEEP_HEAP", _switch),
}


def setting(choice):
    """The unresolved value of `choice`: the setter's, else its variable's, else `"auto"`.

    Args:
        choice: one of `"attention_kernel"`, `"remat"`, `"torch_compiled_step"`,
            `"keep_heap"`.

    Returns:
        `"auto"`, a bool, or (for the attention kernel) a kernel name.
    """
    _check_names([choice])
    if choice in _SET:
        return _SET[choice]
    variable, parse = _CHOICES[choice]
    return parse(os.environ.get(variable, "auto"), variable)


def _check_names(names):
    unknown = sorted(set(names) - set(_CHOICES))
    if unknown:
        raise ValueError(f"Unknown choices. Expected some of {sorted(_CHOICES)}. "
                         f"Received: {unknown}")


def _set(choice, value):
    _SET[choice] = _CHOICES[choice][1](value, choice)


def set_attention_kernel(kernel):
    """Chooses the attention kernel of `MultiHeadSelfAttention` from the next call on.

    Args:
        kernel: `"auto"`; `"fused"` (`keras.ops.dot_product_attention`, the
            backend's fused kernel); `"explicit"` (`attention.explicit_attention`:
            softmax of the products, then the values); `"keep_weights"`
            (`attention.attention_keeping_weights`: the explicit values, keeping
            only the attention weights for the backward pass; JAX only).
    """
    _set("attention_kernel", kernel)


def set_remat(value):
    """Whether `TransformerBlock`s built from now on recompute their norms and GELU in the backward pass.

    Args:
        value: `"auto"`, True or False.
    """
    _set("remat", value)


def set_torch_compiled_step(value):
    """Whether a `MaskedAutoencoder` compiled with `jit_compile=True` on PyTorch uses its own step.

    The own step (`keras_mae.models.torch_step`) compiles the forward pass and
    the loss as one graph; off, Keras compiles its `train_step` with
    `torch.compile`.

    Args:
        value: `"auto"`, True or False.
    """
    _set("torch_compiled_step", value)


def set_keep_heap(value):
    """Whether a recipe on JAX restarts itself once with glibc's heap kept (`HEAP_KEPT_ENV`).

    Args:
        value: `"auto"`, True or False.
    """
    _set("keep_heap", value)


@contextlib.contextmanager
def choices(**values):
    """Sets choices inside a `with` block and restores the previous ones after it.

    Example:
    ```python
    import keras_mae
    with keras_mae.config.choices(remat=False, attention_kernel="explicit"):
        model = keras_mae.models.mae_vit_tiny_patch4()
    ```
    """
    _check_names(values)
    before = {name: _SET[name] for name in values if name in _SET}
    try:
        for name, value in values.items():
            _set(name, value)
        yield
    finally:
        for name in values:
            _SET.pop(name, None)
        _SET.update(before)


def attention_kernel(x=None):
    """The attention kernel for inputs like `x` (a tensor, for its device and dtype).

    Returns:
        One of `ATTENTION_KERNELS`.
    """
    kernel = setting("attention_kernel")
    if kernel != "auto":
        return kernel
    import keras

    backend = keras.backend.backend()
    if backend == "torch" and x is not None and getattr(x.device, "type", None) == "cpu" \
            and keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16"):
        return "explicit"
    if backend == "jax":
        import jax

        if jax.default_backend() == "cpu":
            return "keep_weights"
    return "fused"


def flash_attention_argument():
    """`flash_attention` for `keras.ops.dot_product_attention`: False on PyTorch, else None.

    PyTorch's `scaled_dot_product_attention` chooses its fastest kernel itself;
    Keras' check for flash attention builds an object `torch.compile` cannot
    trace (one graph break per attention layer).
    """
    import keras

    return False if keras.backend.backend() == "torch" else None


def remat():
    """Whether `TransformerBlock`s recompute their norms and GELU in the backward pass."""
    value = setting("remat")
    if value == "auto":
        import keras

        return keras.backend.backend() in ("jax", "tensorflow")
    return value


def remat_mode(mode):
    """`mode` for `keras.RematScope` when `remat()`, else None."""
    return mode if remat() else None


def torch_compiled_step(model):
    """Whether `model` (a `MaskedAutoencoder` on PyTorch under `jit_compile=True`) uses its own step.

    Stochastic depth draws randomness inside the forward pass, which the own
    step does not carry: such models always take Keras' step.
    """
    value = setting("torch_compiled_step")
    if value is False:
        return False
    return not model.encoder.drop_path_rate


def keep_heap():
    """Whether a recipe on JAX restarts with glibc's heap kept (Linux with glibc only)."""
    value = setting("keep_heap")
    if value is False:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        return False
    return True


def _replicas():
    """Replicas of the `tf.distribute` strategy in scope (TensorFlow backend), else 1."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return 1
    return tf.distribute.get_strategy().num_replicas_in_sync


def resolve_jit_compile(jit_compile, own_torch_step=False, replicas=None):
    """`jit_compile` for `compile`: an explicit value is kept; `"auto"` becomes the fast mode.

    `"auto"` is XLA on JAX, and on TensorFlow with one replica (Keras' own
    "auto" leaves TensorFlow uncompiled on a CPU); with several TensorFlow
    replicas it stays Keras' "auto" (no XLA under `tf.distribute`: XLA has
    no cross-replica collectives on CPUs). On PyTorch it is True where the
    model has its own compiled step (`own_torch_step`: a `MaskedAutoencoder`
    for which `torch_compiled_step` holds) and False (eager) otherwise.

    Args:
        jit_compile: `"auto"` or a bool.
        own_torch_step: whether the model compiles its own PyTorch step.
        replicas: replicas of the distribution; None reads the
            `tf.distribute` strategy in scope.

    Returns:
        True, False, or `"auto"` (left to Keras).
    """
    if jit_compile != "auto":
        return jit_compile
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        return True if (_replicas() if replicas is None else replicas) == 1 else "auto"
    return bool(own_torch_step)


def describe(dtype=None):
    """The resolved choices, as the recipes print them.

    Args:
        dtype: the compute dtype the attention kernel is chosen for; None
            takes the global dtype policy's.

    Returns:
        A dict: `backend`, `attention_kernel` (for `dtype` on the default
        device), `remat`, `torch_compiled_step` (the setting: whether it
        applies depends on the model), `keep_heap` (JAX only).
    """
    import keras

    backend = keras.backend.backend()
    probe = keras.ops.zeros((1,), dtype or keras.config.dtype_policy().compute_dtype)
    return {
        "backend": backend,
        "attention_kernel": attention_kernel(probe),
        "remat": remat(),
        "torch_compiled_step": setting("torch_compiled_step"),
        "keep_heap": backend == "jax" and keep_heap(),
    }
