"""Training throughput of keras_mae on each Keras backend next to Hugging Face PyTorch.

Measures, in one run on one machine, the median time of a training step
(after warm-up) and reports images/s:
  1. `keras_mae` on TensorFlow, JAX and PyTorch (each in its own process; XLA
     `jit_compile=True` on TensorFlow and JAX) and Hugging Face
     `ViTMAEForPreTraining` in PyTorch with the same architecture, batch and
     AdamW(0.9, 0.95), for the 32 px tiny config and for ViT-B/16 at 224 px;
  2. the asymmetric design's saving: ViT-B/16 step time with mask tokens in the
     encoder over all patches (the paper's Table 2 baseline) over the step
     time with the encoder on visible patches only, next to their FLOPs ratio.
Results print as a table and are written to JSON.

Usage: `python benchmarks/train_throughput.py [--quick] [--output train_throughput.json]`
(`--quick`: fewer steps and the small config only, for a smoke test).

Measured in one run (2-core x86-64 CPU, no GPU, Keras 3.15.1, TF 2.21, JAX 0.10.2,
torch 2.13.0+cpu with 2 threads, transformers 5.24; median step after warm-up):

    setting  implementation          variant                 images/s  vs HF
    tiny32   keras_mae/tensorflow    visible_only              144.68   1.23
    tiny32   keras_mae/jax           visible_only               59.46   0.50
    tiny32   keras_mae/torch         visible_only              119.03   1.01
    tiny32   hf_transformers/torch   visible_only              118.00   1.00
    base224  keras_mae/tensorflow    visible_only                2.84   1.05
    base224  keras_mae/jax           visible_only                1.45   0.54
    base224  keras_mae/torch         visible_only                2.54   0.94
    base224  hf_transformers/torch   visible_only                2.69   1.00
    asymmetric saving, ViT-B/16: TensorFlow step time x2.37 for FLOPs x2.35 (101%),
    JAX x2.85 (121%)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

SETTINGS = {
    "tiny32": dict(config="mae_vit_tiny_patch4", batch=128, image=32),
    "base224": dict(config="mae_vit_base_patch16", batch=16, image=224),
}


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def keras_worker(setting, steps, warmup, variant):
    """Runs in a subprocess with KERAS_BACKEND set; prints one JSON line."""
    import keras
    import numpy as np

    import keras_mae
    from benchmarks.flops import mae_train_flops

    spec = SETTINGS[setting]
    backend = keras.backend.backend()
    cls = None
    if variant == "mask_tokens_in_encoder":
        from benchmarks.mask_tokens_baseline import MaskTokensInEncoderMAE as cls
    config = dict(keras_mae.models.CONFIGS[spec["config"]], norm_pix_loss=True, seed=0)
    model = (cls or keras_mae.MaskedAutoencoder)(**config)
    model.compile(optimizer=keras.optimizers.AdamW(1.5e-4, beta_1=0.9, beta_2=0.95, weight_decay=0.05),
                  jit_compile=backend in ("tensorflow", "jax"))
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
    }


def hf_worker(setting, steps, warmup):
    import numpy as np
    import torch
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    import keras_mae

    spec = SETTINGS[setting]
    c = keras_mae.models.CONFIGS[spec["config"]]
    hf_config = ViTMAEConfig(
        image_size=c["image_size"], patch_size=c["patch_size"], num_channels=3,
        hidden_size=c["hidden_dim"], num_hidden_layers=c["depth"], num_attention_heads=c["num_heads"],
        intermediate_size=4 * c["hidden_dim"], decoder_hidden_size=c["decoder_hidden_dim"],
        decoder_num_hidden_layers=c["decoder_depth"], decoder_num_attention_heads=c["decoder_num_heads"],
        decoder_intermediate_size=4 * c["decoder_hidden_dim"], mask_ratio=0.75, norm_pix_loss=True,
        hidden_act="gelu", layer_norm_eps=1e-6,
    )
    model = ViTMAEForPreTraining(hf_config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    x = torch.from_numpy(np.random.RandomState(0).rand(spec["batch"], 3, spec["image"], spec["image"]).astype("float32"))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = model(pixel_values=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = median(times)
    return {"impl": "hf_transformers/torch", "setting": setting, "variant": "visible_only",
            "batch": spec["batch"], "step_s": step, "images_per_s": spec["batch"] / step,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def run_job(job, steps, warmup, timeout):
    """Runs one measurement in a fresh process (a Keras backend is fixed per process)."""
    impl, setting, variant = job
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    if impl != "hf":
        env["KERAS_BACKEND"] = impl
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, setting, variant,
           "--steps", str(steps), "--warmup", str(warmup)]
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
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--output", default="train_throughput.json")
    args = parser.parse_args()
    if args.worker:
        impl, setting, variant = args.worker
        if impl == "hf":
            result = hf_worker(setting, args.steps, args.warmup)
        else:
            result = keras_worker(setting, args.steps, args.warmup, variant)
        print(json.dumps(result))
        return 0

    settings = ["tiny32"] if args.quick else ["tiny32", "base224"]
    jobs = []
    for setting in settings:
        for impl in ("tensorflow", "jax", "torch", "hf"):
            jobs.append((impl, setting, "visible_only"))
    if not args.quick:
        jobs.append(("jax", "base224", "mask_tokens_in_encoder"))
        jobs.append(("tensorflow", "base224", "mask_tokens_in_encoder"))
    results = []
    for job in jobs:
        steps = args.steps or (3 if args.quick else (5 if job[1] == "base224" else 20))
        warmup = args.warmup or (2 if job[1] == "base224" or args.quick else 5)
        result = run_job(job, steps, warmup, args.timeout)
        results.append(result)
        print(json.dumps(result), flush=True)

    def find(impl, setting, variant="visible_only"):
        for r in results:
            if r.get("impl") == impl and r["setting"] == setting and r["variant"] == variant and "error" not in r:
                return r
        return None

    summary = {}
    print(f"\n{'setting':<10} {'implementation':<24} {'variant':<24} {'images/s':>10} {'vs HF':>7}")
    for setting in settings:
        hf = find("hf_transformers/torch", setting)
        for r in [r for r in results if r["setting"] == setting]:
            if "error" in r:
                print(f"{setting:<10} {r['impl']:<24} {r['variant']:<24} {'error':>10}  {r['error']}")
                continue
            ratio = r["images_per_s"] / hf["images_per_s"] if hf else float("nan")
            print(f"{setting:<10} {r['impl']:<24} {r['variant']:<24} {r['images_per_s']:>10.2f} {ratio:>7.2f}")
        keras_rs = [r for r in results if r["setting"] == setting and r["impl"].startswith("keras_mae")
                    and r["variant"] == "visible_only" and "error" not in r]
        if keras_rs and hf:
            best = max(keras_rs, key=lambda r: r["images_per_s"])
            summary[f"{setting}_fastest_keras_over_hf"] = {
                "backend": best["impl"], "ratio": best["images_per_s"] / hf["images_per_s"]}
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
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version()},
              "results": results, "summary": summary}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
