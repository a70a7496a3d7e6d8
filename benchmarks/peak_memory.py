"""Peak training memory per image of keras_mae on each backend next to Hugging Face PyTorch.

Each implementation trains a few steps in a fresh process at the full batch
`B` and again at `B / 2` (`benchmarks/train_throughput.py` workers: the
plain `compile` path, same model, optimizer and settings), and the peak
memory of each process is read: peak resident set size on CPU, the
framework's own peak on a GPU. Memory per image is the slope
`(peak(B) - peak(B/2)) / (B/2)`: activations and their gradients, without
the fixed cost of the framework, weights and optimizer state (those are
reported too, as the peak at `B`). On CPU the TensorFlow and JAX figures are
XLA's buffers for the whole compiled step (and their allocators' caching),
not only live activations.

Usage:

    python benchmarks/peak_memory.py [--settings tiny32,base224] [--steps 2]
        [--output peak_memory.json] [--write-results [PATH]]

`--write-results` writes the table into `benchmarks/RESULTS.md` (section
`peak_memory`) or PATH.
"""

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.train_throughput import SETTINGS, run_job  # noqa: E402

IMPLS = ("tensorflow", "jax", "torch", "hf")


def peak_of(result):
    """(kind, MiB) of a worker's peak memory."""
    (kind, value), = result["peak_memory_mb"].items()
    return kind, value


def measure(impl, setting, steps, timeout):
    """Peak memory at the full and the half batch; MiB per image."""
    batch = SETTINGS[setting]["batch"]
    runs = {b: run_job((impl, setting, "plain" if impl != "hf" else "sdpa"), steps, 1, timeout, batch=b)
            for b in (batch, batch // 2)}
    for run in runs.values():
        if "error" in run:
            return {"impl": impl, "setting": setting, "error": run["error"]}
    kind, full = peak_of(runs[batch])
    _, half = peak_of(runs[batch // 2])
    return {"impl": runs[batch]["impl"], "setting": setting, "memory": kind, "batch": batch,
            "peak_mb": full, "peak_half_batch_mb": half,
            "mb_per_image": (full - half) / (batch - batch // 2)}


def markdown(settings, results):
    """The table: peak at `B`, MiB per image and its ratio to Hugging Face's, per setting."""
    lines = ["| setting | implementation | memory | batch | peak MiB | MiB/image | vs HF |",
             "|---|---|---|---|---|---|---|"]
    for setting in settings:
        rows = [r for r in results if r["setting"] == setting]
        hf = next((r for r in rows if r["impl"].startswith("hf") and "error" not in r), None)
        for r in rows:
            if "error" in r:
                lines.append(f"| {setting} | {r['impl']} | error: {r['error']} | | | | |")
                continue
            ratio = r["mb_per_image"] / hf["mb_per_image"] if hf else float("nan")
            lines.append(f"| {setting} | {r['impl']} | {r['memory']} | {r['batch']} | "
                         f"{r['peak_mb']:.0f} | {r['mb_per_image']:.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="tiny32,base224")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--output", default="peak_memory.json")
    parser.add_argument("--write-results", nargs="?", const="", default=None, metavar="PATH",
                        help="write the table into benchmarks/RESULTS.md (or PATH)")
    args = parser.parse_args(argv)
    settings = args.settings.split(",")
    for setting in settings:
        if setting not in SETTINGS:
            parser.error(f"--settings: unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    results = []
    for setting in settings:
        for impl in IMPLS:
            result = measure(impl, setting, args.steps, args.timeout)
            results.append(result)
            print(json.dumps(result), flush=True)
    table = markdown(settings, results)
    print("\n" + table)
    with open(args.output, "w") as f:
        json.dump({"machine": machine_info(), "results": results}, f, indent=2)
    print(f"written {args.output}")
    if args.write_results is not None:
        from benchmarks.results import RESULTS, library_versions, write_section

        path = write_section("peak_memory", "Peak training memory per image next to Hugging Face",
                             table, versions=library_versions(), path=args.write_results or RESULTS)
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
