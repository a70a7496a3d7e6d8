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
