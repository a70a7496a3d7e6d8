"""Mutation testing: small slips put into a module one at a time, each of which its tests must catch.

A mutant is one change of the module's code: an arithmetic or comparison
operator swapped (`+`/`-`, `*`/`/`, `<`/`<=`, `==`/`!=`, `and`/`or`, ...),
`not` dropped, a number moved (`n -> n + 1`, `0.5 -> 0.5 * 1.5`), `True` and
`False` swapped, a keyword argument's value of `True`/`False`/`None` swapped.
Docstrings, strings and the `raise` statements of argument checks are left
as they are.

One parent process imports Keras, the backend, keras_mae and the module
once, and runs no framework op (a process whose TensorFlow or JAX threads
have run may not survive a fork); each mutant runs in a child forked from it: the mutated module is
compiled and its changed function's code (or the changed constant) is put
into the live objects, so every caller sees it, then the mapped test files
run with `pytest -x`. For a module in `ON_DISK`, whose tests run its code in
subprocesses too (the multi-replica workers of `tests/test_distribute.py`),
the child also writes the mutated module into a copy of the project and runs
the tests from there, so the subprocesses import the mutant; each child has
its own process group, killed with it. A mutant is killed when a test fails
(or it runs past the time limit); it survives when they all pass. `EQUIVALENT`
lists the mutants no input can tell from the original code, each with its
reason. Each module runs on one backend: torch (the fastest), or the one in
`BACKENDS` where its code runs only there.

Usage:

    .venv/bin/python tests/mutation.py keras_mae/knn.py [--tests tests/test_knn.py]
        [--backend torch] [--json OUT] [--list] [--timeout-factor 3]
    bash tests/mutation.sh [MODULE ...]   # every module in `MODULES` when none is named

Not part of `.ci/run`: a module takes minutes to tens of minutes.
"""

import argparse
import ast
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> the test files that cover it (a mutant's run stays short)
MODULES = {
    "keras_mae/ops.py": ["tests/test_ops.py", "tests/test_properties.py"],
    "keras_mae/losses.py": ["tests/test_masked_autoencoder.py", "-k", "loss"],
    "keras_mae/knn.py": ["tests/test_knn.py"],
    "keras_mae/callbacks.py": ["tests/test_knn.py", "tests/test_visualize.py"],
    "keras_mae/checkpoint.py": ["tests/test_checkpoint.py"],
    "keras_mae/layers/drop_path.py": ["tests/test_layers.py", "tests/test_properties.py"],
    "keras_mae/layers/patch_embedding.py": ["tests/test_layers.py"],
    "keras_mae/layers/position_embedding.py": ["tests/test_layers.py"],
    "keras_mae/layers/random_masking.py": ["tests/test_layers.py", "tests/test_properties.py"],
    "keras_mae/layers/replica_random.py": [
        "tests/test_layers.py", "-k", "noise or drop_path or mirrored_replicas",
        "tests/test_distribute.py::test_mirrored_replicas_draw_their_part_of_one_devices_masks_and_paths"],
    "keras_mae/layers/attention.py": ["tests/test_layers.py"],
    "keras_mae/layers/transformer_block.py": ["tests/test_layers.py", "tests/test_properties.py"],
    "keras_mae/layers/token_dense.py": ["tests/test_layers.py"],
    "keras_mae/optimizers/adamw.py": ["tests/test_optimizers.py"],
    "keras_mae/optimizers/weight_decay.py": ["tests/test_optimizers.py"],
    "keras_mae/optimizers/layer_decay.py": ["tests/test_optimizers.py"],
    "keras_mae/optimizers/lars.py": ["tests/test_optimizers.py"],
    "keras_mae/optimizers/schedules.py": ["tests/test_optimizers.py"],
    "keras_mae/data/augment.py": ["tests/test_data.py", "tests/test_augment_reference.py",
                                 "tests/test_properties.py"],
    "keras_mae/data/randaugment.py": ["tests/test_rand_augment_reference.py"],
    "keras_mae/data/mixing.py": ["tests/test_mix.py"],
    "keras_mae/data/erasing.py": ["tests/test_augment_reference.py", "tests/test_official_defaults.py",
                                 "-k", "erasing"],
    "keras_mae/models/mae_decoder.py": ["tests/test_masked_autoencoder.py"],
    "keras_mae/models/vit_encoder.py": ["tests/test_masked_autoencoder.py", "tests/test_backbone.py"],
    "keras_mae/models/classifier.py": ["tests/test_classifier.py"],
}

# modules whose code is reached only on another backend than torch (the default)
BACKENDS = {
    "keras_mae/layers/replica_random.py": "tensorflow",  # the tf.distribute replicas' slices
}

# modules whose tests run their code in subprocesses: the mutant is also written to a copy of the
# project that the tests (and so their subprocesses) run from
ON_DISK = {"keras_mae/layers/replica_random.py"}
OVERLAY = ("keras_mae", "tests", "recipes", "benchmarks", "pyproject.toml")

# (module, line, mutation) -> why no input can tell the mutant from the original
EQUIVALENT = {
    ("keras_mae/knn.py", "chunk=1024):", "1024 -> 1025"):
        "the chunk only bounds memory: every query's neighbours and vote are its own",
    ("keras_mae/layers/drop_path.py", "if not training or self.rate == 0.0:", "0.0 -> 1.0"):
        "at rate 0 the drawn path keeps every sample (floor(1 + u) = 1 for u in [0, 1)) and "
        "divides by 1: the same output, one unused random draw",
    ("keras_mae/layers/token_dense.py", "if len(inputs.shape) <= 2:", "LtE -> Lt"):
        "a rank-2 input on the reshape path is reshaped to itself: the same product, the same output",
    ("keras_mae/layers/token_dense.py", "if len(inputs.shape) <= 2:", "2 -> 3"):
        "rank-3 inputs through `Dense.call` take the same products; only the kernel gradient's speed "
        "differs (`benchmarks/train_throughput.py`)",
    ("keras_mae/layers/token_dense.py", "if all(isinstance(d, int) and d > 0 for d in inner):", "0 -> 1"):
        "inner axes of length 1 then take the `ops.shape` path: the same shape, read when the layer runs",
    ("keras_mae/layers/token_dense.py", "return ops.reshape(outputs, (*leading, outputs.shape[-1]))",
     "drop USub"):
        "`outputs` is 2-D there, so its axis 1 is its last",
    ("keras_mae/layers/transformer_block.py",
     "self.fc2.build(tuple(input_shape[:-1]) + (self.mlp_hidden_dim,))", "drop USub"):
        "fc2 (a Dense) builds its kernel from the last axis alone; the leading axes it is given are unused",
    ("keras_mae/layers/transformer_block.py",
     "self.fc2.build(tuple(input_shape[:-1]) + (self.mlp_hidden_dim,))", "1 -> 2"):
        "fc2 (a Dense) builds its kernel from the last axis alone; the leading axes it is given are unused",
    ("keras_mae/optimizers/schedules.py", "if self.accumulation_steps > 1:", "Gt -> GtE"):
        "with one step per group, step - step mod 1 is the step",
    ("keras_mae/optimizers/schedules.py", "warmup_lr = peak_lr * step / max(warmup, 1.0)", "1.0 -> 1.5"):
        "the warm-up branch is taken only at steps below `warmup`: none for 0, step 0 (rate 0 either "
        "way) for 1, and for 2 or more the guard is inactive",
    ("keras_mae/optimizers/schedules.py", "decay_steps = max(float(self.total_steps) - warmup, 1.0)",
     "1.0 -> 1.5"):
        "the guard acts only when total - warmup is 0 or 1; then every step from `warmup` on is the "
        "first decay step (progress 0 either way) or is clamped to min_lr",
    ("keras_mae/optimizers/schedules.py", "progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)",
     "1.0 -> 1.5"):
        "progress exceeds 1 only past `total_steps`, where the result is clamped to min_lr",
}

_SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And,
}


def _docstring_nodes(tree):
    """The `Expr` nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0]))
    return found


def _skipped_subtrees(tree):
    """ids of nodes not to mutate: docstrings, `raise` statements, the tests of `if ...: raise`."""
    skipped, docstrings = set(), _docstring_nodes(tree)
    roots = [node for node in ast.walk(tree) if id(node) in docstrings]
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            roots.append(node)
        elif isinstance(node, ast.If) and node.body and all(isinstance(s, ast.Raise) for s in node.body) \
                and not node.orelse:
            roots.append(node.test)  # an argument check: its error message names the bad value
    for root in roots:
        skipped.update(id(n) for n in ast.walk(root))
    return skipped


def _number_mutant(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 if value else 1.0
    return None


def sites(tree):
    """Every mutation of `tree`: (walk index, kind, description) in a fixed order."""
    skipped = _skipped_subtrees(tree)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAPS:
            found.append((index, "op", f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in _SWAPS:
                    found.append((index, f"cmp{k}", f"{type(op).__name__} -> {_SWAPS[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            found.append((index, "op", f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            found.append((index, "unary", f"drop {type(node.op).__name__}"))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, str) \
                and _number_mutant(node.value) is not None:
            found.append((index, "const", f"{node.value!r} -> {_number_mutant(node.value)!r}"))
        elif isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant) \
                and node.value.value is None:
            found.append((index, "none", f"{node.arg}=None -> {node.arg}=True"))
    return found


def _mutate(tree, index, kind):
    """Applies one site's mutation to the node at walk `index` of `tree`; returns it and its replacement."""
    node = list(ast.walk(tree))[index]
    if kind == "op":
        node.op = _SWAPS[type(node.op)]()
    elif kind.startswith("cmp"):
        k = int(kind[3:])
        node.ops[k] = _SWAPS[type(node.ops[k])]()
    elif kind == "unary":
        return node, node.operand
    elif kind == "const":
        node.value = _number_mutant(node.value)
    elif kind == "none":
        node.value = ast.Constant(True)
    return node, None


def mutated_tree(source, index, kind):
    """The module's tree with one mutation, and the line it is on."""
    tree = ast.parse(source)
    node, replacement = _mutate(tree, index, kind)
    if replacement is not None:  # `not x` -> `x`: put the operand where the UnaryOp was
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, replacement)
                elif isinstance(value, list):
                    value[:] = [replacement if v is node else v for v in value]
    return ast.fix_missing_locations(tree), node.lineno


def _enclosing_path(tree, index):
    """Names of the top-level def/class (and method) holding the node at walk `index`, or []."""
    target = list(ast.walk(tree))[index]
    for top in tree.body:
        if any(n is target for n in ast.walk(top)):
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return [top.name]
            if isinstance(top, ast.ClassDef):
                for member in top.body:
                    if any(n is target for n in ast.walk(member)):
                        if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            return [top.name, member.name]
                        return [top.name, None]
                return [top.name, None]
            return [None, top]
    return []


def _function_of(obj):
    """The plain function behind a method, property getter, static/class method or wrapper."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj


def _transplant(old, new):
    old, new = _function_of(old), _function_of(new)
    if len(old.__code__.co_freevars) != len(new.__code__.co_freevars):
        raise RuntimeError("closure changed")
    old.__code__, old.__defaults__, old.__kwdefaults__ = new.__code__, new.__defaults__, new.__kwdefaults__


def apply_mutant(module, source, index, kind):
    """Puts one mutant into the live `module`: changed function code, or changed module/class values."""
    import keras

    tree = ast.parse(source)
    path = _enclosing_path(tree, index)
    new_tree, line = mutated_tree(source, index, kind)
    namespace = dict(vars(module))
    saved = keras.saving.get_custom_objects().copy()
    try:
        exec(compile(new_tree, module.__file__, "exec"), namespace)
    finally:  # re-running class definitions re-registers them: keep the originals
        keras.saving.get_custom_objects().clear()
        keras.saving.get_custom_objects().update(saved)
    if not path:
        raise RuntimeError("not in the module body")
    if path[0] is None:  # a module-level statement: rebind what it assigns
        statement = path[1]
        targets = statement.targets if isinstance(statement, ast.Assign) else \
            [getattr(statement, "target", None)]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            raise RuntimeError("module-level statement without a simple name")
        for name in names:
            setattr(module, name, namespace[name])
        return line
    old, new = getattr(module, path[0]), namespace[path[0]]
    if len(path) == 1:
        _transplant(old, new)
    elif path[1] is None:  # a class attribute
        for name, value in vars(new).items():
            if not callable(_function_of(value)) and not name.startswith("__"):
                setattr(old, name, value)
    else:
        _transplant(vars(old)[path[1]], vars(new)[path[1]])
    return line


def write_overlay(folder, relative, text):
    """Copies the project's code (`OVERLAY`) into `folder`, with `relative` replaced by `text` if given."""
    for name in OVERLAY:
        path = os.path.join(REPO_ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(folder, name), ignore=shutil.ignore_patterns("*.egg-info"))
        elif os.path.exists(path):
            shutil.copy2(path, os.path.join(folder, name))
    if text is not None:
        with open(os.path.join(folder, relative), "w") as f:
            f.write(text)


def _run_from(folder):
    """Makes pytest import the test files of `folder`, not the ones this process imported."""
    tests_dir = os.path.join(REPO_ROOT, "tests")
    for name, loaded in list(sys.modules.items()):
        path = getattr(loaded, "__file__", None)
        if path and os.path.abspath(path).startswith(tests_dir + os.sep):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != tests_dir]
    os.chdir(folder)


def run_child(module, source, site, tests, timeout, on_disk=None):
    """Forks; the child applies `site` (None: no mutant) and runs the tests. Returns (status, seconds).

    With `on_disk` (the module's path in the project) the tests run from a copy of the project
    holding the mutated file, so that their subprocesses run the mutant too.
    """
    start = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="mutant-") if on_disk else None
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setpgid(0, 0)  # its own process group: the tests' subprocesses go with it
            if sys.platform.startswith("linux"):  # die with the parent
                import ctypes

                ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            rootdir = REPO_ROOT
            if site is not None:
                apply_mutant(module, source, site[0], site[1])
            if folder is not None:
                text = None if site is None else ast.unparse(mutated_tree(source, site[0], site[1])[0])
                write_overlay(folder, on_disk, text)
                _run_from(folder)
                tests = [folder + t[len(REPO_ROOT):] if t.startswith(REPO_ROOT + os.sep) else t
                         for t in tests]
                rootdir = folder
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--rootdir", rootdir] + tests)
        except BaseException:
            code = 4
        os._exit(int(code))
    try:
        return _wait(pid, start, timeout)
    finally:
        try:  # whatever the tests left running
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _wait(pid, start, timeout):
    """Waits for the child `pid` (killed past `timeout` s); returns (status, seconds)."""
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if code == 0:
        return "survived", seconds
    if code == 4:
        return "not applied", seconds
    return "killed", seconds


def table(folder, write_results=None):
    """The table of a folder of `--json` results: one row per module, then the surviving mutants."""
    runs = [json.load(open(os.path.join(folder, name))) for name in sorted(os.listdir(folder))
            if name.endswith(".json")]
    rows = ["| module | backend | mutants | killed | equivalent | survived | not applied "
            "| killed of the rest | time, s |", "|---|---|---|---|---|---|---|---|---|"]
    survivors = []
    for run in sorted(runs, key=lambda run: run["module"]):
        c = run["counts"]
        rows.append(f"| `{run['module']}` | {run.get('backend', '?')} | {len(run['results'])} | "
                    f"{c['killed'] + c['timeout']} | "
                    f"{c['equivalent']} | {c['survived']} | {c['not applied']} | "
                    f"{100 * run['score']:.1f}% | {run['seconds']:.0f} |")
        survivors += [f"- `{run['module']}:{r['line']}` {r['mutation']}: `{r['code']}`"
                      for r in run["results"] if r["status"] == "survived"]
    equivalents = [f"- `{module}` `{code}` {mutation}: {why}"
                   for (module, code, mutation), why in EQUIVALENT.items()]
    text = "\n".join(rows) + "\n"
    if survivors:
        text += "\nSurviving mutants:\n\n" + "\n".join(survivors) + "\n"
    if equivalents:
        text += "\nEquivalent mutants (no input tells them apart):\n\n" + "\n".join(equivalents) + "\n"
    print(text)
    if write_results is not None:
        sys.path.insert(0, REPO_ROOT)
        from benchmarks.results import RESULTS, write_section

        write_section("mutation", "Mutation testing (`tests/mutation.py`)", text,
                      path=write_results or RESULTS)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", help="a file under keras_mae/, e.g. keras_mae/knn.py")
    parser.add_argument("--table", default=None, metavar="DIR",
                        help="print the table of the --json files in DIR instead of running")
    parser.add_argument("--write-results", nargs="?", const="", default=None, metavar="PATH",
                        help="with --table: write it into benchmarks/RESULTS.md (or PATH)")
    parser.add_argument("--tests", default=None, help="comma-separated test files (default: MODULES')")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"), default=None,
                        help="the Keras backend (default: the module's in BACKENDS, else torch)")
    parser.add_argument("--json", default=None, help="write every mutant's result here")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--timeout-factor", type=float, default=3.0,
                        help="a mutant's time limit: this many times the unmutated run, plus 10 s")
    args = parser.parse_args(argv)
    if args.table:
        return table(args.table, args.write_results)
    if not args.module:
        parser.error("name a module (or --table DIR)")
    relative = os.path.relpath(os.path.abspath(args.module), REPO_ROOT)
    if not os.path.isfile(os.path.join(REPO_ROOT, relative)) or not relative.endswith(".py"):
        parser.error(f"module: no such Python file. Received: {args.module!r}")
    tests = args.tests.split(",") if args.tests else MODULES.get(relative)
    if not tests:
        parser.error(f"--tests: no test files mapped to {relative}; name them. Known modules: "
                     + ", ".join(MODULES))
    source = open(os.path.join(REPO_ROOT, relative)).read()
    found = sites(ast.parse(source))
    lines = source.splitlines()
    tree = ast.parse(source)
    walk = list(ast.walk(tree))
    described = sorted(((index, kind, text, walk[index].lineno) for index, kind, text in found),
                       key=lambda site: (site[3], site[0]))
    if args.list:
        for index, kind, text, line in described:
            print(f"{relative}:{line}: {text}    {lines[line - 1].strip()}")
        print(f"{len(described)} mutants")
        return 0

    os.environ["KERAS_BACKEND"] = args.backend or BACKENDS.get(relative, "torch")
    sys.path[:0] = [REPO_ROOT, os.path.join(REPO_ROOT, "tests")]
    os.chdir(REPO_ROOT)
    import keras  # noqa: F401  (imported once, before the forks)

    import conftest  # noqa: F401  (the tests' shared imports)
    module = importlib.import_module(relative[:-3].replace("/", "."))
    tests = [os.path.join(REPO_ROOT, t) if t.startswith("tests/") else t for t in tests]
    on_disk = relative if relative in ON_DISK else None
    status, baseline = run_child(module, source, None, tests, timeout=3600, on_disk=on_disk)
    if status != "survived":
        print(f"the tests fail without a mutant ({status}); fix them first", file=sys.stderr)
        return 2
    timeout = args.timeout_factor * baseline + 10
    print(f"{relative}: {len(described)} mutants; tests {' '.join(os.path.relpath(t) for t in tests)} "
          f"take {baseline:.1f} s", flush=True)
    results, start = [], time.perf_counter()
    for index, kind, text, line in described:
        if (relative, lines[line - 1].strip(), text) in EQUIVALENT:
            status, seconds = "equivalent", 0.0
        else:
            status, seconds = run_child(module, source, (index, kind), tests, timeout, on_disk)
        results.append({"line": line, "mutation": text, "code": lines[line - 1].strip(),
                        "status": status, "seconds": round(seconds, 2)})
        if status in ("survived", "not applied"):
            print(f"  {status}: {relative}:{line}: {text}    {lines[line - 1].strip()}", flush=True)
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("killed", "timeout", "survived", "equivalent", "not applied")}
    scored = counts["killed"] + counts["timeout"] + counts["survived"]
    score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
    elapsed = time.perf_counter() - start
    print(f"{relative}: {len(results)} mutants, killed {counts['killed'] + counts['timeout']}, "
          f"equivalent {counts['equivalent']}, survived {counts['survived']}, not applied "
          f"{counts['not applied']}; {100 * score:.1f}% killed; {elapsed:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"module": relative, "tests": args.tests or MODULES.get(relative),
                       "backend": keras.backend.backend(),
                       "counts": counts, "score": score, "seconds": elapsed,
                       "baseline_s": baseline, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
