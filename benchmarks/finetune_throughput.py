"""Fine-tuning step throughput of keras_mae next to Hugging Face `ViTForImageClassification`.

Times the whole fine-tuning training step, after warm-up, and reports
images/s (the median round) and keras_mae over Hugging Face per dtype:

- keras_mae: the classifier and optimizer of `recipes/finetune.py` itself
  (`build_classifier`, `build_optimizer`): a `ViTClassifier` with average
  pooling + `fc_norm`, stochastic depth 0.1, in training mode, on all
  patches; `LayerDecayAdamW` (layer decay 0.75, weight decay 0.05, none on
  biases, norms, the class token and positions); cross-entropy on soft
  labels (`CategoricalCrossentropy(from_logits=True)`); compiled as the
  recipe and a plain `compile` do (no `jit_compile`: "auto", resolved by
  `keras_mae.config.resolve_jit_compile`: XLA on TensorFlow and JAX, eager
  PyTorch), on JAX with glibc's heap kept as the recipe restarts itself
  (`recipes.common.HEAP_KEPT_ENV`). `--modes jit_true,jit_false` adds each
  explicit mode as its own row ("tensorflow:jit_true"), and a line under the
  table gives the plain path over the best of them. Each backend runs in its
  own process (`--backends`).
- Hugging Face: `ViTForImageClassification` of the same architecture (the
  same tokens, class token and patches, and the same blocks: width, depth,
  heads, MLP, qkv bias, LayerNorm eps 1e-6) in PyTorch,
  `torch.optim.AdamW` over layer-wise parameter groups as the official
  `param_groups_lrd` builds them (per-block lr scale 0.75 ** (L + 1 - layer),
  no weight decay on 1-D parameters and the class token), timm's
  soft-target cross-entropy on the same labels. bfloat16 runs under
  `torch.autocast`. By default under both of its attentions (PyTorch SDPA
  and its explicit "eager" one): the reference is the faster.

The same batch of images and soft labels (two one-hot classes mixed 0.7 /
0.3, smoothed by 0.1, as mixup with label smoothing makes them) is fed at
every step. float32 next to float32; bfloat16 is Keras' `mixed_bfloat16` in
a fresh process next to Hugging Face under `torch.autocast`.

What differs between the two models, by design of each:

- the head: keras_mae averages the patch tokens and normalises the mean
  (`fc_norm`, the official fine-tuning model's); Hugging Face's ViT has no
  mean pooling and normalises all tokens with its final LayerNorm, then
  classifies the class token. Both run the same tokens through the same
  blocks; only the few operations after the last block differ.
- stochastic depth: Hugging Face's ViT has none; keras_mae runs the
  recipe's 0.1 (one random per-sample scale per residual branch).
- otherwise both train the same parameters, the position table included
  (as the official fine-tuning trains `pos_embed`): each result records
  its `trainable_params`, and a line under the table says when they differ.

Usage:

    python benchmarks/finetune_throughput.py [--backends tensorflow,jax,torch|all]
        [--model tiny32,small64,base224] [--batch-size 128] [--dtypes float32,bfloat16]
        [--rounds 3] [--steps 10] [--warmup 3] [--hf-attention sdpa,eager]
        [--modes plain,jit_true,jit_false] [--write-results [PATH]] [--small]

`--backends` defaults to the current Keras backend (`KERAS_BACKEND`, or
`~/.keras/keras.json`); `--batch-size` defaults to each model's own (128
for tiny32 and small64, 16 for base224). `--small` runs a 2-block, 32-wide
ViT at batch 8, one round, 2 steps after 1 warm-up, Hugging Face with SDPA
only: a smoke test (`tests/test_benchmarks.py`). Rounds run every job of a
(model, dtype) once each, the jobs' order rotated from round to round, so
a slow minute on a shared machine weighs on both sides alike.
`--write-results` writes the table into `benchmarks/RESULTS.md` (section
`finetune_throughput`, stamped with the command, date, CPU and versions),
or into PATH when given.

When a backend runs below 1.3x Hugging Face in float32, a per-stage profile
of the last round follows the table: keras_mae's forward (the compiled
`predict_on_batch`, inference mode) and the rest of its step (backward and
optimizer), Hugging Face's forward, backward and optimizer step
(`--no-profile` leaves it out).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.results import library_versions  # noqa: E402
from benchmarks.train_throughput import (  # noqa: E402
    JIT_COMPILE, PLAIN_WITHIN, median, median_round, peak_memory_mb, rotated, timed_steps)
from recipes.common import HEAP_KEPT_ENV, configured_backend  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
DTYPES = ("float32", "bfloat16")
HF_ATTENTIONS = ("sdpa", "eager")
TARGET = 1.3  # keras_mae over Hugging Face in float32

# `config` names the keras_mae.models.CONFIGS entry; the encoder fields below
# (the one source of the architecture for both sides) override it
MODELS = {
    "tiny32": dict(config="mae_vit_tiny_patch4", image_size=32, patch_size=4, hidden_dim=192,
                   depth=12, num_heads=3, mlp_ratio=4.0, classes=10, batch=128),
    "small64": dict(config="mae_vit_small_patch8", image_size=64, patch_size=8, hidden_dim=384,
                    depth=12, num_heads=6, mlp_ratio=4.0, classes=100, batch=128),
    "base224": dict(config="mae_vit_base_patch16", image_size=224, patch_size=16, hidden_dim=768,
                    depth=12, num_heads=12, mlp_ratio=4.0, classes=1000, batch=16),
    # `--small`: for tests
    "test": dict(config="mae_vit_tiny_patch4", image_size=32, patch_size=8, hidden_dim=32,
                 depth=2, num_heads=2, mlp_ratio=4.0, classes=10, batch=8),
}
ARCHITECTURE = ("image_size", "patch_size", "hidden_dim", "depth", "num_heads", "mlp_ratio")

# the recipe's fine-tuning settings (recipes/classify_configs.py: FinetuneConfig), the
# Hugging Face side's too
BASE_LR, LAYER_DECAY, WEIGHT_DECAY, DROP_PATH = 1e-3, 0.75, 0.05, 0.1
MIX, SMOOTHING = 0.7, 0.1
PROFILE_STEPS = 3


def batch_data(spec, batch, channels_first=False):
    """The same `(images, soft labels)` for both sides: two smoothed one-hots mixed `MIX`/`1 - MIX`."""
    import numpy as np

    rng = np.random.RandomState(0)
    size, classes = spec["image_size"], spec["classes"]
    images = rng.randn(batch, size, size, 3).astype("float32")
    if channels_first:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    first = rng.randint(classes, size=batch)
    eye = np.eye(classes, dtype="float32") * (1 - SMOOTHING) + SMOOTHING / classes
    labels = MIX * eye[first] + (1 - MIX) * eye[np.roll(first, 1)]
    return images, labels.astype("float32")


def keras_worker(model_name, batch, dtype, steps, warmup, profile=False, mode="plain"):
    """keras_mae's fine-tuning step on this process's Keras backend; returns one result dict.

    `mode` "plain" compiles as a user writes it (no `jit_compile`, which the
    recipe's `--jit-compile auto` equals); "jit_true"/"jit_false" pass it.
    """
    import keras
    import numpy as np

    if dtype == "bfloat16":
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    from recipes.classify_configs import FinetuneConfig
    from recipes.common import load_encoder
    from recipes.finetune import build_classifier, build_optimizer

    spec = MODELS[model_name]
    config = FinetuneConfig(
        encoder="random", model=spec["config"], batch_size=batch, base_lr=BASE_LR,
        model_overrides={k: spec[k] for k in ARCHITECTURE}, layer_decay=LAYER_DECAY,
        weight_decay=WEIGHT_DECAY, drop_path_rate=DROP_PATH, pooling="avg")
    encoder = load_encoder(config)
    keras.utils.set_random_seed(config.seed)
    model = build_classifier(config, encoder, spec["classes"])
    optimizer, _ = build_optimizer(config, model, steps_per_epoch=1000)
    explicit = {} if mode == "plain" else {"jit_compile": JIT_COMPILE[mode]}
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  **explicit)
    x, y = batch_data(spec, batch)

    def train_step():
        loss = model.train_on_batch(x, y)
        float(loss if not isinstance(loss, list) else loss[0])

    timing = timed_steps(train_step, steps, warmup)
    step = timing["step_s"]
    backend = keras.backend.backend()
    result = {"impl": f"keras_mae/{backend}", "mode": mode, "model": model_name, "dtype": dtype,
              "batch": batch,
              "jit_compile": model.jit_compile, "step_s": step, "images_per_s": batch / step,
              "compile_extra_s": timing["compile_extra_s"], "peak_memory_mb": peak_memory_mb(backend),
              "trainable_params": sum(int(np.prod(v.shape)) for v in model.trainable_variables)}
    if profile:
        model.predict_on_batch(x)  # compiles the forward
        forward = []
        for _ in range(PROFILE_STEPS):
            start = time.perf_counter()
            keras.ops.convert_to_numpy(model.predict_on_batch(x))
            forward.append(time.perf_counter() - start)
        result["profile_s"] = {"forward (inference mode)": median(forward),
                               "backward + optimizer": max(step - median(forward), 0.0)}
    return result


def lrd_param_groups(model, num_layers, weight_decay=WEIGHT_DECAY, layer_decay=LAYER_DECAY):
    """`torch.optim` parameter groups of a Hugging Face ViT as the official `param_groups_lrd`.

    Layer 0 the embeddings, `i + 1` block `i`, `num_layers + 1` the final
    norm and the head; each group's `lr_scale` is
    `layer_decay ** (num_layers + 1 - layer)`; 1-D parameters and the class
    token (and the position table, when trained) are not decayed.
    """
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = 0.0 if parameter.ndim <= 1 or "cls_token" in name or "position_embeddings" in name \
            else weight_decay
        block = re.search(r"\.layers?\.(\d+)\.", name)
        if ".embeddings." in f".{name}":
            layer = 0
        elif block:
            layer = int(block.group(1)) + 1
        else:
            layer = num_layers + 1
        group = groups.setdefault((layer, decay), {
            "params": [], "weight_decay": decay, "lr_scale": layer_decay ** (num_layers + 1 - layer)})
        group["params"].append(parameter)
    return list(groups.values())


def hf_worker(model_name, batch, dtype, steps, warmup, profile=False, attention="sdpa"):
    """Hugging Face `ViTForImageClassification`'s fine-tuning step in PyTorch; returns one result dict."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    spec = MODELS[model_name]
    config = ViTConfig(
        image_size=spec["image_size"], patch_size=spec["patch_size"], num_channels=3,
        hidden_size=spec["hidden_dim"], num_hidden_layers=spec["depth"],
        num_attention_heads=spec["num_heads"],
        intermediate_size=int(spec["mlp_ratio"] * spec["hidden_dim"]), hidden_act="gelu",
        layer_norm_eps=1e-6, qkv_bias=True, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, num_labels=spec["classes"],
        attn_implementation=attention)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = ViTForImageClassification(config).train().to(device)
    groups = lrd_param_groups(model, spec["depth"])
    optimizer = torch.optim.AdamW(groups, lr=BASE_LR, betas=(0.9, 0.999), eps=1e-8)
    for group in optimizer.param_groups:  # the official `lr_sched`: lr x the group's scale
        group["lr"] = BASE_LR * batch / 256 * group["lr_scale"]
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    images, labels = batch_data(spec, batch, channels_first=True)
    x, y = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def step(stages=None):
        start = time.perf_counter()
        with autocast:
            logits = model(pixel_values=x).logits
            # timm's SoftTargetCrossEntropy, as the official fine-tuning with mixup
            loss = torch.sum(-y * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        if stages is not None:
            sync()
            forward = time.perf_counter()
        loss.backward()
        if stages is not None:
            sync()
            backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        if stages is not None:
            end = time.perf_counter()
            stages.append((forward - start, backward - forward, end - backward))

    timing = timed_steps(step, steps, warmup)
    step_s = timing["step_s"]
    result = {"impl": "hf_transformers/torch", "model": model_name, "dtype": dtype,
              "batch": batch, "attention": model.config._attn_implementation, "step_s": step_s,
              "images_per_s": batch / step_s, "compile_extra_s": timing["compile_extra_s"],
              "threads": torch.get_num_threads(),
              "peak_memory_mb": peak_memory_mb("torch"),
              "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if profile:
        stages = []
        for _ in range(PROFILE_STEPS):
            step(stages)
        result["profile_s"] = {name: median([s[k] for s in stages]) for k, name in
                               enumerate(("forward", "backward", "optimizer"))}
    return result


def run_job(job, batch, steps, warmup, timeout, profile=False):
    """Runs one measurement, `job = (model, dtype, impl)`, in a fresh process."""
    model_name, dtype, impl = job
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    backend = impl.split(":")[0]  # "tensorflow" or "tensorflow:jit_true"
    if backend in BACKENDS:
        env["KERAS_BACKEND"] = backend
        if backend == "jax":
            env.update(HEAP_KEPT_ENV)  # as the recipes restart themselves on JAX
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--model", model_name,
           "--dtypes", dtype, "--batch-size", str(batch), "--steps", str(steps),
           "--warmup", str(warmup)] + (["--profile"] if profile else [])
    failure = {"impl": impl, "model": model_name, "dtype": dtype, "batch": batch}
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(failure, error=f"timeout {timeout}s")
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return dict(failure, error=" ".join((out.stderr or out.stdout).strip().splitlines()[-1:]))


def summarise(jobs, rounds):
    """Rows of (model, dtype, backend): keras_mae's median round, HF's faster attention's, the ratio."""
    medians = {job: median_round(rounds[job]) for job in jobs}
    rows = []
    for model_name, dtype in dict.fromkeys((job[0], job[1]) for job in jobs):
        hf_runs = [medians[job] for job in jobs if job[:2] == (model_name, dtype)
                   and job[2].startswith("hf/") and "error" not in medians[job]]
        hf = max(hf_runs, key=lambda r: r["images_per_s"]) if hf_runs else None
        for job in jobs:
            if job[:2] != (model_name, dtype) or job[2].startswith("hf/"):
                continue
            ours = medians[job]
            row = {"model": model_name, "dtype": dtype, "backend": job[2], "batch": ours["batch"],
                   "ours": ours, "hf": hf}
            if "error" not in ours and hf:
                row["ratio"] = ours["images_per_s"] / hf["images_per_s"]
            rows.append(row)
    return rows


def plain_against_explicit(rows):
    """One line per (model, dtype, backend) run in several modes: the plain path over the best explicit one."""
    lines = []
    for row in rows:
        if ":" in row["backend"] or "error" in row["ours"]:
            continue
        explicit = [r for r in rows if (r["model"], r["dtype"]) == (row["model"], row["dtype"])
                    and r["backend"].startswith(row["backend"] + ":") and "error" not in r["ours"]]
        if explicit:
            best = max(explicit, key=lambda r: r["ours"]["images_per_s"])
            ratio = row["ours"]["images_per_s"] / best["ours"]["images_per_s"]
            lines.append(f"- {row['model']} {row['dtype']} {row['backend']}: plain path {ratio:.2f}x "
                         f"its best explicit mode ({best['backend'].split(':')[1]}), "
                         + ("within" if ratio >= 1 - PLAIN_WITHIN else "NOT within")
                         + f" {100 * PLAIN_WITHIN:.0f}%")
    return "\n".join(lines) + ("\n" if lines else "")


def markdown(rows, show_rounds):
    """The table: one row per model, dtype and keras_mae backend."""
    lines = ["| model | dtype | keras_mae backend | batch | keras_mae img/s | HF img/s | HF attention "
             "| keras_mae / HF |" + (" rounds keras_mae | rounds HF |" if show_rounds else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if show_rounds else "")]
    for row in rows:
        ours, hf = row["ours"], row["hf"]
        ours_cell = f"{ours['images_per_s']:.2f}" if "error" not in ours else f"error: {ours['error']}"
        hf_cell = f"{hf['images_per_s']:.2f}" if hf else "error"
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
        line = (f"| {row['model']} | {row['dtype']} | {row['backend']} | {row['batch']} | "
                f"{ours_cell} | {hf_cell} | {hf['attention'] if hf else '-'} | {ratio} |")
        if show_rounds:
            line += " " + " ".join(f"{v:.1f}" for v in ours.get("rounds_images_per_s", [])) + " | "
            line += (" ".join(f"{v:.1f}" for v in hf.get("rounds_images_per_s", [])) if hf else "") + " |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def profile_text(rows, last_round):
    """Per-stage times (ms) of the last round for the float32 rows below `TARGET`, or ''."""
    lines = []
    for row in rows:
        if row["dtype"] != "float32" or row.get("ratio", 0) >= TARGET:
            continue
        ours = last_round.get((row["model"], row["dtype"], row["backend"]), {})
        hf = [r for (m, d, impl), r in last_round.items()
              if (m, d) == (row["model"], row["dtype"]) and row["hf"]
              and impl == f"hf/{row['hf'].get('attention')}"]
        for name, result in ((f"keras_mae/{row['backend']}", ours), ("hf_transformers/torch",
                                                                     hf[0] if hf else {})):
            if "profile_s" in result:
                stages = ", ".join(f"{stage} {1e3 * s:.1f}" for stage, s in result["profile_s"].items())
                lines.append(f"- {row['model']} float32 {name}: step {1e3 * result['step_s']:.1f} ms; "
                             f"{stages} ms")
    if not lines:
        return ""
    return (f"Below {TARGET}x Hugging Face in float32; stages of the last round, median of "
            f"{PROFILE_STEPS} steps:\n\n" + "\n".join(dict.fromkeys(lines)) + "\n")


NOTES = ("keras_mae: the recipe's ViTClassifier (mean of the patch tokens + fc_norm), drop path "
         "0.1, LayerDecayAdamW; Hugging Face: ViTForImageClassification (class token after its "
         "final LayerNorm, no drop path), torch.optim.AdamW over per-block lr groups; the same "
         "tokens and blocks, layer decay 0.75, weight decay 0.05, soft-label cross-entropy. "
         "HF img/s: the faster of its attentions run.\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=None,
                        help="comma-separated Keras backends, or 'all' (default: the current one)")
    parser.add_argument("--model", default="tiny32",
                        help="comma-separated sizes: " + ", ".join(m for m in MODELS if m != "test"))
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: each model's own (tiny32 and small64 128, base224 16)")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="comma-separated: float32, bfloat16 (Keras mixed_bfloat16, HF autocast)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per job and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiling)")
    parser.add_argument("--hf-attention", default="sdpa,eager",
                        help="Hugging Face attentions to run; the faster is the reference")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per job")
    parser.add_argument("--no-profile", action="store_true",
                        help="no per-stage profile when float32 misses the target")
    parser.add_argument("--modes", default="plain",
                        help="comma-separated keras_mae compile modes: plain (no jit_compile, as "
                             "users write it), jit_true, jit_false")
    parser.add_argument("--small", action="store_true",
                        help="a 2-block 32-wide ViT, batch 8, 1 round, 2 steps, HF SDPA only")
    parser.add_argument("--write-results", nargs="?", const="", default=None, metavar="PATH",
                        help="write the table into benchmarks/RESULTS.md (or PATH)")
    args = parser.parse_args(argv)

    if args.worker:
        model_name, dtype = args.model, args.dtypes
        batch = args.batch_size or MODELS[model_name]["batch"]
        if args.worker.startswith("hf/"):
            result = hf_worker(model_name, batch, dtype, args.steps, args.warmup, args.profile,
                               attention=args.worker.split("/")[1])
        else:
            backend, _, mode = args.worker.partition(":")
            result = keras_worker(model_name, batch, dtype, args.steps, args.warmup, args.profile,
                                  mode=mode or "plain")
        print(json.dumps(result))
        return 0

    if args.small:
        models, attentions = ["test"], ["sdpa"]
        args.rounds, args.steps, args.warmup = 1, 2, 1
    else:
        models, attentions = args.model.split(","), args.hf_attention.split(",")
    for name in models:
        if name not in MODELS:
            parser.error(f"--model: unknown size {name!r}; known: {', '.join(MODELS)}")
    for attention in attentions:
        if attention not in HF_ATTENTIONS:
            parser.error(f"--hf-attention: unknown {attention!r}; known: {', '.join(HF_ATTENTIONS)}")
    backends = (BACKENDS if args.backends == "all"
                else (args.backends or configured_backend()).split(","))
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"--backends: unknown {backend!r}; known: {', '.join(BACKENDS)}, all")
    dtypes = args.dtypes.split(",")
    for dtype in dtypes:
        if dtype not in DTYPES:
            parser.error(f"--dtypes: unknown {dtype!r}; known: {', '.join(DTYPES)}")
    if min(args.rounds, args.steps) < 1 or args.warmup < 0:
        parser.error("--rounds and --steps must be >= 1, --warmup >= 0")

    modes = args.modes.split(",")
    for mode in modes:
        if mode not in ("plain",) + tuple(JIT_COMPILE):
            parser.error(f"--modes: unknown {mode!r}; known: plain, {', '.join(JIT_COMPILE)}")
    # keras_mae and Hugging Face jobs alternated; a backend's plain path is "tensorflow", an
    # explicit mode "tensorflow:jit_true"
    ours = [b if mode == "plain" else f"{b}:{mode}" for b in backends for mode in modes]
    theirs = [f"hf/{a}" for a in attentions]
    impls = [impl for i in range(max(len(ours), len(theirs))) for impl in ours[i:i + 1] + theirs[i:i + 1]]
    jobs = [(m, d, impl) for m in models for d in dtypes for impl in impls]
    rounds, last_round = {job: [] for job in jobs}, {}
    for round_index in range(args.rounds):
        for m, d in dict.fromkeys((job[0], job[1]) for job in jobs):
            for job in rotated([job for job in jobs if job[:2] == (m, d)], round_index):
                batch = args.batch_size or MODELS[m]["batch"]
                profile = (round_index == args.rounds - 1 and d == "float32" and not args.no_profile)
                result = dict(run_job(job, batch, args.steps, args.warmup, args.timeout, profile),
                              round=round_index)
                rounds[job].append(result)
                if round_index == args.rounds - 1:
                    last_round[job] = result
                print(json.dumps(result), flush=True)
    rows = summarise(jobs, rounds)
    table = markdown(rows, args.rounds > 1)
    machine = machine_info()
    print(f"\nfine-tuning step, images/s (median of {args.rounds} round(s) of {args.steps} steps "
          f"after {args.warmup}); {machine['cpu']}, {machine['cpus']} cores")
    print(table)
    print(NOTES)
    for row in rows:
        counts = (row["ours"].get("trainable_params"), (row["hf"] or {}).get("trainable_params"))
        if None not in counts and counts[0] != counts[1]:
            print(f"{row['model']} {row['dtype']} {row['backend']}: trainable parameters differ: "
                  f"keras_mae {counts[0]:,}, HF {counts[1]:,}")
    float32 = [row for row in rows if row["dtype"] == "float32" and "ratio" in row]
    if float32:
        missed = [row for row in float32 if row["ratio"] < TARGET]
        print(f"target keras_mae >= {TARGET}x HF in float32: "
              + ("met by every backend" if not missed else "missed by " + ", ".join(
                  f"{row['backend']} ({row['model']} {row['ratio']:.2f}x)" for row in missed)))
    plain_lines = plain_against_explicit(rows)
    if plain_lines:
        print(plain_lines)
    profile = profile_text(rows, last_round)
    if profile:
        print("\n" + profile)
    if args.write_results is not None:
        from benchmarks.results import RESULTS, write_section

        command = "python benchmarks/finetune_throughput.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        path = write_section("finetune_throughput", "Fine-tuning step: keras_mae next to Hugging "
                             "Face ViTForImageClassification",
                             table + "\n" + NOTES + ("\n" + plain_lines if plain_lines else "")
                             + ("\n" + profile if profile else ""),
                             command=command.strip(), versions=library_versions(),
                             path=args.write_results or RESULTS)
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
