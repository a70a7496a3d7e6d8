"""Every `Example:` block of the library's docstrings runs (on TensorFlow: once per suite).

An example that cannot run here says so in `NOT_RUN` with the reason; it is
still compiled. A new example that fails names its docstring.
"""

import ast
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)

# "module:qualified name:block" -> why the block is not run
FRAGMENT = "a fragment of the user's training script (its model, data or strategy)"
NOT_RUN = {
    "keras_mae.callbacks:KNNMonitor:0": FRAGMENT,
    "keras_mae.callbacks:ReconstructionCallback:0": FRAGMENT,
    "keras_mae.models.classifier:ViTClassifier.feature_model:0": FRAGMENT,
    "keras_mae.data.image_files:failed_file:0": FRAGMENT,
    "keras_mae.data.image_files:decode_file:0": "reads the user's photo.jpg",
    "keras_mae.data.image_files:try_decode:0": "reads the user's photo.jpg",
    "keras_mae.convert.hf:from_transformers:0": "loads Hugging Face weights from the user's folder",
    "keras_mae.convert.official:from_official_checkpoint:0": "loads the official .pth files",
    **{f"keras_mae.distribute:{name}:0": FRAGMENT + " on several workers"
       for name in ("barrier", "configure_model", "get_strategy", "input_dataset", "is_chief",
                    "leave_together", "num_replicas", "scope", "wait_until_closed")},
}


def _examples():
    found = {}
    for path in sorted((ROOT / "keras_mae").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        stack = [(tree, module.removesuffix(".__init__"))]
        while stack:
            node, name = stack.pop()
            doc = ast.get_docstring(node, clean=True) if not isinstance(node, ast.Module) \
                else ast.get_docstring(node)
            for i, block in enumerate(BLOCK.findall(doc or "")):
                found[f"{module}:{name.split(':', 1)[-1] if ':' in name else ''}:{i}"] = block
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    prefix = name.split(":", 1)[1] + "." if ":" in name else ""
                    stack.append((child, f"{module}:{prefix}{child.name}"))
    return found


EXAMPLES = _examples()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="run once, on TensorFlow")
@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_docstring_example(key, tmp_path, monkeypatch):
    code = compile(EXAMPLES[key], key, "exec")
    if key in NOT_RUN:
        pytest.skip(NOT_RUN[key])
    monkeypatch.chdir(tmp_path)
    exec(code, {"__name__": "__example__"})


def test_not_run_lists_only_existing_examples():
    assert set(NOT_RUN) <= set(EXAMPLES)
    assert len(EXAMPLES) > 80
