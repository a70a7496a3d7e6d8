"""The one place that reaches into Keras internals; Keras 3.15 has no public API for these.

- `sublayers`: a layer's sublayers, recursively (`Layer._flatten_layers`);
  `keras.Model.layers` lists direct children only.
- `variable_index`: the position of a variable in an optimizer's slot lists
  (`Optimizer._get_variable_index`), which Keras' own `update_step`s use.
- `uses_weight_decay`: whether the optimizer decays a variable
  (`Optimizer._use_weight_decay`), i.e. what `exclude_from_weight_decay`
  registered.
- `adam_moments`: Adam's first and second moment slots of a variable
  (`Adam._momentums`, `Adam._velocities`).
- `training_loss`: the loss Keras' own `train_step` computes
  (`Trainer._compute_loss`: `compute_loss` with `training=True`, as the
  backend trainers call it), and `loss_tracker`, the metric behind the
  `loss` log (`Trainer._loss_tracker`); the compiled PyTorch step
  (`models/torch_step.py`) replaces Keras' `train_step` and needs both.
- Optimizers that apply weight decay inside `update_step` override
  `Optimizer._apply_weight_decay(variables)` to turn the base class' own
  decoupled decay off; that hook is an override, not a call, so it cannot be
  wrapped here.

`tests/test_keras_internals.py` checks each of them (and that Keras calls the
override) on the installed Keras, so a move fails there first.
"""


def sublayers(layer):
    """`[layer, *all its sublayers]`, depth-first in attribute order."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def variable_index(optimizer, variable):
    """The index of `variable` in the optimizer's per-variable slot lists."""
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer` applies weight decay to `variable` (exclusions honoured)."""
    return optimizer._use_weight_decay(variable)


def adam_moments(optimizer, variable):
    """`(m, v)`: a Keras `Adam`/`AdamW` optimizer's moment variables of `variable`."""
    index = variable_index(optimizer, variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def training_loss(model, x, y, y_pred, sample_weight):
    """The loss of a training step, as Keras' own `train_step` computes it."""
    return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)


def loss_tracker(model):
    """The `keras.metrics.Mean` behind a compiled model's `loss` log."""
    return model._loss_tracker
