import os

import keras
import numpy as np
import pytest

from conftest import random_images, random_noise, tiny_mae, to_numpy
from keras_mae import checkpoint


def trained_model():
    model = tiny_mae()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.fit(random_images(4), batch_size=2, epochs=1, verbose=0)
    return model


def test_save_restore_model_and_optimizer(tmp_path):
    model = trained_model()
    folder = checkpoint.save_checkpoint(str(tmp_path), model, 2, 1, 0)
    assert checkpoint.latest_checkpoint(str(tmp_path)) == folder
    fresh = tiny_mae(seed=5)
    fresh.build()
    fresh.compile(optimizer=keras.optimizers.AdamW(1e-3))
    state = checkpoint.restore_checkpoint(folder, fresh)
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (2, 1, 0)
    assert int(to_numpy(fresh.optimizer.iterations)) == 2
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    x, noise = random_images(2), random_noise(2, 16)
    np.testing.assert_array_equal(to_numpy(fresh(x, noise=noise)["pred"]),
                                  to_numpy(model(x, noise=noise)["pred"]))


def test_keeps_last_two_and_ignores_half_written(tmp_path):
    model = trained_model()
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(str(tmp_path), model, step, 0, step)
    os.makedirs(tmp_path / ".step_00000004.tmp-1")  # a save killed half-way
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith("step_")] == ["step_00000002", "step_00000003"]
    assert checkpoint.latest_checkpoint(str(tmp_path)).endswith("step_00000003")


def test_wrong_architecture_is_named(tmp_path):
    folder = checkpoint.save_checkpoint(str(tmp_path), trained_model(), 2, 1, 0)
    other = tiny_mae(hidden_dim=64)
    other.build()
    with pytest.raises(ValueError, match=r"state.weights.h5 is of another model config.*hidden_dim"):
        checkpoint.restore_checkpoint(folder, other)


def test_corrupted_checkpoint_is_named(tmp_path):
    folder = checkpoint.save_checkpoint(str(tmp_path), trained_model(), 2, 1, 0)
    weights = os.path.join(folder, checkpoint.WEIGHTS)
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    fresh = tiny_mae()
    fresh.build()
    with pytest.raises(ValueError, match="Cannot load checkpoint .*state.weights.h5"):
        checkpoint.restore_checkpoint(folder, fresh)
    with open(os.path.join(folder, checkpoint.STATE), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="state.json"):
        checkpoint.restore_checkpoint(folder, fresh)


def test_a_switch_turned_on_is_another_model(tmp_path):
    folder = checkpoint.save_checkpoint(str(tmp_path), trained_model(), 2, 1, 0)
    trainable = tiny_mae(trainable_positions=True)
    trainable.build()
    assert checkpoint.model_config_of(trainable)["encoder.trainable_positions"] is True
    with pytest.raises(ValueError, match="trainable_positions: checkpoint False vs model True"):
        checkpoint.restore_checkpoint(folder, trainable)
