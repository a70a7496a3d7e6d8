"""`benchmarks/RESULTS.md`: each benchmark writes its own section there, generated from its output.

A section sits between `<!-- begin NAME -->` and `<!-- end NAME -->`; writing it again
replaces it and leaves the other sections as they are.
"""

import datetime
import importlib.metadata
import os
import sys

from benchmarks.machine import machine_info

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
_HEADER = ("# Benchmark results\n\nEach section below is written by the benchmark it names, from "
           "that run's own output: the command, the date, the machine and the library versions "
           "come with every table.\n")


def library_versions():
    """name -> version of Keras, TensorFlow, JAX, torch and transformers, those installed."""
    found = {}
    for name, package in (("Keras", "keras"), ("TensorFlow", "tensorflow"), ("JAX", "jax"),
                          ("torch", "torch"), ("transformers", "transformers")):
        try:
            found[name] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def machine_line(versions=None):
    """One line: CPU model, its vector/matrix-unit flags, cores, Python and `versions` (name -> str)."""
    info = machine_info()
    parts = [info["cpu"], f"flags: {', '.join(info['cpu_flags']) or 'none of ' + 'avx2/avx512/amx'}",
             f"{info['cpus']} cores", f"Python {info['python']}"]
    parts += [f"{name} {version}" for name, version in (versions or {}).items()]
    return "; ".join(parts)


def write_section(name, title, body, command=None, versions=None, path=RESULTS):
    """Replaces (or appends) section `name` of the results file with `body` under a stamped header.

    Args:
        name: the section's key, e.g. `"pipeline_throughput:jpeg"`.
        title: its heading.
        body: markdown (a table and notes) from the benchmark's output.
        command: the command line that produced it (default: this process's).
        versions: library versions to record, name -> version string.
        path: the results file.

    Example:
    ```python
    write_section("demo", "A demo", "| a | b |\\n|---|---|\\n| 1 | 2 |\\n")
    ```
    """
    command = command or "python " + " ".join(sys.argv)
    text = (f"<!-- begin {name} -->\n## {title}\n\n`{command}`\n\n"
            f"{datetime.date.today().isoformat()}; {machine_line(versions)}\n\n{body.rstrip()}\n"
            f"<!-- end {name} -->\n")
    old = open(path).read() if os.path.exists(path) else _HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    return path
