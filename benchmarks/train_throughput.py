"""Training throughput of keras_mae on each Keras backend next to Hugging Face PyTorch.

Measures, in one run on one machine, the median time of a training step
(after warm-up) and reports images/s:
  1. `keras_mae` on TensorFlow, JAX and PyTorch (each in its own process,
     `jit_compile=True`) and Hugging Face
     `ViTMAEForPreTraining` in PyTorch with the same architecture, batch and
     AdamW(0.9, 0.95), for the 32 px tiny config and for ViT-B/16 at 224 px;
  2. the asymmetric design's saving: ViT-B/16 step time with mask tokens in the
     encoder over all patches (the paper's Table 2 baseline) over the step
     time with the encoder on visible patches only, next to their FLOPs ratio.
Results print as a table and are written to JSON.

Usage: `python benchmarks/train_throughput.py [--quick] [--settings tiny32,base224]
[--precision float32|bfloat16] [--peak-tflops T] [--rounds N] [--output train_throughput.json]`
(`--quick`: fewer steps and the small config only, for a smoke test;
`--rounds N`: the whole job list N times over, each job's median round
reported with all N figures, since one job's figure moved by up to 28%
between runs on a shared 2-core machine;
`--precision bfloat16`: Keras `mixed_bfloat16` next to Hugging Face under
`torch.autocast`; `--peak-tflops`: the chip's peak in that precision, e.g.
989 for an H100/H200 SXM in dense bfloat16, adds model FLOPs utilisation).
On a GPU every implementation runs on it (Hugging Face moved with `.to("cuda")`).

The PyTorch rows use `jit_compile=True`, the MAE's own compiled step
(`keras_mae.models.torch_step`); "keras_default" is what `compile` does
unasked (Keras' "auto": eager PyTorch). TensorFlow and JAX run XLA;
"heap_kept" is JAX with glibc's malloc kept on its heap (`HEAP_KEPT_ENV`,
why below).

Tiny config, float32, three rounds (`--settings tiny32 --rounds 3`) on a
2-core AMD EPYC (avx2, avx512f, avx512_bf16; no AMX), Keras 3.15.1, TF
2.21, JAX 0.10.2, torch 2.13.0+cpu with 2 threads, transformers 5.25;
each row the median round, "own products" the row against the matrix
products alone on its own backend (`benchmarks/matmul_ceiling.py`;
Hugging Face against PyTorch's):

    implementation             variant          images/s   vs HF   own products   rounds
    keras_mae/tensorflow       visible_only       146.20    1.28        73%       146.2 132.0 146.3
    keras_mae/jax              visible_only       100.75    0.88        67%       100.7  90.5 115.9
    keras_mae/jax              heap_kept          114.82    1.00        76%       114.8 122.4 111.3
    keras_mae/torch            visible_only       127.18    1.11        81%       127.2 110.9 141.5
    keras_mae/torch            keras_default      109.97    0.96        70%       110.0 122.1 101.0
    hf_transformers/torch      visible_only       114.05    1.00        73%       114.0 105.8 127.2  (SDPA)
    hf_transformers/torch      eager_attention    114.28    1.00        73%       107.5 117.8 114.3
    matmul_ceiling/tensorflow  visible_only       201.34    1.76                  172.6 201.3 204.4
    matmul_ceiling/torch       visible_only       156.38    1.37                  155.8 156.4 165.8
    matmul_ceiling/jax         heap_kept          151.24    1.32                  151.2 136.3 164.6

Within each round TensorFlow ran 1.28x, 1.12x and 1.15x Hugging Face's
faster attention. Two single runs that afternoon, the same code, gave
1.30x (TensorFlow 158.4, HF 122.3) and 1.04x (PyTorch compiled 134.0,
TensorFlow 131.9, HF 129.4): one job's figure moved by up to 28% between
runs (JAX 115.9 and 90.5 img/s), hence the rounds. PyTorch's products
alone (the BLAS behind `mm`, MKL in this build) ran 0.78x TensorFlow's
here, and they bound Hugging Face and our PyTorch step alike; XLA in JAX
0.10 (YNNPACK's products) ran them at 0.82x TensorFlow's XLA (151.2
against 184.8 img/s, the median rounds; TensorFlow's figure is its
faster variant, oneDNN without XLA, 201.3).

The same CPU, bfloat16 (`--precision bfloat16`), one run:

    implementation             variant          images/s   vs HF   own products
    keras_mae/tensorflow       visible_only       122.89    0.59    33% (76% of XLA's)
    keras_mae/jax              visible_only        86.18    0.41    51%
    keras_mae/jax              heap_kept           99.48    0.48    58%
    keras_mae/torch            visible_only       236.73    1.14    74%
    keras_mae/torch            keras_default      225.12    1.08    70%
    hf_transformers/torch      visible_only       112.76    0.54    35%   (SDPA)
    hf_transformers/torch      eager_attention    208.39    1.00    65%
    matmul_ceiling/tensorflow  visible_only       374.16    1.80
    matmul_ceiling/torch       visible_only       320.57    1.54
    matmul_ceiling/jax         heap_kept          170.53    0.82

TensorFlow's products ran 374.2 img/s with oneDNN and 162.6 with XLA,
which is what its step runs. This CPU has bfloat16 dot-product
instructions and no matrix unit, and PyTorch's own products alone ran
1.54x Hugging Face's step: 1.5x HF would leave the compiled step 10 ms
a step outside them. torch.profiler over 3 compiled steps (0.55 s each)
put the products at 332 ms a step (`mm` 239, `addmm` 63, `bmm` 30) and
Inductor's fused kernels (norms, GELU, softmax, residuals, the AdamW
update) at 134 ms. TensorFlow without XLA (Keras' default on a CPU,
oneDNN's products) ran 112.1 img/s against 107.4 with XLA in one pair,
both below its float32 step.

In short, on this CPU: in float32 the fastest backend (TensorFlow) ran
1.28x HF in the medians and 1.12-1.28x within a round, at 73% of its
own products alone (1.76x HF); in bfloat16 PyTorch ran 1.14x HF, at 74%
of its products alone, which run 1.54x HF on a CPU without a bfloat16
matrix unit (1.32-1.35x HF on the Intel Xeon with AMX below, profile
there); JAX 0.88x HF, 1.00x with the heap kept (it
was 0.26-0.45x), the rest XLA:CPU's (reproductions below); peak memory
per image at or below HF's on every backend (`benchmarks/peak_memory.py`).

XLA's trace of the JAX step on this CPU (heap kept, 3 steps,
`XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true` under `jax.profiler`):
1,145 ms of kernels a step, of which YNNPACK's product fusions 889 ms,
where the same products alone took 692 ms that hour. One product shows
the gap: the decoder's `fc2` input gradient, a plain (8320, 128) x
(128, 512) product in a fusion of its own, took 12.4-13.2 ms in each of
the four blocks and 6.5 ms alone. The kernels add up to more than
the step's 1,068 ms of execution, so XLA:CPU ran some of them at the
same time, sharing the two cores; why that product took twice as long
was not traced further. The weight-gradient products (`x^T g`) ran at
91-135 GFLOP/s alone against 151-190 for the forward shapes, and
materialising `x^T` first (behind `lax.optimization_barrier`) was up to
25% faster alone on 6 of 7 of the step's shapes; not tried in the step.
Tried in the step and not taken: the exact GELU written as PyTorch
computes it, `x * 0.5 * (1 + erf(x / sqrt(2)))` (JAX's own takes erfc
and both branches), ran 1.41 against 4.78 ms forward alone on a
(8320, 768) float32 tensor, equally close to PyTorch's values (1.2e-6),
but the step took 1.050 and 0.985 s against 1.052 and 1.002 s in two
pairs; `jax.nn.dot_product_attention` instead of
`attention_keeping_weights`, two models in one process with their steps
alternated, 24 each: medians 0.943 against 0.929 s, so the attention
that keeps less memory stays.

An earlier one-run table on an AMD EPYC, the same code: TensorFlow
141.13 img/s (1.26x), JAX 101.63 (0.91), JAX heap kept 139.59 (1.25),
PyTorch compiled 101.31 (0.91), Keras' default PyTorch 133.94 (1.20),
HF 106.24 (SDPA) and 111.93 (eager), products alone under TensorFlow
197.78 (1.77). A pair rerun after it gave the compiled PyTorch step
1.24 s and eager 1.29 s, with the products (`aten::mm`, `aten::addmm`)
0.80 s of each in torch.profiler.
The JAX changes, in pairs of runs alternated on that machine (one
process each, 10 steps): the row gather and the attention together
gave steps of 1.20, 1.19 and 1.31 s against 1.28, 1.37 and 1.24 s and
the same losses; XLA's buffers for the step 942.1 -> 844.1 MB.

Measured on a 2-core Intel Xeon (avx2, avx512f, avx512_bf16, avx512_fp16,
amx_bf16, amx_tile; `benchmarks/machine.py` records them), no GPU, Keras 3.15.1,
TF 2.21, JAX 0.10.2, torch 2.13.0+cpu with 2 threads, transformers 5.24.
Tiny config, float32, one run (`--settings tiny32`), images/s, with the
blocks recomputing LayerNorm and GELU on TensorFlow and JAX
(`keras_mae.layers.TransformerBlock`):

    implementation             variant          images/s   vs HF
    keras_mae/tensorflow       visible_only       145.60    0.96
    keras_mae/jax              visible_only        99.84    0.66
    keras_mae/jax              heap_kept          117.39    0.78
    keras_mae/torch            visible_only       148.85    0.98
    keras_mae/torch            keras_default      138.91    0.92
    hf_transformers/torch      visible_only       148.22    0.98   (SDPA)
    hf_transformers/torch      eager_attention    151.41    1.00
    matmul_ceiling/tensorflow  visible_only       230.27    1.52

The same, bfloat16 (`--precision bfloat16`: Keras `mixed_bfloat16`, HF
under `torch.autocast`), one run:

    keras_mae/tensorflow       visible_only       107.72    0.44
    keras_mae/jax              visible_only        86.86    0.36
    keras_mae/jax              heap_kept           82.96    0.34
    keras_mae/torch            visible_only       329.97    1.35
    keras_mae/torch            keras_default      217.50    0.89
    hf_transformers/torch      visible_only       133.23    0.55   (SDPA)
    hf_transformers/torch      eager_attention    244.29    1.00
    matmul_ceiling/tensorflow  visible_only       716.80    2.93

The machine ran slower that hour than in the runs before (HF 151 and 244
img/s), and the ratios are within one run. The run before, an hour
earlier with the same code: float32 TensorFlow 160.24 (0.95), JAX 111.81
(0.66), PyTorch compiled 174.48 (1.04), HF 168.25, products alone 1.56x;
bfloat16 TensorFlow 122.00 (0.53), JAX 87.04 (0.38), PyTorch compiled
306.05 (1.32), HF 231.70, products alone 2.89x. Before the recomputation:
float32 TensorFlow 184.53 (0.89), JAX 116.67 (0.57), PyTorch compiled
199.44 (0.97), HF 206.28; bfloat16 TensorFlow 142.81 (0.42), JAX 104.54
(0.31), PyTorch compiled 410.15 (1.20), HF 342.38. Earlier that day,
before `TokenDense`: PyTorch compiled 213.87 img/s = 1.06x HF (201.91) in
float32, 419.41 = 1.16x (360.32) in bfloat16, JAX 57.11 (0.28x). Run to
run the figures move by up to 10% on this shared machine, and by more
from one hour to the next.

What bounds PyTorch (torch.profiler over 3 compiled steps, kernel names from
Inductor): in float32 a step is about 540 ms, of which the matrix products
(`aten::mm`, the same products HF runs) 323-373 ms, PyTorch's CPU flash
attention forward and backward 55-60 ms, exact GELU (erf) forward and
backward 73 ms, LayerNorm and residual kernels about 40 ms, the compiled
AdamW 5 ms. 1.3x HF would need everything but the products in about 90 ms;
GELU alone is 73 (37 M activations a step). The same compiled kernel on
one warm (8320, 512) float32 tensor took 1.51 ms forward and 4.24 ms
forward and backward, twice its rate inside the step, and other
arithmetic was no faster: the tanh form took 4.15 / 9.00 ms and an erf by
Abramowitz-Stegun 7.1.26 (within 1.4e-6) 1.96 / 5.47 ms. The step's
inputs to it come from memory rather than cache, the likely difference
(memory traffic not counted). In bfloat16 a step is about 312 ms: products
102 ms, attention's batched products 30 ms, GELU 62 ms (20%), softmax 19 ms.
Tried, no gain beyond noise: Inductor's `max_autotune` with its C++ GEMM
templates and fused epilogues (bfloat16 461 vs 433 img/s, float32 194 vs
183-220; first step 133 s instead of 54-96 s); explicit attention products
instead of the fused kernel in float32 (185-223 vs 195-220). Before the
compiled step, Keras' own `torch.compile` of the whole `train_step` ran
176.5 img/s (eager 191.7): it graph-broke 45 times (the seed generator,
Keras' flash-attention check) and fell back to layer-by-layer graphs.

What bounds JAX: XLA:CPU. JAX's own matrix products are fast (290 GFLOP/s
for one (2176, 192) x (192, 768) product, PyTorch 327, TF's XLA 210). The
backward pass was 8.5x the forward (value-and-grad 2,268 ms, forward 237 ms,
batch 128); half of it was the kernel gradient of 3-D `Dense` products,
which `keras_mae.layers.TokenDense` now computes in 2-D (1,088 ms). What is
left is in the transformer blocks (12 encoder blocks x 46 ms + 4 decoder
blocks x 130 ms, fused by XLA), and two XLA:CPU costs show alone:

    x = jnp.ones((128, 65, 768)); jax.jit(lambda x: jax.nn.gelu(x, approximate=False))(x)
    # 8.0 ms forward, 4.9 ms gradient (the tanh form: 3.2 / 2.8 ms)
    # Dense(512, activation="gelu") on (128, 65, 128): 21.2 ms, without the GELU 3.7 ms
    MultiHeadSelfAttention(128, 4) on (128, 65, 128): forward 10.6 ms, gradient 56.6 ms

XLA's own trace of the step (`XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`
under `jax.profiler`, 3 steps, tiny config, batch 128): of 1.09-1.15 s of
kernels a step, the products (YNNPACK fusions) took 704-724 ms, the exact
GELU (its forward, its recomputation and its backward) about 120 ms, the
AdamW update's two largest fusions 15 ms. A third XLA:CPU cost is the allocator, and it
shows alone. XLA:CPU allocates a program's temporaries as one buffer at
every call, glibc's malloc maps a buffer that large afresh each time and
unmaps it after, and the kernel zeroes each page on its first touch:

    x, w = jnp.ones((8192, 1024)), jnp.ones((1024, 1024))
    f = jax.jit(lambda x, w: jnp.sum(jnp.cumsum(jax.lax.erf(x @ w) @ w, axis=0)))
    # a 98 MiB temporary: 33,310 page faults a call (ru_minflt); with HEAP_KEPT_ENV 7,990

The training step's buffer is 898 MiB: 254,700-255,200 page faults and
0.38-0.43 s of system CPU time a step (TensorFlow's allocator keeps its
memory: no faults). `HEAP_KEPT_ENV` (one malloc arena, no mmap, no trim)
keeps it on glibc's heap: 134-288 faults, 0.02-0.03 s, and steps of
0.97-0.98 s against 1.00-1.08 s (three pairs of runs alternated, 3-9%
faster; 18% in the table's run). In bfloat16 the faults go too (218,000
a step to 0-153) but the time does not: steps of 1.35 and 1.55 s against
1.41 and 1.44 s, and 82.96 against 86.86 img/s in the table, while the
user CPU time rose by about what the system time fell. The "heap_kept"
rows run JAX so. Huge pages for malloc
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) cut the faults to 707 but not
the zeroing (0.51 s of system time). XLA flags tried on the step, one run
each against 1.03-1.13 s: `--xla_cpu_prefer_vector_width=512`,
`--xla_cpu_use_onednn=true`, `--xla_cpu_use_xnnpack=true`,
`--xla_cpu_enable_fast_math=true`, `--xla_cpu_use_thunk_runtime=false`,
and YNNPACK off (`--xla_cpu_experimental_ynn_fusion_type=`, Eigen's
products, with or without oneDNN or XNNPACK fusions) all ran 1.02-1.12 s;
slower were `--xla_cpu_use_fusion_emitters=false` (1.22 s), XNNPACK's
greedy graph fusion (1.20 s) and YNNPACK's element-wise fusions
(`=dot,eltwise`: 1.52-1.68 s). Attention as two head-major einsums
(`(B, H, N, d)`, transposed before) instead of `jax.nn.dot_product_attention`
gave the same losses and steps of 1.18-1.21 s against 1.15-1.26 s (four
pairs alternated, 2.5% on average, within the noise), so it was not taken.
A fourth XLA:CPU cost shows alone: a batched product runs on one core.

    q = k = jnp.ones((128, 4, 65, 32))   # the decoder's (B, heads, N, d)
    jax.jit(lambda q, k: jnp.einsum("bhqd,bhkd->bhqk", q, k))(q, k)
    # 3.9-4.3 ms, 32-36 GFLOP/s, with YNNPACK, Eigen or oneDNN alike; one
    # process of 300 calls used 3.09 s of user CPU time in 3.22 s of wall time; PyTorch's bmm: 4.40 ms on one thread,
    # 2.37 ms on two; split into 2, 4 or 8 products: 4.4-5.3 ms

The step has six such products per block (two forward, four backward).

The heap settings were also tried from inside the process (glibc's
`mallopt` through ctypes, the same three settings) and not taken: before
any other import they gave 0 faults and steps of 1.07-1.18 s against
1.29 and 1.32 s (AMD EPYC), but after the first step they changed nothing,
and after `import keras_mae` they removed only 37-45% of the 98 MiB
temporary's faults in two of nine test processes: threads that have
allocated keep their own arenas. Environment variables at the process's
start are the reliable form, and the recipes on JAX restart themselves
once with them (`recipes.common.restart_with_heap_kept`).

ViT-B/16, batch 16, float32, one run (`--settings base224`) on the Intel
Xeon above, with the compiled PyTorch step and the recomputing blocks
(images/s, vs HF, peak resident memory in MiB):

    keras_mae/tensorflow       visible_only             3.54    0.80   5143
    keras_mae/jax              visible_only             2.92    0.66   4970
    keras_mae/torch            visible_only             4.45    1.00   4064
    keras_mae/torch            keras_default            3.80    0.85   4435
    hf_transformers/torch      visible_only             4.45    1.00   4046   (SDPA)
    hf_transformers/torch      eager_attention          3.95    0.89   4620
    matmul_ceiling/tensorflow  visible_only             4.26    0.96
    asymmetric saving: TensorFlow step time x2.19 for FLOPs x2.35 (93%),
    JAX x2.58 (110%)

At this size the step is its products: PyTorch runs at 104% of the
products-alone figure (which times them under TensorFlow, so PyTorch's
own products are the faster here), and the memory of one process with the model,
AdamW's state and batch 16 is PyTorch's and HF's within 0.5%. An earlier
run on an AMD EPYC, before the compiled PyTorch step, gave TensorFlow 2.84
(1.05x), JAX 1.45 (0.54x), PyTorch 2.54 (0.94x), HF 2.69.

The matrix-product ceiling (`benchmarks/matmul_ceiling.py`) runs the step's
products alone on each backend; on TensorFlow with and without XLA,
keeping the faster (the Intel Xeon tables ran it on TensorFlow only). In
the Intel Xeon tables XLA's bfloat16 products ran slower than its float32 ones (143 vs 195
GFLOP/s; 177 vs 237 in the run before), while oneDNN's, without XLA, ran
596 GFLOP/s in bfloat16 (AMX), 2.5x their 234 in float32 (736 and 282 in
the run before): that is why TensorFlow and JAX, both on XLA, fall behind
in bfloat16 on this CPU.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.machine import machine_info  # noqa: E402
# glibc's malloc kept on its heap, the recipes' setting on JAX: the "heap_kept" variant
from recipes.common import HEAP_KEPT_ENV  # noqa: E402

SETTINGS = {
    "tiny32": dict(config="mae_vit_tiny_patch4", batch=128, image=32),
    "base224": dict(config="mae_vit_base_patch16", batch=16, image=224),
    # for a GPU (`--settings base224,large224 --batch 256 --precision bfloat16`); not in the default run
    "large224": dict(config="mae_vit_large_patch16", batch=16, image=224),
}




def median(values, key=None):
    """The middle of `values` sorted by `key` (the upper middle of an even count)."""
    values = sorted(values, key=key)
    return values[len(values) // 2]


def median_round(runs):
    """The run with the median images/s of one job's rounds, with every round's figure.

    Rounds run the whole job list again, so a slow hour on a shared machine
    weighs on every implementation alike; failed rounds are left out (all
    failed: the last failure).
    """
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    return dict(median(ok, key=lambda r: r["images_per_s"]),
                rounds_images_per_s=[r["images_per_s"] for r in ok])


def setting_spec(setting, batch=None):
    """`SETTINGS[setting]` with its batch replaced by `batch` when given."""
    return dict(SETTINGS[setting], batch=batch or SETTINGS[setting]["batch"])


def peak_memory_mb(backend):
    """Peak memory of this process so far, in MiB: on the accelerator when there is one.

    CPU: peak resident set size (`ru_maxrss`). GPU: the framework's own peak
    (`torch.cuda.max_memory_allocated`, TensorFlow `get_memory_info("GPU:0")["peak"]`,
    JAX `memory_stats()["peak_bytes_in_use"]`).
    """
    import resource

    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return {"gpu": torch.cuda.max_memory_allocated() / 2**20}
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return {"gpu": tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20}
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return {"gpu": device.memory_stats()["peak_bytes_in_use"] / 2**20}
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {"cpu_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20}


def keras_worker(setting, steps, warmup, variant, batch=None, precision="float32"):
    """Runs in a subprocess with KERAS_BACKEND set; prints one JSON line."""
    import keras
    import numpy as np

    if precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    import keras_mae
    from benchmarks.flops import mae_train_flops

    spec = setting_spec(setting, batch)
    backend = keras.backend.backend()
    cls = None
    if variant == "mask_tokens_in_encoder":
        from benchmarks.mask_tokens_baseline import MaskTokensInEncoderMAE as cls
    config = dict(keras_mae.models.CONFIGS[spec["config"]], norm_pix_loss=True, seed=0)
    model = keras_mae.models.from_arguments(cls or keras_mae.MaskedAutoencoder, **config)
    # the fast path: XLA on TensorFlow and JAX, the MAE's compiled step on PyTorch;
    # "keras_default": what `compile` does unasked (Keras' "auto": eager PyTorch, no XLA on a TF CPU)
    model.compile(optimizer=keras.optimizers.AdamW(1.5e-4, beta_1=0.9, beta_2=0.95, weight_decay=0.05),
                  jit_compile="auto" if variant == "keras_default" else True)
    x = np.random.RandomState(0).rand(spec["batch"], spec["image"], spec["image"], 3).astype("float32")
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = model.train_on_batch(x)
        float(loss if not isinstance(loss, list) else loss[0])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    tokens = model.num_patches if variant == "mask_tokens_in_encoder" else None
    step = median(times)
    return {
        "impl": f"keras_mae/{backend}", "setting": setting, "variant": variant,
        "batch": spec["batch"], "step_s": step, "images_per_s": spec["batch"] / step,
        "train_gflops_per_image": mae_train_flops(model, tokens) / 1e9,
        "peak_memory_mb": peak_memory_mb(backend), "precision": precision,
    }


def hf_worker(setting, steps, warmup, batch=None, precision="float32", variant="visible_only"):
    """Hugging Face ViTMAEForPreTraining; `variant` "eager_attention" sets `attn_implementation="eager"`."""
    import numpy as np
    import torch
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    import keras_mae

    spec = setting_spec(setting, batch)
    c = keras_mae.models.CONFIGS[spec["config"]]
    hf_config = ViTMAEConfig(
        image_size=c["image_size"], patch_size=c["patch_size"], num_channels=3,
        hidden_size=c["hidden_dim"], num_hidden_layers=c["depth"], num_attention_heads=c["num_heads"],
        intermediate_size=4 * c["hidden_dim"], decoder_hidden_size=c["decoder_hidden_dim"],
        decoder_num_hidden_layers=c["decoder_depth"], decoder_num_attention_heads=c["decoder_num_heads"],
        decoder_intermediate_size=4 * c["decoder_hidden_dim"], mask_ratio=0.75, norm_pix_loss=True,
        hidden_act="gelu", layer_norm_eps=1e-6,
        **({"attn_implementation": "eager"} if variant == "eager_attention" else {}),
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ViTMAEForPreTraining(hf_config).train().to(device)
    # bfloat16: autocast, as users run Hugging Face models in mixed precision
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    x = torch.from_numpy(np.random.RandomState(0).rand(spec["batch"], 3, spec["image"], spec["image"]).astype("float32")).to(device)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with autocast:
            loss = model(pixel_values=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = median(times)
    return {"impl": "hf_transformers/torch", "setting": setting, "variant": variant,
            "attention": model.config._attn_implementation,
            "batch": spec["batch"], "step_s": step, "images_per_s": spec["batch"] / step,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "peak_memory_mb": peak_memory_mb("torch"), "precision": precision}


def run_job(job, steps, warmup, timeout, batch=None, precision="float32"):
    """Runs one measurement in a fresh process (a Keras backend is fixed per process)."""
    impl, setting, variant = job
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    if impl != "hf":
        env["KERAS_BACKEND"] = impl.split("/")[-1]  # "jax" or "ceiling/jax"
    if variant == "heap_kept":
        env.update(HEAP_KEPT_ENV)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, setting, variant,
           "--steps", str(steps), "--warmup", str(warmup), "--precision", precision]
    cmd += ["--batch", str(batch)] if batch else []
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "setting": setting, "variant": variant, "error": f"timeout {timeout}s"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"impl": impl, "setting": setting, "variant": variant,
            "error": (out.stderr or out.stdout).strip().splitlines()[-1:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "SETTING", "VARIANT"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="override the setting's batch")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: Keras mixed_bfloat16, Hugging Face under torch.autocast")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the chip's peak TFLOP/s in --precision, for a model FLOPs utilisation column")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--settings", default="tiny32,base224",
                        help="comma-separated settings to run: " + ", ".join(SETTINGS))
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the whole job list this many times and report each job's median round")
    parser.add_argument("--output", default="train_throughput.json")
    args = parser.parse_args()
    if args.worker:
        impl, setting, variant = args.worker
        if impl == "hf":
            result = hf_worker(setting, args.steps, args.warmup, args.batch, args.precision, variant)
        elif impl.startswith("ceiling/"):
            from benchmarks.matmul_ceiling import ceiling

            spec = setting_spec(setting, args.batch)
            result = dict(ceiling(spec["config"], spec["batch"], args.precision),
                          setting=setting, variant=variant)
        else:
            result = keras_worker(setting, args.steps, args.warmup, variant, args.batch, args.precision)
        print(json.dumps(result))
        return 0

    settings = ["tiny32"] if args.quick else args.settings.split(",")
    for setting in settings:
        if setting not in SETTINGS:
            parser.error(f"--settings: unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    jobs = []
    for setting in settings:
        for impl in ("tensorflow", "jax", "torch", "hf", "ceiling/tensorflow", "ceiling/torch"):
            jobs.append((impl, setting, "visible_only"))
        # JAX's products alone, with glibc's heap kept as its fastest step runs
        jobs.append(("ceiling/jax", setting, "heap_kept"))
        # Hugging Face's default attention (PyTorch SDPA) and its explicit one: the faster is the reference
        jobs.append(("hf", setting, "eager_attention"))
        jobs.append(("torch", setting, "keras_default"))
        jobs.append(("jax", setting, "heap_kept"))
    if "base224" in settings and not args.quick:
        jobs.append(("jax", "base224", "mask_tokens_in_encoder"))
        jobs.append(("tensorflow", "base224", "mask_tokens_in_encoder"))
    rounds = {job: [] for job in jobs}
    for round_index in range(args.rounds):
        for job in jobs:
            steps = args.steps or (3 if args.quick else (5 if job[1] == "base224" else 20))
            warmup = args.warmup or (2 if job[1] == "base224" or args.quick else 5)
            result = dict(run_job(job, steps, warmup, args.timeout, precision=args.precision),
                          round=round_index)
            rounds[job].append(result)
            print(json.dumps(result), flush=True)
    results = [median_round(rounds[job]) for job in jobs]

    def find(impl, setting, variant="visible_only"):
        for r in results:
            if r.get("impl") == impl and r["setting"] == setting and r["variant"] == variant and "error" not in r:
                return r
        return None

    def hf_reference(setting):
        """The faster of Hugging Face's attention implementations."""
        rows = [r for r in results if r.get("impl") == "hf_transformers/torch"
                and r["setting"] == setting and "error" not in r]
        return max(rows, key=lambda r: r["images_per_s"]) if rows else None

    summary = {}
    print(f"\n{args.precision}; TFLOP/s counts the model's matrix products (benchmarks/flops.py)"
          + (f"; MFU against {args.peak_tflops:g} TFLOP/s" if args.peak_tflops else ""))
    print(f"{'setting':<10} {'implementation':<26} {'variant':<24} {'images/s':>10} {'vs HF':>7} "
          f"{'TFLOP/s':>8}" + (f" {'MFU':>6}" if args.peak_tflops else "")
          + ("   rounds (images/s)" if args.rounds > 1 else ""))
    for setting in settings:
        hf = hf_reference(setting)
        sparse_flops = next((r["train_gflops_per_image"] for r in results if r["setting"] == setting
                             and r["variant"] == "visible_only" and "train_gflops_per_image" in r), None)
        for r in [r for r in results if r["setting"] == setting]:
            if "error" in r:
                print(f"{setting:<10} {r['impl']:<26} {r['variant']:<24} {'error':>10}  {r['error']}")
                continue
            ratio = r["images_per_s"] / hf["images_per_s"] if hf else float("nan")
            gflops = r.get("train_gflops_per_image", sparse_flops) or float("nan")
            r["achieved_tflops"] = gflops * r["images_per_s"] / 1e3
            line = (f"{setting:<10} {r['impl']:<26} {r['variant']:<24} {r['images_per_s']:>10.2f} "
                    f"{ratio:>7.2f} {r['achieved_tflops']:>8.3f}")
            if args.peak_tflops:
                r["mfu"] = r["achieved_tflops"] / args.peak_tflops
                line += f" {100 * r['mfu']:>5.1f}%"
            if args.rounds > 1:
                line += "   " + " ".join(f"{v:.1f}" for v in r["rounds_images_per_s"])
            print(line)
        keras_rs = [r for r in results if r["setting"] == setting and r["impl"].startswith("keras_mae")
                    and r["variant"] == "visible_only" and "error" not in r]
        if keras_rs and hf:
            best = max(keras_rs, key=lambda r: r["images_per_s"])
            summary[f"{setting}_fastest_keras_over_hf"] = {
                "backend": best["impl"], "ratio": best["images_per_s"] / hf["images_per_s"],
                "hf_attention": hf.get("attention", hf["variant"])}
            print(f"{setting}: vs HF = vs its faster attention ({hf.get('attention', hf['variant'])}); "
                  f"fastest keras_mae: {best['impl']}, {best['images_per_s'] / hf['images_per_s']:.2f}x")
            ceilings = {r["impl"].split("/")[1]: r for r in results if r["setting"] == setting
                        and r["impl"].startswith("matmul_ceiling/") and "error" not in r}
            if ceilings:
                top = max(ceilings.values(), key=lambda r: r["images_per_s"])
                summary[f"{setting}_matmul_ceiling"] = {
                    "ceiling_over_hf": top["images_per_s"] / hf["images_per_s"],
                    "fastest_keras_fraction_of_ceiling": best["images_per_s"] / top["images_per_s"],
                    "backend": top["impl"]}
                print(f"{setting}: the step's matrix products alone run at most at "
                      f"{top['images_per_s']:.2f} img/s ({top['impl']}) = "
                      f"{top['images_per_s'] / hf['images_per_s']:.2f}x HF; "
                      f"{best['impl']} reaches {100 * best['images_per_s'] / top['images_per_s']:.0f}% of that")
            # each implementation against the products alone on its own backend (HF: PyTorch's)
            fractions = {}
            for r in results:
                if r["setting"] != setting or "error" in r or r["impl"].startswith("matmul_ceiling/"):
                    continue
                own = ceilings.get(r["impl"].split("/")[1])  # "hf_transformers/torch": PyTorch's
                if own:
                    fractions[f"{r['impl']}/{r['variant']}"] = r["images_per_s"] / own["images_per_s"]
            if fractions:
                summary[f"{setting}_fraction_of_own_products"] = fractions
                print(f"{setting}: each against the products alone on its own backend: "
                      + ", ".join(f"{k} {100 * v:.0f}%" for k, v in fractions.items()))
    for backend in ("jax", "tensorflow"):
        full = find(f"keras_mae/{backend}", "base224", "mask_tokens_in_encoder")
        sparse = find(f"keras_mae/{backend}", "base224")
        if full and sparse:
            time_ratio = full["step_s"] / sparse["step_s"]
            flops_ratio = full["train_gflops_per_image"] / sparse["train_gflops_per_image"]
            summary[f"asymmetric_saving_{backend}"] = {
                "step_time_ratio": time_ratio, "flops_ratio": flops_ratio,
                "fraction_of_flops_ratio": time_ratio / flops_ratio}
            print(f"asymmetric saving ({backend}, ViT-B/16): step time x{time_ratio:.2f}, "
                  f"FLOPs x{flops_ratio:.2f} ({100 * time_ratio / flops_ratio:.0f}% of the FLOPs ratio)")
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['cpus']} cores, flags {' '.join(machine['cpu_flags'])}")
    report = {"machine": machine, "results": results, "summary": summary}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
