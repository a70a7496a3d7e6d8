"""Pretraining throughput of keras_mae on each Keras backend next to Hugging Face PyTorch.

Times the MAE training step (after warm-up) in fresh processes and reports
images/s for, per setting and precision:

- `plain`: `model.compile(optimizer)` exactly as a user writes it, no
  `jit_compile` argument (`"auto"`, resolved by
  `keras_mae.config.resolve_jit_compile`). It leads each backend's rows.
- `jit_true` and `jit_false`: the explicit modes (`jit_false` on TensorFlow
  and PyTorch; on JAX it would run every op outside `jax.jit`).
- `heap_kept` (JAX): the plain path with glibc's malloc kept on its heap
  (`recipes.common.HEAP_KEPT_ENV`), as the recipes restart themselves on JAX.
- Hugging Face `ViTMAEForPreTraining` with the same architecture, batch and
  AdamW(0.9, 0.95), under PyTorch SDPA (`sdpa`) and its explicit attention
  (`eager_attention`); the faster is the reference ("vs HF").
- with `--ceilings`: the step's matrix products alone on each backend
  (`benchmarks/matmul_ceiling.py`), the most a step can reach there.
- with `base224`: ViT-B/16 with mask tokens in the encoder over all patches
  (the paper's Table 2 baseline) on TensorFlow and JAX, for the saving of
  the encoder on visible patches only.

Every row gives its mode (keras_mae: the `jit_compile` the model ran with;
Hugging Face: its attention), the median of its rounds, the spread
(min-max), and the seconds the warm-up steps took beyond steady steps
(compiling). bfloat16 is
Keras' `mixed_bfloat16` next to Hugging Face under `torch.autocast`.

Usage:

    python benchmarks/train_throughput.py [--settings tiny32,base224]
        [--precisions float32,bfloat16] [--rounds 5] [--steps N] [--warmup N]
        [--ceilings] [--peak-tflops T] [--quick] [--output train_throughput.json]
        [--write-results [PATH]]

A round runs every job of a (setting, precision) once, their order rotated
from round to round, so a slow minute on a shared machine weighs on every
implementation alike. `--peak-tflops` (the chip's peak in that precision,
e.g. 989 for an H100/H200 SXM in dense bfloat16) adds model FLOPs
utilisation; on a GPU every implementation runs on it. `--quick`: tiny32,
one round, 3 steps, no HF eager attention: a smoke test.
`--write-results` writes the table into `benchmarks/RESULTS.md` (section
`train_throughput`) or PATH.

Targets, checked under the table: the plain path within 5% of the backend's
best explicit mode, and the fastest backend's plain path at least 1.3x HF in
float32 and 1.5x in bfloat16.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.results import library_versions  # noqa: E402
# glibc's malloc kept on its heap, the recipes' setting on JAX: the "heap_kept" variant
from recipes.common import HEAP_KEPT_ENV  # noqa: E402

SETTINGS = {
    "tiny32": dict(config="mae_vit_tiny_patch4", batch=128, image=32),
    "base224": dict(config="mae_vit_base_patch16", batch=16, image=224),
    # for a GPU (`--settings base224,large224 --batch 256 --precisions bfloat16`); not in the default run
    "large224": dict(config="mae_vit_large_patch16", batch=16, image=224),
}
PRECISIONS = ("float32", "bfloat16")
# `jit_compile` passed to `compile` per variant; "plain" passes none
JIT_COMPILE = {"jit_true": True, "jit_false": False}
TARGETS = {"float32": 1.3, "bfloat16": 1.5}  # the fastest plain path over HF
PLAIN_WITHIN = 0.05  # the plain path against the backend's best explicit mode


def median(values, key=None):
    """The middle of `values` sorted by `key` (the upper middle of an even count)."""
    values = sorted(values, key=key)
    return values[len(values) // 2]


def median_round(runs):
    """The run with the median images/s of one job's rounds, with every round's figure.

    Failed rounds are left out (all failed: the last failure).
    """
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    return dict(median(ok, key=lambda r: r["images_per_s"]),
                rounds_images_per_s=[r["images_per_s"] for r in ok])


def rotated(jobs, round_index):
    """`jobs` started at `round_index` (mod their count): each job leads one round in turn."""
    shift = round_index % len(jobs)
    return jobs[shift:] + jobs[:shift]


def setting_spec(setting, batch=None):
    """`SETTINGS[setting]` with its batch replaced by `batch` when given."""
    return dict(SETTINGS[setting], batch=batch or SETTINGS[setting]["batch"])


def peak_memory_mb(backend):
    """Peak memory of this process so far, in MiB: on the accelerator when there is one.

    CPU: peak resident set size (`ru_maxrss`). GPU: the framework's own peak
    (`torch.cuda.max_memory_allocated`, TensorFlow `get_memory_info("GPU:0")["peak"]`,
    JAX `memory_stats()["peak_bytes_in_use"]`).
    """
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


def timed_steps(step, steps, warmup):
    """Runs `step()` `warmup + steps` times; a dict of the timings.

    `step_s` is the median timed step; `compile_extra_s` what the warm-up
    steps took beyond as many steady steps; `page_faults_per_step` and
    `system_s_per_step` this process' minor faults and kernel time per timed step.
    """
    times = []
    for _ in range(warmup):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    step_s = median(times[warmup:])
    return {"step_s": step_s, "compile_extra_s": max(sum(times[:warmup]) - warmup * step_s, 0.0),
            "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "system_s_per_step": (after.ru_stime - before.ru_stime) / steps}


def keras_worker(setting, steps, warmup, variant, batch=None, precision="float32"):
    """keras_mae's MAE step on this process's Keras backend; returns one result dict."""
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
    optimizer = keras.optimizers.AdamW(1.5e-4, beta_1=0.9, beta_2=0.95, weight_decay=0.05)
    if variant in JIT_COMPILE:
        model.compile(optimizer=optimizer, jit_compile=JIT_COMPILE[variant])
    else:  # as a user writes it
        model.compile(optimizer=optimizer)
    x = np.random.RandomState(0).rand(spec["batch"], spec["image"], spec["image"], 3).astype("float32")

    def step():
        loss = model.train_on_batch(x)
        float(loss if not isinstance(loss, list) else loss[0])

    timing = timed_steps(step, steps, warmup)
    tokens = model.num_patches if variant == "mask_tokens_in_encoder" else None
    return dict(timing, impl=f"keras_mae/{backend}", setting=setting, variant=variant,
                jit_compile=model.jit_compile, batch=spec["batch"],
                images_per_s=spec["batch"] / timing["step_s"],
                train_gflops_per_image=mae_train_flops(model, tokens) / 1e9,
                peak_memory_mb=peak_memory_mb(backend), precision=precision)


def hf_worker(setting, steps, warmup, batch=None, precision="float32", variant="sdpa"):
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

    def step():
        with autocast:
            loss = model(pixel_values=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)

    timing = timed_steps(step, steps, warmup)
    return dict(timing, impl="hf_transformers/torch", setting=setting, variant=variant,
                attention=model.config._attn_implementation, batch=spec["batch"],
                images_per_s=spec["batch"] / timing["step_s"], torch=torch.__version__,
                threads=torch.get_num_threads(), peak_memory_mb=peak_memory_mb("torch"),
                precision=precision)


def run_job(job, steps, warmup, timeout, batch=None, precision="float32"):
    """Runs one measurement, `job = (impl, setting, variant)`, in a fresh process (one Keras backend each)."""
    impl, setting, variant = job
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    if impl != "hf":
        env["KERAS_BACKEND"] = impl.split("/")[-1]  # "jax" or "ceiling/jax"
    if variant == "heap_kept":
        env.update(HEAP_KEPT_ENV)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, setting, variant,
           "--steps", str(steps), "--warmup", str(warmup), "--precisions", precision]
    cmd += ["--batch", str(batch)] if batch else []
    failure = {"impl": impl, "setting": setting, "variant": variant, "precision": precision}
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(failure, error=f"timeout {timeout}s")
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return dict(failure, error=" ".join((out.stderr or out.stdout).strip().splitlines()[-1:]))


def job_list(setting, ceilings=False, quick=False):
    """The `(impl, setting, variant)` jobs of one setting: keras_mae's plain path first on each backend."""
    jobs = [("tensorflow", setting, "plain"), ("tensorflow", setting, "jit_true"),
            ("tensorflow", setting, "jit_false"),
            ("jax", setting, "plain"), ("jax", setting, "heap_kept"),
            ("torch", setting, "plain"), ("torch", setting, "jit_true"),
            ("torch", setting, "jit_false"),
            ("hf", setting, "sdpa")]
    if not quick:
        jobs.append(("hf", setting, "eager_attention"))
    if ceilings:
        jobs += [("ceiling/tensorflow", setting, "plain"), ("ceiling/torch", setting, "plain"),
                 ("ceiling/jax", setting, "heap_kept")]
    if setting == "base224" and not quick:
        jobs += [("jax", setting, "mask_tokens_in_encoder"),
                 ("tensorflow", setting, "mask_tokens_in_encoder")]
    return jobs


def summarise(rows, peak_tflops=None):
    """Ratios and targets of one (setting, precision)'s median rows; adds `vs_hf` etc. to the rows."""
    ok = [r for r in rows if "error" not in r]
    hf_rows = [r for r in ok if r["impl"] == "hf_transformers/torch"]
    hf = max(hf_rows, key=lambda r: r["images_per_s"]) if hf_rows else None
    flops = next((r["train_gflops_per_image"] for r in ok if r.get("variant") == "plain"
                  and "train_gflops_per_image" in r), None)
    for r in ok:
        if hf:
            r["vs_hf"] = r["images_per_s"] / hf["images_per_s"]
        gflops = r.get("train_gflops_per_image", flops)
        if gflops:
            r["achieved_tflops"] = gflops * r["images_per_s"] / 1e3
            if peak_tflops:
                r["mfu"] = r["achieved_tflops"] / peak_tflops
    summary = {"hf_attention": hf.get("attention", hf["variant"]) if hf else None}
    plains = {r["impl"]: r for r in ok if r["impl"].startswith("keras_mae/") and r["variant"] == "plain"}
    summary["plain_over_best_explicit"] = {}
    for impl, plain in plains.items():
        explicit = [r for r in ok if r["impl"] == impl and r["variant"] in JIT_COMPILE]
        if explicit:
            best = max(explicit, key=lambda r: r["images_per_s"])
            summary["plain_over_best_explicit"][impl] = {
                "ratio": plain["images_per_s"] / best["images_per_s"], "best": best["variant"]}
    if plains and hf:
        fastest = max(plains.values(), key=lambda r: r["images_per_s"])
        summary["fastest_plain"] = {"impl": fastest["impl"], "vs_hf": fastest["vs_hf"]}
    ceilings = [r for r in ok if r["impl"].startswith("matmul_ceiling/")]
    if ceilings:
        summary["matmul_ceiling"] = {r["impl"]: r["images_per_s"] for r in ceilings}
        for r in ok:
            own = [c for c in ceilings if c["impl"].split("/")[1] == r["impl"].split("/")[1]]
            if own and r not in ceilings:
                r["of_own_products"] = r["images_per_s"] / own[0]["images_per_s"]
    for backend in ("jax", "tensorflow"):
        full = [r for r in ok if r["impl"] == f"keras_mae/{backend}" and r["variant"] == "mask_tokens_in_encoder"]
        sparse = plains.get(f"keras_mae/{backend}")
        if full and sparse:
            time_ratio = full[0]["step_s"] / sparse["step_s"]
            flops_ratio = full[0]["train_gflops_per_image"] / sparse["train_gflops_per_image"]
            summary[f"asymmetric_saving_{backend}"] = {
                "step_time_ratio": time_ratio, "flops_ratio": flops_ratio,
                "fraction_of_flops_ratio": time_ratio / flops_ratio}
    return summary


def markdown(groups, peak_tflops=None):
    """The table of every (setting, precision), then one line per target and saving."""
    head = ("| setting | precision | implementation | variant | mode | images/s | min-max "
            "| vs HF | compiling, s |" + (" MFU |" if peak_tflops else ""))
    lines = [head, "|" + "---|" * head.count(" |")]
    notes = []
    for (setting, precision), (rows, summary) in groups.items():
        for r in rows:
            name, variant = r["impl"], r["variant"]
            if "error" in r:
                lines.append(f"| {setting} | {precision} | {name} | {variant} | | error: {r['error']} "
                             "| | | |" + (" |" if peak_tflops else ""))
                continue
            spread = r.get("rounds_images_per_s", [r["images_per_s"]])
            jit = r.get("jit_compile", r.get("attention", "-"))
            line = (f"| {setting} | {precision} | {name} | {variant} | {jit} | "
                    f"{r['images_per_s']:.1f} | {min(spread):.1f}-{max(spread):.1f} | "
                    f"{r.get('vs_hf', float('nan')):.2f} | {r.get('compile_extra_s', float('nan')):.1f} |")
            if peak_tflops:
                line += f" {100 * r.get('mfu', float('nan')):.1f}% |"
            lines.append(line)
        for impl, found in summary["plain_over_best_explicit"].items():
            verdict = "within" if found["ratio"] >= 1 - PLAIN_WITHIN else "NOT within"
            notes.append(f"- {setting} {precision} {impl}: plain path {found['ratio']:.2f}x its best "
                         f"explicit mode ({found['best']}), {verdict} {100 * PLAIN_WITHIN:.0f}%")
        fastest = summary.get("fastest_plain")
        if fastest:
            target = TARGETS[precision]
            notes.append(f"- {setting} {precision}: fastest plain path {fastest['impl']} "
                         f"{fastest['vs_hf']:.2f}x HF ({summary['hf_attention']}); target {target}x "
                         + ("met" if fastest["vs_hf"] >= target else "missed"))
        for backend in ("jax", "tensorflow"):
            saving = summary.get(f"asymmetric_saving_{backend}")
            if saving:
                notes.append(f"- {setting} {precision} asymmetric saving ({backend}): step time "
                             f"x{saving['step_time_ratio']:.2f}, FLOPs x{saving['flops_ratio']:.2f}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "SETTING", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per job and round (default 20; 5 for base224)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 5; 2 for base224)")
    parser.add_argument("--batch", type=int, default=None, help="override the setting's batch")
    parser.add_argument("--precisions", default="float32",
                        help="comma-separated: float32, bfloat16 (Keras mixed_bfloat16, HF autocast)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the chip's peak TFLOP/s in the precision run, for a model FLOPs utilisation column")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ceilings", action="store_true",
                        help="also the step's matrix products alone on each backend")
    parser.add_argument("--settings", default="tiny32",
                        help="comma-separated settings to run: " + ", ".join(SETTINGS))
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--rounds", type=int, default=5,
                        help="run each (setting, precision)'s jobs this many times, rotated; report each job's median round")
    parser.add_argument("--output", default="train_throughput.json")
    parser.add_argument("--write-results", nargs="?", const="", default=None, metavar="PATH",
                        help="write the table into benchmarks/RESULTS.md (or PATH)")
    args = parser.parse_args(argv)
    if args.worker:
        impl, setting, variant = args.worker
        if impl == "hf":
            result = hf_worker(setting, args.steps, args.warmup, args.batch, args.precisions, variant)
        elif impl.startswith("ceiling/"):
            from benchmarks.matmul_ceiling import ceiling

            spec = setting_spec(setting, args.batch)
            result = dict(ceiling(spec["config"], spec["batch"], args.precisions),
                          setting=setting, variant=variant, precision=args.precisions)
        else:
            result = keras_worker(setting, args.steps, args.warmup, variant, args.batch, args.precisions)
        print(json.dumps(result))
        return 0

    settings = ["tiny32"] if args.quick else args.settings.split(",")
    for setting in settings:
        if setting not in SETTINGS:
            parser.error(f"--settings: unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    precisions = args.precisions.split(",")
    for precision in precisions:
        if precision not in PRECISIONS:
            parser.error(f"--precisions: unknown {precision!r}; known: {', '.join(PRECISIONS)}")
    rounds = 1 if args.quick else args.rounds
    if rounds < 1:
        parser.error(f"--rounds must be >= 1. Received: --rounds {rounds}")
    groups = {}
    for setting in settings:
        jobs = job_list(setting, args.ceilings, args.quick)
        steps = args.steps or (3 if args.quick else (5 if setting == "base224" else 20))
        warmup = args.warmup or (2 if setting == "base224" or args.quick else 5)
        for precision in precisions:
            runs = {job: [] for job in jobs}
            for round_index in range(rounds):
                for job in rotated(jobs, round_index):
                    result = dict(run_job(job, steps, warmup, args.timeout, args.batch, precision),
                                  round=round_index)
                    runs[job].append(result)
                    print(json.dumps(result), flush=True)
            rows = [median_round(runs[job]) for job in jobs]
            groups[(setting, precision)] = (rows, summarise(rows, args.peak_tflops))
    table = markdown(groups, args.peak_tflops)
    machine = machine_info()
    print(f"\nMAE training step, images/s (median of {rounds} round(s)); {machine['cpu']}, "
          f"{machine['cpus']} cores, flags {' '.join(machine['cpu_flags'])}\n")
    print(table)
    report = {"machine": machine, "versions": library_versions(),
              "groups": [{"setting": s, "precision": p, "results": rows, "summary": summary}
                         for (s, p), (rows, summary) in groups.items()]}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"written {args.output}")
    if args.write_results is not None:
        from benchmarks.results import RESULTS, write_section

        command = "python benchmarks/train_throughput.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        notes = (f"keras_mae: `MaskedAutoencoder` (norm_pix loss, mask 0.75) and Keras AdamW(1.5e-4, "
                 f"0.9, 0.95, weight decay 0.05); Hugging Face: ViTMAEForPreTraining with the same "
                 f"architecture and torch.optim.AdamW. Median of {rounds} rounds, min-max of the "
                 f"rounds; \"compiling, s\": the warm-up steps' time beyond steady steps.\n")
        path = write_section("train_throughput", "Pretraining step: keras_mae next to Hugging Face "
                             "ViTMAEForPreTraining", table + "\n" + notes, command=command.strip(),
                             versions=library_versions(), path=args.write_results or RESULTS)
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
