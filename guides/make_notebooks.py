"""Turns the guide sources `guides/*.py` into Colab notebooks `guides/ipynb/*.ipynb`.

Usage:
    python guides/make_notebooks.py            # (re)write every notebook
    python guides/make_notebooks.py --check    # exit 1 if a notebook is missing or stale
    python guides/make_notebooks.py pretrain_cifar10 official_weights   # only these

Source format (each guide is a plain Python script, runnable top to bottom):

1. The file opens with a docstring of `Key: value` lines: `Title`, `Author`,
   `Date created`, `Last modified`, `Description`, `Accelerator` (`GPU`,
   `TPU` or `None`). It becomes the notebook's title cell, under an
   "Open in Colab" badge.
2. Every other string literal whose opening and closing `\"\"\"` stand alone
   at the start of a line (column 0) is a Markdown cell; the Python between
   two such blocks is one code cell (blank lines at its ends dropped, empty
   cells skipped). Docstrings inside functions are indented and stay code.
3. Shell commands: a code line of the form `# !command` (a comment, so the
   script ignores it) becomes the notebook line `!command`. The guides use it
   for the install line, `# !pip install -q git+https://github.com/keras-mae/keras-mae`.
4. A code cell may set the Keras backend with a Colab form field
   (`backend = "jax"  # @param [...]`); it is kept as written.

The output is deterministic (nbformat 4, no cell ids, no outputs, one-space
JSON indentation), so `--check` can compare bytes. `tests/test_guides.py`
runs the check.
"""

import argparse
import json
import os
import re
import sys

GUIDES_DIR = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK_DIR = os.path.join(GUIDES_DIR, "ipynb")
REPOSITORY = "keras-mae/keras-mae"
BRANCH = "main"
HEADER_KEYS = ("Title", "Author", "Date created", "Last modified", "Description", "Accelerator")
_FENCE = '"""'
_SHELL_LINE = re.compile(r"^(\s*)# !(.+)$")


def colab_url(name):
    """The Colab address of the notebook of guide `name` on GitHub."""
    return (f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/"
            f"guides/ipynb/{name}.ipynb")


def guide_names(directory=GUIDES_DIR):
    """Sorted names of the guide sources (every `*.py` but this generator)."""
    this = os.path.basename(__file__)
    return sorted(f[:-3] for f in os.listdir(directory)
                  if f.endswith(".py") and f != this and not f.startswith("_"))


def split_blocks(text):
    """`text` -> list of `("markdown" | "code", str)` in file order.

    A Markdown block starts with a line that begins with `\"\"\"` and ends at
    the next line that ends with `\"\"\"`, both at column 0.
    """
    blocks, code = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(_FENCE):
            if code:
                blocks.append(("code", "\n".join(code)))
                code = []
            body = [line[len(_FENCE):]]
            if body[0].rstrip().endswith(_FENCE) and len(body[0].rstrip()) >= len(_FENCE):
                body[0] = body[0].rstrip()[:-len(_FENCE)]
            else:
                i += 1
                while i < len(lines) and not lines[i].rstrip().endswith(_FENCE):
                    body.append(lines[i])
                    i += 1
                if i == len(lines):
                    raise ValueError(f"unclosed {_FENCE} block starting: {line!r}")
                body.append(lines[i].rstrip()[:-len(_FENCE)])
            blocks.append(("markdown", "\n".join(body)))
        else:
            code.append(line)
        i += 1
    if code:
        blocks.append(("code", "\n".join(code)))
    return [(kind, body.strip("\n")) for kind, body in blocks
            if body.strip() and not (kind == "markdown" and not body.strip())]


def parse_header(markdown):
    """The guide's opening docstring -> dict of its `Key: value` fields."""
    fields = {}
    for line in markdown.strip().splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in HEADER_KEYS:
            raise ValueError(f"header line {line!r} is not one of {HEADER_KEYS} followed by ':'")
        fields[key.strip()] = value.strip()
    missing = [k for k in HEADER_KEYS if k not in fields]
    if missing:
        raise ValueError(f"header is missing {missing}")
    return fields


def _lines(text):
    """Notebook `source`: a list of lines, each but the last ending with a newline."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def _markdown_cell(text):
    return {"cell_type": "markdown", "metadata": {"colab_type": "text"}, "source": _lines(text)}


def _code_cell(text):
    lines = [_SHELL_LINE.sub(r"\1!\2", line) for line in text.split("\n")]
    return {"cell_type": "code", "execution_count": None, "metadata": {"colab_type": "code"},
            "outputs": [], "source": _lines("\n".join(lines))}


def _dedent_markdown(text):
    """Strips the common indentation of a Markdown block (usually none)."""
    lines = text.split("\n")
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(line[cut:] for line in lines)


def render(text, name):
    """The notebook JSON text for the guide source `text` called `name`."""
    blocks = split_blocks(text)
    if not blocks or blocks[0][0] != "markdown":
        raise ValueError(f"guide {name!r} must open with its header docstring")
    header = parse_header(blocks[0][1])
    badge = (f'<a href="{colab_url(name)}" target="_parent"><img '
             'src="https://colab.research.google.com/assets/colab-badge.svg" '
             'alt="Open In Colab"/></a>')
    title = "\n".join([
        badge,
        "",
        f"# {header['Title']}",
        "",
        f"**Author:** {header['Author']}<br>",
        f"**Date created:** {header['Date created']}<br>",
        f"**Last modified:** {header['Last modified']}<br>",
        f"**Description:** {header['Description']}",
    ])
    cells = [_markdown_cell(title)]
    for kind, body in blocks[1:]:
        cells.append(_markdown_cell(_dedent_markdown(body)) if kind == "markdown"
                     else _code_cell(body))
    accelerator = header["Accelerator"]
    colab = {"name": name, "provenance": [], "toc_visible": True}
    metadata = {"colab": colab,
                "kernelspec": {"display_name": "Python 3", "language": "python",
                               "name": "python3"},
                "language_info": {"name": "python"}}
    if accelerator.upper() in ("GPU", "TPU"):
        metadata["accelerator"] = accelerator.upper()
        if accelerator.upper() == "GPU":
            colab["gpuType"] = "T4"
    notebook = {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 0}
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def notebook_path(name):
    return os.path.join(NOTEBOOK_DIR, name + ".ipynb")


def expected_notebook(name):
    with open(os.path.join(GUIDES_DIR, name + ".py"), encoding="utf-8") as f:
        return render(f.read(), name)


def stale_notebooks(names=None):
    """Problems as strings: notebooks missing or out of date, notebooks without a source."""
    names = guide_names() if names is None else names
    problems = []
    for name in names:
        path = notebook_path(name)
        if not os.path.exists(path):
            problems.append(f"{os.path.relpath(path, GUIDES_DIR)}: missing")
            continue
        with open(path, encoding="utf-8") as f:
            if f.read() != expected_notebook(name):
                problems.append(f"{os.path.relpath(path, GUIDES_DIR)}: out of date with {name}.py")
    if os.path.isdir(NOTEBOOK_DIR):
        for file in sorted(os.listdir(NOTEBOOK_DIR)):
            if file.endswith(".ipynb") and file[:-6] not in guide_names():
                problems.append(f"ipynb/{file}: no guide source {file[:-6]}.py")
    return problems


def write(names=None):
    """Writes the notebooks of `names` (all guides by default); returns their paths."""
    os.makedirs(NOTEBOOK_DIR, exist_ok=True)
    written = []
    for name in guide_names() if names is None else names:
        path = notebook_path(name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(expected_notebook(name))
        os.replace(tmp, path)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="guide names (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is missing or out of date")
    args = parser.parse_args(argv)
    known = guide_names()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown guides {unknown}; known: {known}")
    names = args.names or None
    if args.check:
        problems = stale_notebooks(names)
        for problem in problems:
            print(problem)
        if problems:
            print("Regenerate with: python guides/make_notebooks.py")
            return 1
        print(f"{len(names or known)} notebooks up to date")
        return 0
    for path in write(names):
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
