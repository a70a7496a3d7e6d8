"""The PyTorch training step under `jit_compile=True`: the forward pass and the loss as one graph.

Keras compiles its whole PyTorch `train_step` with `torch.compile`. In a
`MaskedAutoencoder` that graph breaks where the masking noise is drawn (Keras'
PyTorch seed generator is excluded from compilation), and Dynamo then falls
back to running each layer's call separately. Here the noise is drawn first,
eagerly, from the same `RandomMasking` generator (so the masks are those of an
uncompiled step), and the forward pass and loss are one `torch.compile`d graph
with `fullgraph=True`, whose backward AOTAutograd compiles as well; the
optimizer update is Keras' own, compiled on its own (graph breaks in a
user's optimizer are allowed there; the recipes' AdamW has none).

A compiled `fit` gives the losses and weights of an eager one
(`tests/test_compiled_step.py`). The first step takes long to compile; later
steps are faster than eager PyTorch, as `benchmarks/train_throughput.py`
measures.

Example:
```python
import os; os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np, keras_mae
model = keras_mae.models.mae_vit_tiny_patch4(depth=2, decoder_depth=1, norm_pix_loss=True)
model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=True)  # this module's step
model.fit(np.random.rand(16, 32, 32, 3).astype("float32"), batch_size=8, verbose=0)
```
"""

import itertools
import types

import keras

from keras_mae import keras_internals
from keras_mae.models.inputs import check_pixel_values, images_from_batch


_COUNTER = itertools.count()


def own_code(function):
    """`function` with a code object of its own.

    Dynamo keeps compiled graphs on the code object and counts its
    recompilations against `torch._dynamo.config.recompile_limit` (8); the
    step functions of every model would otherwise share one code object, and
    the ninth model of a process would fail to compile (`fullgraph=True`).
    """
    code = function.__code__.replace(co_name=f"{function.__name__}_{next(_COUNTER)}")
    return types.FunctionType(code, function.__globals__, code.co_name, function.__defaults__,
                              function.__closure__)


def make_compiled_train_function(model):
    """Returns Keras' `train_function(data)` for `model`, with the forward and loss compiled."""
    import torch

    def forward_loss(x, y, sample_weight, noise):
        y_pred = model(x, noise=noise, training=True)
        return keras_internals.training_loss(model, x, y, y_pred, sample_weight), y_pred

    compiled = torch.compile(own_code(forward_loss), fullgraph=True)

    def update(gradients, weights):
        with torch.no_grad():
            model.optimizer.apply(gradients, weights)

    compiled_update = torch.compile(own_code(update))

    def train_function(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data[0])
        check_pixel_values(images_from_batch(x))  # numpy batches (train_on_batch), before any compute
        x, y, sample_weight = keras.tree.map_structure(
            lambda t: t if t is None else keras.ops.convert_to_tensor(t), (x, y, sample_weight))
        batch = images_from_batch(x).shape[0]
        noise = model.random_masking.draw_noise(batch, model.num_patches)
        if not model.optimizer.built:  # its slots made eagerly, not inside the compiled update
            model.optimizer.build(model.trainable_variables)
        model.zero_grad()
        loss, y_pred = compiled(x, y, sample_weight, noise)
        keras_internals.loss_tracker(model).update_state(loss, sample_weight=batch)
        loss = model.optimizer.scale_loss(loss)
        loss.backward()
        weights = model.trainable_weights  # one walk of the layer tree a step
        compiled_update([v.value.grad for v in weights], weights)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    train_function.compiled_forward = compiled
    return train_function
