"""Peak training memory per image of keras_mae on each backend next to Hugging Face PyTorch.

Each implementation trains a few steps in a fresh process at the full batch
`B` and again at `B / 2` (`benchmarks/train_throughput.py` workers, same
model, optimizer and settings), and the peak memory of each process is read:
peak resident set size on CPU, the framework's own peak on a GPU. Memory per
image is the slope `(peak(B) - peak(B/2)) / (B/2)`: activations and their
gradients, without the fixed cost of the framework, weights and optimizer
state (those are printed too, as the peak at `B`).

Usage: `python benchmarks/peak_memory.py [--settings tiny32,base224] [--output peak_memory.json]`.

Measured in one run (the machine and versions of `benchmarks/train_throughput.py`:
2-core Intel Xeon with AVX-512/AMX; peak resident set size; 2 steps after 1
warm-up; B = 128; PyTorch with `jit_compile=True`, the compiled step; on
TensorFlow and JAX the blocks recompute their LayerNorms and GELU in the
backward pass, see `keras_mae.layers.TransformerBlock`):

    setting   implementation           peak MiB  MiB/image  vs HF
    tiny32    keras_mae/tensorflow         2511       5.33   1.03
    tiny32    keras_mae/jax                1753       6.79   1.31
    tiny32    keras_mae/torch              1657       5.13   0.99
    tiny32    hf_transformers/torch        1924       5.19   1.00

The slope moves between runs by more than the differences here: HF gave
5.19, 6.17 and 7.02 MiB/image in three runs that day, and JAX 6.64 against
HF's 7.02 (0.95x) in another. XLA's own account of the JAX step is steadier:
its buffers for the step are 7.05 MiB/image (9.77 before the recomputation).
What remained there was the decoder's attention: XLA kept three
`(B, heads, N, N)` float32 tensors per block (a product's output and two
elementwise fusions of it, in XLA's buffer assignment), 0.84 MiB/image in
all; recomputing the attention with `keras.remat`, or writing it as two
einsums and a softmax, left XLA's buffers as they were. Writing its
backward pass out so that it keeps only the weights
(`keras_mae.layers.attention.attention_keeping_weights`, JAX on a CPU),
and gathering the visible and unshuffled tokens as rows
(`keras_mae.ops.gather_tokens`; `take_along_axis` with broadcast indices
kept a `(B, K, D, 3)` int32 index tensor, 12 MiB for the unshuffle) took
XLA's buffers for the step from 942.1 to 844.1 MB, 7.02 -> 6.29
MiB/image. With both, one run on a 2-core AMD EPYC (AVX-512, no AMX):

    setting   implementation           peak MiB  MiB/image  vs HF
    tiny32    keras_mae/tensorflow         2567       5.69   0.93
    tiny32    keras_mae/jax                1660       5.26   0.86
    tiny32    keras_mae/torch              1651       4.20   0.69
    tiny32    hf_transformers/torch        1911       6.13   1.00

Before the recomputation: TensorFlow 14.91 and 15.30 MiB/image (2.42x HF),
JAX 9.79 (1.59x). Before the compiled PyTorch step (eager PyTorch, AMD EPYC):
PyTorch 7.79 MiB/image, 1.35x HF; ViT-B/16 (B = 16): TensorFlow 154.62,
JAX 213.59, PyTorch 60.82, HF 90.36 MiB/image (0.67x for PyTorch).

On CPU the TensorFlow and JAX figures are XLA's buffers for the whole compiled
step (and their allocators' caching), not only live activations.
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
    runs = {b: run_job((impl, setting, "visible_only"), steps, 1, timeout, batch=b)
            for b in (batch, batch // 2)}
    for run in runs.values():
        if "error" in run:
            return {"impl": impl, "setting": setting, "error": run["error"]}
    kind, full = peak_of(runs[batch])
    _, half = peak_of(runs[batch // 2])
    return {"impl": runs[batch]["impl"], "setting": setting, "memory": kind, "batch": batch,
            "peak_mb": full, "peak_half_batch_mb": half,
            "mb_per_image": (full - half) / (batch - batch // 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="tiny32,base224")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--output", default="peak_memory.json")
    args = parser.parse_args()
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
    print(f"\n{'setting':<9} {'implementation':<24} {'memory':<8} {'peak MiB':>9} {'MiB/image':>10} {'vs HF':>6}")
    for setting in settings:
        rows = [r for r in results if r["setting"] == setting]
        hf = next((r for r in rows if r["impl"].startswith("hf") and "error" not in r), None)
        for r in rows:
            if "error" in r:
                print(f"{setting:<9} {r['impl']:<24} error {r['error']}")
                continue
            ratio = r["mb_per_image"] / hf["mb_per_image"] if hf else float("nan")
            print(f"{setting:<9} {r['impl']:<24} {r['memory']:<8} {r['peak_mb']:>9.0f} "
                  f"{r['mb_per_image']:>10.2f} {ratio:>6.2f}")
    with open(args.output, "w") as f:
        json.dump({"machine": machine_info(), "results": results}, f, indent=2)
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
