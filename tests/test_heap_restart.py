import json
import os
import subprocess
import sys

import pytest

from recipes import common
from recipes.common import HEAP_KEPT_ENV, configured_backend, restart_with_heap_kept


class Restarted(Exception):
    pass


@pytest.fixture
def fake_execve(monkeypatch):
    calls = []

    def execve(path, argv, env):
        calls.append((path, argv, env))
        raise Restarted

    monkeypatch.setattr(common.os, "execve", execve)
    for name in HEAP_KEPT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(common.sys, "argv", [os.path.abspath(__file__), "--flag", "1"])
    return calls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_restart_adds_the_heap_settings_on_jax_only(fake_execve, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(Restarted):
        restart_with_heap_kept()
    (path, argv, env), = fake_execve
    assert path == sys.executable and argv == [sys.executable, os.path.abspath(__file__), "--flag", "1"]
    assert {name: env[name] for name in HEAP_KEPT_ENV} == HEAP_KEPT_ENV
    assert env["KERAS_BACKEND"] == "jax"
    for backend in ("tensorflow", "torch"):
        monkeypatch.setenv("KERAS_BACKEND", backend)
        restart_with_heap_kept()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")  # the user's own setting is kept
    restart_with_heap_kept()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("KERAS_MAE_KEEP_HEAP", "off")  # the switchboard's variable
    restart_with_heap_kept()
    monkeypatch.delenv("KERAS_MAE_KEEP_HEAP")
    monkeypatch.setattr(common.sys, "argv", ["-c"])  # not started as a script
    restart_with_heap_kept()
    assert len(fake_execve) == 1


def test_configured_backend_reads_the_environment_then_keras_json(tmp_path):
    assert configured_backend({"KERAS_BACKEND": "jax"}) == "jax"
    assert configured_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert configured_backend({"KERAS_HOME": str(tmp_path)}) == "torch"


_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
print("start", os.getpid(), os.environ.get("MALLOC_ARENA_MAX"), flush=True)
from recipes.common import restart_with_heap_kept
restart_with_heap_kept()
print("args", sys.argv[1:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_jax_command_restarts_once_in_the_same_process_with_the_settings(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "command.py"
    script.write_text(_SCRIPT.format(root=root))
    env = {k: v for k, v in os.environ.items() if k not in HEAP_KEPT_ENV}
    env["KERAS_BACKEND"] = "jax"
    out = subprocess.run([sys.executable, str(script), "--x", "2"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    first, second, args = out[:3]
    assert first.split()[2] == "None" and second.split()[2] == HEAP_KEPT_ENV["MALLOC_ARENA_MAX"]
    assert first.split()[1] == second.split()[1]  # the same pid
    assert args == "args ['--x', '2']"
