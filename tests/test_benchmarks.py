"""Smoke tests for the benchmark helpers (timings are never asserted)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from benchmarks import matmul_ceiling, peak_memory, train_throughput
from benchmarks.flops import block_flops, mae_forward_flops, mae_train_flops
from benchmarks.mask_tokens_baseline import MaskTokensInEncoderMAE
from conftest import random_images, random_noise, tiny_mae, to_numpy
import keras_mae


def test_block_flops_by_hand():
    # N=3 tokens, D=4, MLP 16: 2 * (4*3*16 + 2*9*4 + 2*3*4*16) = 2 * (192 + 72 + 384)
    assert block_flops(3, 4) == 1296


def test_vit_base_flops_ratio_grows_with_encoder_share():
    model = keras_mae.models.mae_vit_base_patch16()
    sparse = mae_train_flops(model)
    full = mae_train_flops(model, encoder_tokens=model.num_patches)
    assert full == 3 * mae_forward_flops(model, encoder_tokens=196)
    # encoder on 49 of 196 patches; the 8-block decoder still sees all 197 tokens
    assert 2.3 < full / sparse < 2.4
    large = keras_mae.models.mae_vit_large_patch16()
    ratio = mae_train_flops(large, encoder_tokens=196) / mae_train_flops(large)
    assert 3.2 < ratio < 3.25  # 3.23x by this count (8-block 512-wide decoder, 49 of 196 visible)


def test_mask_tokens_baseline_trains_one_step():
    config = tiny_mae().get_config()
    config.pop("name")
    model = MaskTokensInEncoderMAE.from_config(config)
    assert model.encoder_mask_token.shape == (1, 1, 32)
    x = random_images(2)
    out = model(x, noise=random_noise(2, 16))
    assert tuple(out["pred"].shape) == (2, 16, 192)
    np.testing.assert_array_equal(to_numpy(out["mask"]).sum(1), 12)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    loss = model.train_on_batch(x)
    assert np.isfinite(float(loss if not isinstance(loss, list) else loss[0]))


def test_matmul_ceiling_products_sum_to_the_flop_count():
    for model, batch in ((keras_mae.models.mae_vit_tiny_patch4(), 128),
                         (keras_mae.models.mae_vit_base_patch16(), 16)):
        for tokens in (None, model.num_patches):
            products = matmul_ceiling.step_products(model, batch, tokens)
            assert len(products) == 3 * (2 + 6 * (model.encoder.depth + model.decoder_depth) + 1)
            assert matmul_ceiling.product_flops(products) == batch * mae_train_flops(model, tokens)


def test_matmul_ceiling_runs_the_listed_products_on_this_backend():
    products = matmul_ceiling.step_products(tiny_mae(), 2)
    operands = matmul_ceiling.product_operands(products)
    for jit in matmul_ceiling.VARIANTS[keras.backend.backend()].values():
        outputs = matmul_ceiling.products_function(jit)(operands)
        assert len(outputs) == len(products)
        for (count, m, k, n), (a, b), out in zip(products, operands, outputs):
            assert to_numpy(out).shape == (count, m, n)
            np.testing.assert_allclose(to_numpy(out), np.matmul(to_numpy(a), to_numpy(b)),
                                       rtol=1e-5, atol=1e-5)
        assert matmul_ceiling.time_products(products, jit_compile=jit, repeats=1) > 0


def test_matmul_ceiling_refuses_a_mode_its_backend_does_not_run():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        pytest.skip("TensorFlow runs the products with and without XLA")
    with pytest.raises(ValueError, match=f"jit_compile={backend != 'jax'} on {backend}"):
        matmul_ceiling.products_function(jit_compile=backend != "jax")


def test_matmul_ceiling_reports_the_fastest_of_its_backends_variants(monkeypatch):
    seconds = {True: 2.0, False: 0.5}  # on TensorFlow XLA slower, as on a CPU in bfloat16
    monkeypatch.setattr(matmul_ceiling, "time_products",
                        lambda products, dtype, jit: seconds[jit])
    result = matmul_ceiling.ceiling("mae_vit_tiny_patch4", 128)
    flops = 128 * mae_train_flops(keras_mae.models.mae_vit_tiny_patch4())
    backend = keras.backend.backend()
    assert result["impl"] == f"matmul_ceiling/{backend}"
    expected = {"tensorflow": {"xla": 64.0, "no_xla": 256.0}, "jax": {"xla": 64.0},
                "torch": {"eager": 256.0}}[backend]
    assert {name: result[name]["images_per_s"] for name in expected} == expected
    assert result["images_per_s"] == max(expected.values())
    assert result["step_s"] == 128 / max(expected.values())
    for name, jit in matmul_ceiling.VARIANTS[backend].items():
        assert result[name]["gflops_per_s"] == flops / seconds[jit] / 1e9


def test_peak_memory_reads_this_process():
    peak = train_throughput.peak_memory_mb(keras.backend.backend())
    assert list(peak) == ["cpu_rss"]
    assert 50 < peak["cpu_rss"] < 64 * 1024  # a Python process with a framework loaded


def test_peak_memory_per_image_is_the_slope_over_half_a_batch(monkeypatch):
    calls = []

    def fake_run_job(job, steps, warmup, timeout, batch=None):
        calls.append(batch)
        return {"impl": f"keras_mae/{job[0]}", "peak_memory_mb": {"cpu_rss": 1000.0 + 3.0 * batch}}

    monkeypatch.setattr(peak_memory, "run_job", fake_run_job)
    result = peak_memory.measure("jax", "tiny32", steps=1, timeout=10)
    assert calls == [128, 64]
    assert result["mb_per_image"] == 3.0 and result["peak_mb"] == 1384.0
    hf = dict(result, impl="hf_transformers/torch", mb_per_image=2.0)
    table = peak_memory.markdown(["tiny32"], [result, hf])
    assert "| tiny32 | keras_mae/jax | cpu_rss | 128 | 1384 | 3.00 | 1.50 |" in table


@pytest.fixture
def one_block_setting(monkeypatch):
    """A `train_throughput` setting small enough for a test: one block each side, batch 2."""
    monkeypatch.setitem(keras_mae.models.CONFIGS, "one_block", dict(
        image_size=32, patch_size=8, hidden_dim=32, depth=1, num_heads=2,
        decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2))
    monkeypatch.setitem(train_throughput.SETTINGS, "one_block",
                        dict(config="one_block", batch=2, image=32))
    policy = keras.mixed_precision.global_policy()
    yield "one_block"
    keras.mixed_precision.set_global_policy(policy)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_throughput_worker_trains_and_reports(one_block_setting, precision):
    result = train_throughput.keras_worker(one_block_setting, steps=2, warmup=1,
                                           variant="plain", precision=precision)
    assert result["impl"] == f"keras_mae/{keras.backend.backend()}" and result["batch"] == 2
    assert result["precision"] == precision and result["images_per_s"] == 2 / result["step_s"]
    # the plain path resolves "auto" to the fast mode: XLA, jit, the MAE's compiled PyTorch step
    assert result["jit_compile"] is True
    model = keras_mae.models.build("one_block")
    assert result["train_gflops_per_image"] == mae_train_flops(model) / 1e9
    assert result["peak_memory_mb"]["cpu_rss"] > 50
    assert result["compile_extra_s"] >= 0 and result["page_faults_per_step"] >= 0


def test_throughput_worker_keeps_an_explicit_mode(one_block_setting):
    result = train_throughput.keras_worker(one_block_setting, steps=1, warmup=1, variant="jit_false")
    assert result["jit_compile"] is False and result["variant"] == "jit_false"


def test_timed_steps_separate_warm_up_from_steady_steps(monkeypatch):
    # a clock that the step moves on by 3.0 s, then 1.0, 1.0, 2.0 and 1.0 s
    now, durations = [0.0], iter([3.0, 1.0, 1.0, 2.0, 1.0])
    monkeypatch.setattr(train_throughput.time, "perf_counter", lambda: now[0])

    def step():
        now[0] += next(durations)

    timing = train_throughput.timed_steps(step, steps=4, warmup=1)
    assert timing["step_s"] == 1.0  # the median of the four steady steps (the upper middle)
    assert timing["compile_extra_s"] == 2.0  # the warm-up step less one steady step


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="transformers' PyTorch modules next to TensorFlow/JAX: see PITFALLS")
def test_hugging_face_worker_runs_under_autocast(one_block_setting):
    result = train_throughput.hf_worker(one_block_setting, steps=1, warmup=1, precision="bfloat16")
    assert result["impl"] == "hf_transformers/torch" and result["precision"] == "bfloat16"
    assert result["images_per_s"] > 0 and result["attention"] != "eager"
    eager = train_throughput.hf_worker(one_block_setting, steps=1, warmup=1,
                                       variant="eager_attention")
    assert eager["attention"] == "eager" and eager["variant"] == "eager_attention"


def _row_name(impl):
    """The `impl` a benchmark row carries for a job's `impl`: "hf", "jax", "ceiling/jax"."""
    if impl == "hf":
        return "hf_transformers/torch"
    return impl.replace("ceiling/", "matmul_ceiling/") if impl.startswith("ceiling/") else f"keras_mae/{impl}"


# images/s per (impl, variant) in the fake runs below
_SPEEDS = {("tensorflow", "plain"): 300.0, ("tensorflow", "jit_true"): 300.0,
           ("tensorflow", "jit_false"): 200.0, ("jax", "plain"): 100.0, ("jax", "heap_kept"): 120.0,
           ("torch", "plain"): 150.0, ("torch", "jit_true"): 150.0, ("torch", "jit_false"): 180.0,
           ("hf", "sdpa"): 200.0, ("hf", "eager_attention"): 250.0,
           ("ceiling/tensorflow", "plain"): 400.0, ("ceiling/jax", "heap_kept"): 200.0,
           ("ceiling/torch", "plain"): 300.0}


def test_throughput_table_ratios_targets_and_model_flops_utilisation(monkeypatch, tmp_path, capsys):
    jobs = []

    def fake_run_job(job, steps, warmup, timeout, batch=None, precision="float32"):
        impl, setting, variant = job
        jobs.append((job, precision))
        speed = _SPEEDS[(impl, variant)] * (2.0 if precision == "bfloat16" else 1.0)
        result = {"impl": _row_name(impl), "setting": setting, "variant": variant,
                  "images_per_s": speed, "step_s": 128 / speed, "compile_extra_s": 1.5}
        if impl == "hf":
            result["attention"] = "eager" if variant == "eager_attention" else "sdpa"
        elif not impl.startswith("ceiling/"):
            result["train_gflops_per_image"] = 0.5
        return result

    monkeypatch.setattr(train_throughput, "run_job", fake_run_job)
    output, results = tmp_path / "tp.json", tmp_path / "RESULTS.md"
    assert train_throughput.main(["--settings", "tiny32", "--precisions", "float32,bfloat16",
                                  "--rounds", "1", "--ceilings", "--peak-tflops", "0.5",
                                  "--output", str(output), "--write-results", str(results)]) == 0
    report = json.load(open(output))
    float32, bfloat16 = report["groups"]
    assert (float32["precision"], bfloat16["precision"]) == ("float32", "bfloat16")
    summary = float32["summary"]
    # the reference is Hugging Face's faster attention (here the eager one, 250 img/s)
    assert summary["hf_attention"] == "eager"
    assert summary["fastest_plain"] == {"impl": "keras_mae/tensorflow", "vs_hf": 1.2}
    # the plain path against each backend's best explicit mode (PyTorch's eager is faster here)
    assert summary["plain_over_best_explicit"]["keras_mae/tensorflow"] == {"ratio": 1.0, "best": "jit_true"}
    assert summary["plain_over_best_explicit"]["keras_mae/torch"] == {"ratio": 150 / 180, "best": "jit_false"}
    assert "keras_mae/jax" not in summary["plain_over_best_explicit"]  # no explicit JAX job
    # every keras_mae backend leads with the plain path; the products alone only with --ceilings
    keras_jobs = [job for job, precision in jobs if precision == "float32" and job[0] in ("tensorflow", "jax", "torch")]
    assert [variant for impl, _, variant in keras_jobs if impl == "tensorflow"] == ["plain", "jit_true", "jit_false"]
    assert {job for job, _ in jobs if job[0].startswith("ceiling/")} == {
        ("ceiling/tensorflow", "tiny32", "plain"), ("ceiling/torch", "tiny32", "plain"),
        ("ceiling/jax", "tiny32", "heap_kept")}
    rows = {(r["impl"], r["variant"]): r for r in float32["results"]}
    assert rows[("keras_mae/jax", "plain")]["of_own_products"] == 0.5
    assert rows[("hf_transformers/torch", "eager_attention")]["of_own_products"] == 250.0 / 300.0
    # 0.5 GFLOP per image x 300 img/s = 0.15 TFLOP/s = 30% of 0.5; HF counted with the same model FLOPs
    assert abs(rows[("keras_mae/tensorflow", "plain")]["mfu"] - 0.3) < 1e-12
    assert rows[("hf_transformers/torch", "sdpa")]["achieved_tflops"] == 0.1
    out = capsys.readouterr().out
    assert "tiny32 float32: fastest plain path keras_mae/tensorflow 1.20x HF (eager); target 1.3x missed" in out
    assert "keras_mae/torch: plain path 0.83x its best explicit mode (jit_false), NOT within 5%" in out
    assert "keras_mae/tensorflow: plain path 1.00x its best explicit mode (jit_true), within 5%" in out
    # the generated section: stamped, the table with the plain rows, the spread and compile seconds
    text = results.read_text()
    assert "<!-- begin train_throughput -->" in text and "--ceilings" in text
    assert "| tiny32 | float32 | keras_mae/tensorflow | plain | - | 300.0 | 300.0-300.0 | 1.20 | 1.5 | 30.0% |" in text
    # the table records the CPU it ran on and its vector/matrix-unit flags
    flags = open("/proc/cpuinfo").read().split()
    assert report["machine"]["cpu"] and report["machine"]["cpus"] >= 1
    assert ("avx512_bf16" in report["machine"]["cpu_flags"]) == ("avx512_bf16" in flags)


def test_throughput_rounds_rotate_and_report_each_jobs_median_round(monkeypatch, tmp_path):
    calls, order = {}, []

    def fake_run_job(job, steps, warmup, timeout, batch=None, precision="float32"):
        impl, setting, variant = job
        calls[job] = calls.get(job, 0) + 1
        order.append(job)
        if impl == "jax" and variant == "plain" and calls[job] == 2:
            return {"impl": "jax", "setting": setting, "variant": variant, "error": "timeout 10s"}
        # rounds 1, 2, 3 at 100, 300, 200 img/s times a per-implementation factor
        speed = {1: 100.0, 2: 300.0, 3: 200.0}[calls[job]] * (2.0 if impl == "tensorflow" else 1.0)
        return {"impl": _row_name(impl), "setting": setting, "variant": variant, "images_per_s": speed,
                "step_s": 1.0 / speed}

    monkeypatch.setattr(train_throughput, "run_job", fake_run_job)
    output = tmp_path / "tp.json"
    assert train_throughput.main(["--settings", "tiny32", "--rounds", "3", "--output", str(output)]) == 0
    assert set(calls.values()) == {3}
    jobs = train_throughput.job_list("tiny32")
    # each round starts one job further on: every job leads a round in turn
    assert order == jobs + jobs[1:] + jobs[:1] + jobs[2:] + jobs[:2]
    report = json.load(open(output))
    rows = {(r["impl"], r["variant"]): r for r in report["groups"][0]["results"]}
    tf = rows[("keras_mae/tensorflow", "plain")]
    assert tf["images_per_s"] == 400.0 and tf["step_s"] == 1 / 400.0 and tf["round"] == 2
    assert tf["rounds_images_per_s"] == [200.0, 600.0, 400.0]
    # a failed round is left out: the median of the two others (the upper one)
    assert rows[("keras_mae/jax", "plain")]["rounds_images_per_s"] == [100.0, 200.0]
    assert rows[("keras_mae/jax", "plain")]["images_per_s"] == 200.0
    assert report["groups"][0]["summary"]["fastest_plain"]["vs_hf"] == 2.0


def test_throughput_refuses_unknown_settings_and_precisions(capsys):
    for argv, message in ((["--settings", "tiny33"], "--settings: unknown setting 'tiny33'"),
                          (["--precisions", "float16"], "--precisions: unknown 'float16'"),
                          (["--rounds", "0"], "--rounds must be >= 1")):
        with pytest.raises(SystemExit):
            train_throughput.main(argv)
        assert message in capsys.readouterr().err


def test_heap_kept_variant_runs_its_worker_with_glibc_malloc_kept(monkeypatch):
    seen = []

    def fake_run(cmd, env, **kwargs):
        seen.append(env)
        return subprocess.CompletedProcess(cmd, 0, stdout='{"impl": "keras_mae/jax"}\n', stderr="")

    for name in train_throughput.HEAP_KEPT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(train_throughput.subprocess, "run", fake_run)
    assert train_throughput.run_job(("jax", "tiny32", "heap_kept"), 1, 1, 10) == {"impl": "keras_mae/jax"}
    train_throughput.run_job(("jax", "tiny32", "plain"), 1, 1, 10)
    kept, plain = seen
    assert kept["KERAS_BACKEND"] == plain["KERAS_BACKEND"] == "jax"
    assert {name: kept[name] for name in train_throughput.HEAP_KEPT_ENV} == train_throughput.HEAP_KEPT_ENV
    assert not set(train_throughput.HEAP_KEPT_ENV) & set(plain)


def test_each_job_runs_on_its_own_backend(monkeypatch):
    seen = []

    def fake_run(cmd, env, **kwargs):
        seen.append((env.get("KERAS_BACKEND"), cmd[cmd.index("--worker") + 1]))
        return subprocess.CompletedProcess(cmd, 0, stdout='{"impl": "x"}\n', stderr="")

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(train_throughput.subprocess, "run", fake_run)
    for impl in ("tensorflow", "jax", "ceiling/tensorflow", "ceiling/jax", "ceiling/torch", "hf"):
        train_throughput.run_job((impl, "tiny32", "plain"), 1, 1, 10)
    assert seen == [("tensorflow", "tensorflow"), ("jax", "jax"), ("tensorflow", "ceiling/tensorflow"),
                    ("jax", "ceiling/jax"), ("torch", "ceiling/torch"), (None, "hf")]


# an XLA:CPU program with a 98 MiB temporary buffer, allocated at every call
_FRESH_TEMPORARY = """
import resource, jax, jax.numpy as jnp
x, w = jnp.ones((8192, 1024)), jnp.ones((1024, 1024))
f = jax.jit(lambda x, w: jnp.sum(jnp.cumsum(jax.lax.erf(x @ w) @ w, axis=0)))
f(x, w).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x, w).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def _huge_pages_always():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
@pytest.mark.skipif(_huge_pages_always(), reason="2 MiB pages by default: few faults either way")
def test_heap_kept_env_stops_most_page_faults_of_xla_cpu_temporaries():
    def faults_per_call(extra_env):
        env = {k: v for k, v in os.environ.items() if k not in train_throughput.HEAP_KEPT_ENV}
        env.update(JAX_PLATFORMS="cpu", **extra_env)
        out = subprocess.run([sys.executable, "-c", _FRESH_TEMPORARY], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        return int(out.stdout.split()[-1])

    plain = faults_per_call({})
    kept = faults_per_call(train_throughput.HEAP_KEPT_ENV)
    # mapped afresh at every call, the 98 MiB (25,100 pages of 4 KiB) fault at least half-way each time;
    # kept on the heap, 7,990 a call on an Intel Xeon and 1,600-17,400 on an AMD EPYC (against 28,000-34,000)
    assert plain > 12_500, plain
    assert kept < 0.7 * plain, (kept, plain)


def test_augment_comparison_runs_every_candidate():
    from benchmarks import augment_keras_vs_ours as augment

    results = augment.run(image_size=16, batch=4, batches=1, warmup=1, num_images=8)
    assert set(results) == set(augment.candidates(10))
    assert all(value > 0 for value in results.values())
    ratios = augment.ratios(results)
    assert ratios["cutmix/keras"] == round(results["cutmix/keras"] / results["mixup_cutmix/ours"], 3)
    assert set(ratios) == {name for name in results if "/keras" in name}


def test_results_sections_are_replaced_in_place_and_stamped(tmp_path):
    from benchmarks.results import write_section

    path = str(tmp_path / "RESULTS.md")
    write_section("a", "First", "| x |\n|---|\n| 1 |\n", command="python a.py", path=path)
    write_section("b", "Second", "text b\n", command="python b.py", path=path)
    write_section("a", "First again", "| x |\n|---|\n| 2 |\n", command="python a.py --new",
                  versions={"TensorFlow": "9.9"}, path=path)
    text = open(path).read()
    assert text.count("<!-- begin a -->") == 1 and text.count("<!-- end a -->") == 1
    assert "| 1 |" not in text and "| 2 |" in text and "First again" in text
    assert text.index("<!-- begin a -->") < text.index("<!-- begin b -->")   # kept its place
    assert "`python a.py --new`" in text and "TensorFlow 9.9" in text and "text b" in text


def test_jpeg_benchmark_jobs_run_and_the_summary_takes_each_jobs_median(tmp_path):
    from benchmarks import jpeg_folder

    paths = jpeg_folder.make_folder(str(tmp_path / "jpegs"), 6, size=(500, 375))
    assert len(paths) == 6
    from PIL import Image
    sizes = {Image.open(p).size for p in paths}
    assert sizes <= {(500, 375), (375, 500)}
    for job in jpeg_folder.JOBS:
        row = jpeg_folder.run_isolated(job, str(tmp_path / "jpegs"), 1, 8, batch=4)
        assert row["job"] == job and row["images"] >= 8 and row["images_per_s"] > 0
    rows = [dict(setting=setting, job=job, cores=1, images_per_s=rate * (1 + k) * scale)
            for setting, scale in (("imagenet", 1), ("camera", 0.1)) for k in range(3)
            for job, rate in zip(jpeg_folder.JOBS, (300, 280, 100, 320))]
    summary = jpeg_folder.summarise(rows)
    assert [s["setting"] for s in summary] == ["imagenet", "camera"]
    assert summary[0]["rate"]["ours"] == 600 and summary[0]["spread"]["pil"] == (100, 300)
    assert summary[0]["ours_over_pil"] == 3.0 and summary[0]["ours_over_decode"] == 300 / 320
    assert summary[1]["rate"]["ours"] == 60
    table = jpeg_folder.markdown(summary, 3)
    assert ("| imagenet | 1 | 600 (300-900) | 560 (280-840) | 200 (100-300) | 640 (320-960) | "
            "3.00x | 94% |") in table



def test_finetune_throughput_small(tmp_path):
    """`--small` on this backend: both sides train, and the ratio column is keras_mae's over HF's.

    The script runs float32 (a process per side); bfloat16's workers run in this process, to
    stay within a minute on a 2-core CPU.
    """
    from benchmarks import finetune_throughput

    backend = keras.backend.backend()
    results = tmp_path / "RESULTS.md"
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks", "finetune_throughput.py")
    out = subprocess.run([sys.executable, script, "--small", "--backends", backend,
                          "--dtypes", "float32", "--write-results", str(results)],
                         env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # | model | dtype | keras_mae backend | batch | keras_mae img/s | HF img/s | HF attention | ratio |
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in out.stdout.splitlines() if line.startswith("| test |")]
    assert [row[1:4] for row in rows] == [["float32", backend, "8"]], out.stdout
    ours, hf, ratio = float(rows[0][4]), float(rows[0][5]), float(rows[0][7])
    assert ours > 0 and hf > 0 and rows[0][6] == "sdpa"
    # each figure printed to 2 decimals: the ratio of the printed figures within their rounding
    assert abs(ratio - ours / hf) <= 0.0051 + ours / hf * (0.005 / ours + 0.005 / hf), rows
    # both sides train the same parameters (the heads' LayerNorms are as large)
    jobs = {job["impl"]: job for job in map(json.loads, (
        line for line in out.stdout.splitlines() if line.startswith("{")))}
    assert jobs[f"keras_mae/{backend}"]["trainable_params"] \
        == jobs["hf_transformers/torch"]["trainable_params"] > 0, jobs
    text = results.read_text()
    assert "<!-- begin finetune_throughput -->" in text and "--small" in text
    assert f"| test | float32 | {backend} | 8 |" in text

    policy = keras.mixed_precision.global_policy()
    try:
        bf16 = finetune_throughput.keras_worker("test", 2, "bfloat16", steps=1, warmup=1)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert bf16["impl"] == f"keras_mae/{backend}" and bf16["images_per_s"] > 0
    assert bf16["trainable_params"] == jobs[f"keras_mae/{backend}"]["trainable_params"]
    if backend == "torch":  # transformers' PyTorch modules next to TensorFlow/JAX: see PITFALLS
        hf_bf16 = finetune_throughput.hf_worker("test", 2, "bfloat16", steps=1, warmup=1)
        assert hf_bf16["images_per_s"] > 0 and hf_bf16["dtype"] == "bfloat16"


def test_finetune_throughput_runs_each_mode_and_sets_the_plain_path_against_the_best(monkeypatch, capsys,
                                                                                    tmp_path):
    from benchmarks import finetune_throughput

    speeds = {"tensorflow": 100.0, "tensorflow:jit_true": 100.0, "tensorflow:jit_false": 80.0,
              "torch": 50.0, "torch:jit_true": 70.0, "torch:jit_false": 50.0, "hf/sdpa": 60.0}
    seen = []

    def fake_run_job(job, batch, steps, warmup, timeout, profile=False):
        seen.append(job[2])
        return {"impl": job[2], "model": job[0], "dtype": job[1], "batch": batch,
                "images_per_s": speeds[job[2]], "step_s": batch / speeds[job[2]],
                **({"attention": "sdpa"} if job[2].startswith("hf/") else {})}

    monkeypatch.setattr(finetune_throughput, "run_job", fake_run_job)
    assert finetune_throughput.main(["--backends", "tensorflow,torch", "--dtypes", "float32",
                                     "--rounds", "1", "--hf-attention", "sdpa", "--no-profile",
                                     "--modes", "plain,jit_true,jit_false",
                                     "--write-results", str(tmp_path / "R.md")]) == 0
    assert sorted(seen) == sorted(speeds)
    out = capsys.readouterr().out
    assert "tiny32 float32 tensorflow: plain path 1.00x its best explicit mode (jit_true), within 5%" in out
    assert "tiny32 float32 torch: plain path 0.71x its best explicit mode (jit_true), NOT within 5%" in out
    assert "| tiny32 | float32 | torch:jit_true | 128 | 70.00 | 60.00 | sdpa | 1.17 |" in out
    assert "plain path 0.71x" in (tmp_path / "R.md").read_text()
    with pytest.raises(SystemExit):
        finetune_throughput.main(["--modes", "fast"])
    assert "--modes: unknown 'fast'" in capsys.readouterr().err
