"""keras_mae.files: write-then-rename."""

import os

import keras
import numpy as np
import pytest

from keras_mae import files


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    files.write_text(str(path), "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_path(str(path)) as tmp:
            open(tmp, "w").write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["config.json"]
    files.write_text(str(path), "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["config.json"]


def test_the_temporary_keeps_keras_extensions(tmp_path):
    seen = []
    for name in ("model.keras", "encoder.weights.h5", "grid.png"):
        with files.atomic_path(str(tmp_path / name)) as tmp:
            seen.append(os.path.basename(tmp))
            open(tmp, "w").write("x")
    assert [s.split(".tmp-")[1].split(".", 1)[1] for s in seen] == ["keras", "weights.h5", "png"]
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with files.atomic_path(str(tmp_path / "m.weights.h5")) as tmp:
        model.save_weights(tmp)  # Keras refuses a name without .weights.h5
    other = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    other.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(other.weights[0]),
                                  keras.ops.convert_to_numpy(model.weights[0]))
