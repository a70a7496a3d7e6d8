"""The mutation runner (`tests/mutation.py`): which slips it makes, how it puts one into live code, and
that a forked child's tests kill a mutant or let it survive."""

import ast
import importlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

import mutation

SOURCE = textwrap.dedent('''
    """A module for the mutation runner's tests."""

    SCALE = 2


    def add(a, b, flag=True):
        """Docstrings stay as they are: 1 + 1."""
        if a is None:
            raise ValueError(f"a must be a number, not {1 + 1}")
        return a + b if flag else a


    def scaled(x):
        return x * SCALE


    class Box:
        LIMIT = 3

        def clip(self, x):
            return min(x, self.LIMIT) if not x < 0 else 0
    ''')


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """`mut_demo` importable from a temporary folder, and a second module holding its `add`."""
    (tmp_path / "mut_demo.py").write_text(SOURCE)
    (tmp_path / "mut_user.py").write_text("from mut_demo import add, scaled, Box\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("mut_demo", "mut_user"):
        sys.modules.pop(name, None)
    module = importlib.import_module("mut_demo")
    yield module, importlib.import_module("mut_user"), tmp_path
    for name in ("mut_demo", "mut_user"):
        sys.modules.pop(name, None)


def _site(text, line_text):
    tree = ast.parse(SOURCE)
    walk = list(ast.walk(tree))
    for index, kind, description in mutation.sites(tree):
        if description == text and line_text in SOURCE.splitlines()[walk[index].lineno - 1]:
            return index, kind
    raise AssertionError(f"no site {text!r} on {line_text!r}")


def test_sites_leave_docstrings_strings_and_argument_checks_alone():
    tree = ast.parse(SOURCE)
    walk = list(ast.walk(tree))
    found = {(SOURCE.splitlines()[walk[i].lineno - 1].strip(), text) for i, _, text in mutation.sites(tree)}
    assert ("return a + b if flag else a", "Add -> Sub") in found
    assert ("SCALE = 2", "2 -> 3") in found
    assert ("def add(a, b, flag=True):", "True -> False") in found
    assert ("return min(x, self.LIMIT) if not x < 0 else 0", "drop Not") in found
    assert ("return min(x, self.LIMIT) if not x < 0 else 0", "Lt -> LtE") in found
    lines = {line for line, _ in found}
    assert not any("raise" in line or "1 + 1" in line or "if a is None" in line for line in lines)


def test_a_mutant_reaches_every_holder_of_the_function(demo):
    module, user, _ = demo
    mutation.apply_mutant(module, SOURCE, *_site("Add -> Sub", "return a + b"))
    # the function object itself changed: the copy imported by another module sees it too
    assert module.add(5, 3) == 2 and user.add(5, 3) == 2
    mutation.apply_mutant(module, SOURCE, *_site("True -> False", "def add"))
    assert user.add(5, 3) == 5  # the default argument moved


def test_module_constants_and_methods_are_mutated_in_place(demo):
    module, user, _ = demo
    mutation.apply_mutant(module, SOURCE, *_site("2 -> 3", "SCALE = 2"))
    assert module.scaled(2) == 6
    mutation.apply_mutant(module, SOURCE, *_site("drop Not", "return min"))
    assert user.Box().clip(5) == 0 and user.Box().clip(-1) == -1
    mutation.apply_mutant(module, SOURCE, *_site("3 -> 4", "LIMIT = 3"))
    assert module.Box.LIMIT == 4


_RUN_CHILDREN = """
import importlib, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import mutation, test_mutation
module = importlib.import_module("mut_demo")
tests = [sys.argv[3]]
sites = [None, test_mutation._site("Add -> Sub", "return a + b"),
         test_mutation._site("Mult -> Div", "return x * SCALE")]
statuses = [mutation.run_child(module, test_mutation.SOURCE, site, tests, 120)[0] for site in sites]
print(json.dumps({"statuses": statuses, "after": [module.add(2, 3), module.scaled(2)]}))
"""


def test_a_forked_childs_tests_kill_a_mutant_or_let_it_survive(demo):
    # as `main` runs it: a fresh parent that has run no framework op forks the children (a process
    # that has, such as this test's, may not survive a fork)
    _, _, folder = demo
    test_file = folder / "test_mut_demo.py"
    test_file.write_text("from mut_demo import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    out = subprocess.run([sys.executable, "-c", _RUN_CHILDREN, str(folder), str(pathlib.Path(__file__).parent),
                          str(test_file)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # clean: passes; `+` -> `-` in the tested `add`: killed; `scaled` is not tested: its mutant survives
    assert report["statuses"] == ["survived", "killed", "survived"]
    # the parent's module is untouched by its children
    assert report["after"] == [5, 4]


_RUN_ON_DISK = """
import importlib, json, os, sys
folder = sys.argv[1]
sys.path[:0] = [folder, sys.argv[2]]
import mutation, test_mutation
mutation.REPO_ROOT, mutation.OVERLAY = folder, ("mut_demo.py", "tests")
module = importlib.import_module("mut_demo")
tests = [os.path.join(folder, "tests", "test_sub.py")]
add = test_mutation._site("Add -> Sub", "return a + b")
statuses = [mutation.run_child(module, test_mutation.SOURCE, site, tests, 120, on_disk)[0]
            for site, on_disk in [(None, "mut_demo.py"), (add, None), (add, "mut_demo.py")]]
hang = [os.path.join(folder, "tests", "test_hang.py")]
statuses.append(mutation.run_child(module, test_mutation.SOURCE, None, hang, 10, "mut_demo.py")[0])
print(json.dumps({"statuses": statuses}))
"""

_SUBPROCESS_TEST = """
import os, subprocess, sys
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def test_add_in_a_subprocess():
    code = "import sys; sys.path.insert(0, sys.argv[1]); from mut_demo import add; assert add(2, 3) == 5"
    subprocess.run([sys.executable, "-c", code, ROOT], check=True)
"""

_HANGING_TEST = """
import os, subprocess, time

def test_hangs_with_a_child():
    child = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(os.environ["TMPDIR"], "grandchild.pid"), "w") as f:
        f.write(str(child.pid))
    time.sleep(600)
"""


def test_on_disk_mutants_reach_the_tests_subprocesses_and_a_timeout_kills_the_whole_group(demo, tmp_path):
    _, _, folder = demo
    (folder / "tests").mkdir()
    (folder / "tests" / "test_sub.py").write_text(_SUBPROCESS_TEST)
    (folder / "tests" / "test_hang.py").write_text(_HANGING_TEST)
    temp = tmp_path / "temp"
    temp.mkdir()
    out = subprocess.run([sys.executable, "-c", _RUN_ON_DISK, str(folder), str(pathlib.Path(__file__).parent)],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, TMPDIR=str(temp)))
    assert out.returncode == 0, out.stderr[-2000:]
    statuses = json.loads(out.stdout.strip().splitlines()[-1])["statuses"]
    # clean copy: passes; the mutant in memory only: the subprocess runs the original file and it
    # survives; written into the copy as well: the subprocess imports it and it is killed
    assert statuses[:3] == ["survived", "survived", "killed"]
    # past its time limit the child is killed, and the process it started with it
    assert statuses[3] == "timeout"
    grandchild = int((temp / "grandchild.pid").read_text())
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{grandchild}") and "Z" not in _state(grandchild) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{grandchild}") or "Z" in _state(grandchild)
    # each copy of the project is removed after its child
    assert [p.name for p in temp.iterdir() if p.name.startswith("mutant-")] == []


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_table_counts_and_lists_the_survivors(tmp_path, capsys):
    results = [{"line": 3, "mutation": "Add -> Sub", "code": "a + b", "status": "killed"},
               {"line": 4, "mutation": "2 -> 3", "code": "SCALE = 2", "status": "survived"}]
    run = {"module": "keras_mae/demo.py", "backend": "torch", "results": results, "seconds": 12.0,
           "score": 0.5, "counts": {"killed": 1, "timeout": 0, "survived": 1, "equivalent": 0,
                                    "not applied": 0}}
    (tmp_path / "demo.json").write_text(json.dumps(run))
    path = tmp_path / "RESULTS.md"
    assert mutation.main(["--table", str(tmp_path), "--write-results", str(path)]) == 0
    text = path.read_text()
    assert "| `keras_mae/demo.py` | torch | 2 | 1 | 0 | 1 | 0 | 50.0% | 12 |" in text
    assert "- `keras_mae/demo.py:4` 2 -> 3: `SCALE = 2`" in text


def test_every_mapped_module_and_test_file_exists():
    root = mutation.REPO_ROOT
    for module, tests in mutation.MODULES.items():
        assert (pathlib.Path(root) / module).is_file(), module
        for test in (t for t in tests if t.startswith("tests/")):
            assert (pathlib.Path(root) / test.split("::")[0]).is_file(), test
