"""The README's and the documentation's commands and Python blocks work as written; the site builds.

The checks do not depend on the Keras backend, so they run once, in the TensorFlow run of
`tests/run_all_backends.sh` (skipped on the others). What they check, in the README, the
pages of `docs/` (the API pages are generated) and `guides/distributed_training.md` (which
`docs/distributed.md` includes), and the `Command:` lines of the recipe configs' docstrings
(shown on the docs' "Recipe configs" page):

- The site builds with `mkdocs build --strict`: a docstring griffe cannot parse, an `Args:`
  entry naming no parameter, a broken link, anchor or snippet fails it. Every public class
  and function of the API modules has its entry on the built API pages.
- Shell commands (fenced `bash` blocks; a trailing backslash continues a line, `&&` chains
  commands): Python runs as `.venv/bin/python`, which works in a fresh shell after the set-up
  command (only `python3 -m venv` may name another interpreter); a repository file a command
  names exists; a `recipes/*.py` command goes through the recipe's own `main` (its parser and
  its named config, with every flag applied) with `run` replaced, and its config passes the
  recipe's `validate` (without the checks that a file exists: commands name the files that
  earlier commands write, or placeholders such as `DIR`); a `benchmarks/*.py` command uses
  flags its script defines; `-m MODULE` names an importable module.
- Python blocks compile, and the `keras_mae` and `recipes` names they use exist, as do the
  `keras_mae.*` and `recipes.*` names the text quotes in backticks.
- The README's Python blocks (the ten lines, the shared encoder) run in a subprocess in a
  temporary folder, made small by `SHRINK`: a 1-block encoder and decoder, 2 steps of 1
  epoch, no XLA (each substitution must match once, so the test fails when the README changes
  under it).
- Each figure in the README's "What it reaches" table appears in the files its row links to,
  where it was measured.
"""

import ast
import contextlib
import dataclasses
import glob
import importlib
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent: checked in the TensorFlow run only")

# the API pages and the modules they document
API_MODULES = ("models", "layers", "data", "optimizers", "losses", "callbacks", "knn", "visualize",
               "ops", "config", "presets", "checkpoint", "convert", "export", "distribute")
REPO_DIRS = ("recipes", "benchmarks", "guides", "tests", "keras_mae", "docs", ".ci")
RUN_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 300

# README blocks run small: (block, pattern, replacement), each matching exactly once
SHRINK = (
    (0, "mae_vit_tiny_patch4(norm_pix_loss=True)",
     "mae_vit_tiny_patch4(norm_pix_loss=True, depth=1, decoder_depth=1)"),
    (0, "model.compile()", "model.compile(jit_compile=False)"),
    (0, "model.fit(train, epochs=5)", "model.fit(train.take(2), epochs=1)"),
    (1, "hidden_dim=192, depth=12,", "hidden_dim=192, depth=1,"),
)


def doc_files():
    pages = sorted(p for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
                   if os.sep + "api" + os.sep not in p)
    return [os.path.join(ROOT, "README.md"), *pages,
            os.path.join(ROOT, "guides", "distributed_training.md")]


def fenced_blocks(path, languages):
    """`(language, text)` of each fenced block of a markdown file in `languages`."""
    with open(path) as f:
        text = f.read()
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
            if m.group(1) in languages]


def config_commands():
    """`(config name, command)` of each `Command:` in the recipe configs' docstrings."""
    from recipes import classify_configs, pretrain_configs

    tables = (pretrain_configs.CONFIGS, classify_configs.PROBE_CONFIGS,
              classify_configs.FINETUNE_CONFIGS)
    found = []
    for table in tables:
        for name, function in table.items():
            doc = " ".join(inspect.getdoc(function).split())
            match = re.search(r"Command: `([^`]+)`", doc)
            if match and "recipes/" in match.group(1):
                found.append((f"{function.__module__}.{function.__name__}", match.group(1)))
    return found


def shell_commands():
    """`(where, command)` for every command of the README's and the docs' bash blocks."""
    found = []
    for path in doc_files():
        for _, block in fenced_blocks(path, ("bash", "sh", "shell")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                for command in line.split("&&"):
                    if command.strip():
                        found.append((os.path.relpath(path, ROOT), command.strip()))
    return found + config_commands()


def python_blocks():
    return [(os.path.relpath(path, ROOT), i, block) for path in doc_files()
            for i, (_, block) in enumerate(fenced_blocks(path, ("python",)))]


def without_environment(words):
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    return words


@contextlib.contextmanager
def recipe_run_replaced(module, captured):
    """`module.main` parses and resolves its config, and hands it to `captured` instead of running."""
    saved = module.run, module.run_main
    module.run = lambda config, output_dir, **kwargs: captured.append(config)
    module.run_main = lambda function: function()
    try:
        yield
    finally:
        module.run, module.run_main = saved


def validate_without_files(module, config):
    """The recipe's `validate`, with the fields that name files blanked (they may not exist yet)."""
    config = dataclasses.replace(config)
    for name in ("from_official", "init_preset"):
        if hasattr(config, name):
            setattr(config, name, "")
    module.validate(config)


def check_command(where, command):
    words = without_environment(shlex.split(command))
    assert words, f"{where}: empty command {command!r}"
    program, args = words[0], words[1:]
    if re.fullmatch(r"(.*/)?python3?(\.\d+)?", program) and program != ".venv/bin/python":
        assert program == "python3" and args[:2] == ["-m", "venv"], (
            f"{where}: {command!r} runs {program!r}; use .venv/bin/python, which works in a fresh "
            f"shell after the set-up command")
        return
    for word in words:
        first = word.split("/")[0]
        if first in REPO_DIRS and "/" in word and not any(c in word for c in "*{"):
            assert os.path.exists(os.path.join(ROOT, word)), f"{where}: {command!r}: no {word}"
    if program != ".venv/bin/python" or not args:
        return
    if args[0] == "-m":
        if args[1] != "pytest":
            assert importlib.util.find_spec(args[1]), f"{where}: no module {args[1]!r}"
        return
    script = args[0]
    if script.startswith("recipes/") and script.endswith(".py"):
        module = importlib.import_module("recipes." + os.path.basename(script)[:-3])
        captured = []
        with recipe_run_replaced(module, captured):
            try:
                status = module.main(args[1:])
            except SystemExit as error:  # argparse: unknown flag or bad value
                pytest.fail(f"{where}: {command!r}: the flags do not parse (exit {error.code})")
        assert status in (None, 0) and len(captured) == 1, f"{where}: {command!r}"
        validate_without_files(module, captured[0])
    elif script.startswith("benchmarks/"):
        with open(os.path.join(ROOT, script)) as f:
            source = f.read()
        for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            assert f'"{flag}"' in source, f"{where}: {command!r}: {script} has no {flag}"


@pytest.mark.parametrize("where,command", shell_commands(), ids=lambda value: str(value)[:60])
def test_shell_command(where, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a recipe's main must not leave anything in the checkout
    check_command(where, command)
    assert not os.listdir(tmp_path)


def test_commands_found():
    commands = [command for _, command in shell_commands()]
    readme = [c for w, c in shell_commands() if w == "README.md"]
    assert any(c.startswith("bash tests/run_all_backends.sh") for c in readme)
    assert sum("recipes/pretrain.py" in c for c in commands) >= 3
    assert sum("recipes/linear_probe.py" in c for c in commands) >= 3
    assert sum("recipes/finetune.py" in c for c in commands) >= 3


def test_ci_runs_the_readme_test_command():
    readme = [command for _, command in fenced_blocks(os.path.join(ROOT, "README.md"), ("bash",))]
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert any(block.strip() in ci and "tests/run_all_backends.sh" in block for block in readme)


def module_names(tree):
    """`{local name: dotted path}` for the names a block imports from keras_mae or recipes.

    `keras_mae` itself counts as imported: a block may continue one before it.
    """
    names = {"keras_mae": "keras_mae"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("keras_mae", "recipes"):
                    names[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in ("keras_mae", "recipes"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def dotted_uses(tree, names):
    """Every dotted name used in `tree` whose root is one of `names`, resolved to its full path."""
    uses = set(names.values())
    for node in ast.walk(tree):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in names:
            uses.add(".".join([names[node.id], *reversed(parts)]))
    return uses


def resolve(dotted):
    """The object `dotted` names, importing its modules as needed; raises if there is none."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if not hasattr(obj, part):
            importlib.import_module(".".join(parts[:i + 1]))
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("where,index,block", python_blocks(),
                         ids=lambda value: str(value)[:40])
def test_python_block(where, index, block):
    tree = ast.parse(block, f"{where} block {index}")
    compile(tree, f"{where} block {index}", "exec")
    for dotted in sorted(dotted_uses(tree, module_names(tree))):
        try:
            resolve(dotted)
        except (ImportError, AttributeError) as error:
            pytest.fail(f"{where}, Python block {index}: {dotted} does not exist ({error})")


def test_quoted_names_exist():
    missing = []
    for path in doc_files():
        with open(path) as f:
            text = f.read()
        for dotted in sorted(set(re.findall(r"`((?:keras_mae|recipes)(?:\.\w+)+)", text))):
            try:
                resolve(dotted)
            except (ImportError, AttributeError):
                missing.append(f"{os.path.relpath(path, ROOT)}: {dotted}")
    assert not missing


def test_readme_python_runs(tmp_path):
    blocks = [block for _, block in fenced_blocks(os.path.join(ROOT, "README.md"), ("python",))]
    assert len(blocks) == 2
    for index, pattern, replacement in SHRINK:
        assert blocks[index].count(pattern) == 1, f"README block {index} lacks {pattern!r}"
        blocks[index] = blocks[index].replace(pattern, replacement)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TPU_NAME")}
    env.update(KERAS_BACKEND="tensorflow", MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "recon.png").stat().st_size > 0
    assert (tmp_path / "mae_tiny" / "config.json").exists()


def test_readme_figures_are_where_they_link():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("## What it reaches", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert rows
    for row in rows:
        what, result, source = [cell.strip() for cell in row.strip("|").split("|")]
        linked = re.findall(r"\]\(([^)]+)\)", source)
        assert linked, row
        texts = []
        for link in linked:
            with open(os.path.join(ROOT, link)) as f:
                texts.append(f.read())
        for figure in re.findall(r"\d+\.\d+", result):
            assert any(figure in text for text in texts), f"{figure} is not in {linked}: {row}"


def public_names(module):
    """The classes and functions `module` offers: its `__all__`, else those defined in its package."""
    if hasattr(module, "__all__"):
        names = module.__all__
    else:
        package = module.__name__ if hasattr(module, "__path__") else None
        names = [name for name, value in vars(module).items()
                 if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
                 and (getattr(value, "__module__", "") == module.__name__
                      or (package and getattr(value, "__module__", "").startswith("keras_mae.")))]
    return [name for name in names
            if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name))]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    mkdocs = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    command = [mkdocs if os.path.exists(mkdocs) else "mkdocs", "build", "--strict",
               "--site-dir", str(site_dir)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return site_dir


def test_docs_build_strict(site):
    for page in ("index.html", "recipes/index.html", "api/models/index.html",
                 "api/recipe_configs/index.html"):
        assert (site / page).exists(), page


@pytest.mark.parametrize("name", API_MODULES)
def test_api_page_covers_module(site, name):
    module = importlib.import_module(f"keras_mae.{name}")
    html = (site / "api" / name / "index.html").read_text()
    missing = [n for n in public_names(module) if f'id="keras_mae.{name}.{n}"' not in html]
    assert not missing, f"docs/api/{name}.md leaves out {missing}"
