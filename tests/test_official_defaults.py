"""Every user-facing default with an official or paper counterpart, pinned in one table.

Each row of `ROWS` holds the project's value, where the official code or the
paper sets it, and a function that reads the value through the path a user
takes: a recipe's parsed command line and the models and optimizers the recipe
builds from it, the data pipelines (the arguments they pass down to the
transforms they call, seen by wrapping those transforms while the pipeline is
built, and their output where that is cheap to check), the classifier, the kNN
monitor. A row whose value differs from the official one gives the official
value and the reason.

Citations: facebookresearch/mae at efb2a80 (its newest commit; `main_*.py`,
`engine_*.py`, `util/`, `models_*.py`, `PRETRAIN.md`, `FINETUNE.md`, which also
holds the linear-probe commands); timm 0.3.2, the version `main_pretrain.py:L27`
asserts (huggingface/pytorch-image-models at 6504a42, "Version 0.3.2");
DINO's `eval_knn.py` (facebookresearch/dino at 7c446df); He et al. 2021,
"Masked Autoencoders Are Scalable Vision Learners" (arXiv:2111.06377),
Appendix A, Tables 8 (pretraining), 9 (fine-tuning) and 10 (linear probing).
"""

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import re
from typing import Any, Callable

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_mae import data, keras_internals, knn
from keras_mae.callbacks import KNNMonitor
from keras_mae.data import augment, finetune_pipeline
from keras_mae.data.randaugment import RAND_AUGMENT_OPS, apply_op
from keras_mae.models import MaskedAutoencoder, ViTClassifier, ViTEncoder, from_arguments
from recipes import finetune, linear_probe, pretrain
from recipes import flags as recipe_flags
from recipes.classify_configs import (FinetuneConfig, ProbeConfig, get_finetune_config,
                                      get_probe_config)
from recipes.common import eval_crop_pct, load_dataset

MAE = "facebookresearch/mae"
TIMM = "timm 0.3.2"
PAPER = "He et al. 2021"
STEPS = 5  # steps per epoch given to the recipes' optimizers
TINY = dict(hidden_dim=32, depth=3, num_heads=4, decoder_hidden_dim=16, decoder_depth=1,
            decoder_num_heads=2, patch_size=8)
TINY_FLAGS = ("--model", "mae_vit_tiny_patch4", "--model-overrides", json.dumps(TINY),
              "--image-size", "32")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------
# The paths users take


def parsed(recipe, *argv, config=None):
    """A recipe's config as its command line resolves it (`--config` given unless None)."""
    argv = ["--output-dir", "unused", *(["--config", config] if config else []), *argv]
    if recipe == "pretrain":
        return pretrain.resolve_config(pretrain.build_parser().parse_args(argv))
    config_class, get = {"finetune": (FinetuneConfig, get_finetune_config),
                         "probe": (ProbeConfig, get_probe_config)}[recipe]
    parser = recipe_flags.add_strategy_flags(recipe_flags.build_parser(config_class, ""))
    return recipe_flags.resolve_config(parser.parse_args(argv), config_class, get)


def default_config_name(recipe):
    parser = (pretrain.build_parser() if recipe == "pretrain" else
              recipe_flags.build_parser(FinetuneConfig if recipe == "finetune" else ProbeConfig,
                                        ""))
    return parser.parse_args(["--output-dir", "unused"]).config


def small_encoder():
    encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=32, depth=3, num_heads=4, seed=0)
    encoder.build()
    return encoder


@functools.cache
def pretraining(*argv):
    """`(config, model, optimizer, peak)` of `recipes/pretrain.py --config paper_vit_base`.

    The model is tiny; with `argv` (more flags) it is the one built without them.
    """
    config = parsed("pretrain", *TINY_FLAGS, *argv, config="paper_vit_base")
    if argv:
        model = pretraining()[1]
    else:
        model = pretrain.build_model(config)
        model.build()
    optimizer, peak = pretrain.build_optimizer(config, model, STEPS)
    optimizer.build(model.trainable_variables)
    return config, model, optimizer, peak


@functools.cache
def finetuning(*argv):
    """`(config, classifier, optimizer, peak)` of `recipes/finetune.py --config paper_vit_base`.

    The encoder is small; with `argv` (more flags) the classifier is the one built without them.
    """
    config = parsed("finetune", *argv, config="paper_vit_base")
    model = finetuning()[1] if argv else finetune.build_classifier(config, small_encoder(), 10)
    optimizer, peak = finetune.build_optimizer(config, model, STEPS)
    optimizer.build(model.trainable_variables)
    return config, model, optimizer, peak


@functools.cache
def probing(*argv):
    """`(config, probe, optimizer, peak)` of `recipes/linear_probe.py --config paper_vit_base`."""
    config = parsed("probe", *argv, config="paper_vit_base")
    probe = linear_probe.build_probe(small_encoder(), 10, config.pooling)
    optimizer, peak = linear_probe.build_optimizer(config, STEPS)
    return config, probe, optimizer, peak


def learning_rates(optimizer, steps):
    """The rate `optimizer` applies at each of `steps` (its iteration counter set to each)."""
    rates = []
    for step in steps:
        optimizer.iterations.assign(step)
        rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    optimizer.iterations.assign(0)
    return np.array(rates)


def official_rate(step, peak, warmup_epochs, epochs, min_lr):
    """`util/lr_sched.py`'s rate at fractional epoch `step / STEPS` (set before each iteration)."""
    epoch = step / STEPS
    if epoch < warmup_epochs:
        return peak * epoch / warmup_epochs
    progress = (epoch - warmup_epochs) / (epochs - warmup_epochs)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_summary(config, optimizer, peak):
    """Warmup length and final rate of a recipe's schedule, and whether it is the official one."""
    total = config.epochs * STEPS
    steps = sorted(set(np.linspace(0, total, 41).astype(int).tolist()) | {1, total - 1})
    rates = learning_rates(optimizer, steps)
    official = np.array([official_rate(s, peak, config.warmup_epochs, config.epochs,
                                       config.min_lr) for s in steps])
    # the warmup rises by peak / warmup_steps per step
    first = learning_rates(optimizer, [1])[0]
    return {"warmup_epochs": round(peak / first / STEPS, 4) if first else 0.0,
            "final_lr": float(learning_rates(optimizer, [total])[0]),
            "as_lr_sched": bool(np.allclose(rates, official, rtol=1e-5, atol=peak * 1e-6))}


def adamw_settings(optimizer):
    """An AdamW's betas, epsilon and gradient clipping (None: none)."""
    return {"betas": (optimizer.beta_1, optimizer.beta_2), "epsilon": optimizer.epsilon,
            "clipnorm": optimizer.clipnorm or optimizer.global_clipnorm}


def decay_by_kind(model, optimizer):
    """Whether the optimizer decays each kind of trainable variable (kernel, bias, ...)."""
    kinds = {}
    for variable in model.trainable_variables:
        kind = variable.path.rsplit("/", 1)[-1]
        kinds.setdefault(kind, set()).add(keras_internals.uses_weight_decay(optimizer, variable))
    return {kind: seen.pop() if len(seen) == 1 else "mixed" for kind, seen in kinds.items()}


def layer_scales(model, optimizer):
    """The layer-wise lr multiplier of each group of the classifier: embeddings, blocks, top."""
    groups = {}
    for path, scale in optimizer.learning_rate_multipliers.items():
        block = re.search(r"encoder_block_(\d+)/", path)
        if block:
            name = f"block {block.group(1)}"
        elif re.search(r"patch_embedding|cls_token|position_embedding", path):
            name = "embeddings"
        else:
            name = "top"
        groups.setdefault(name, set()).add(round(scale, 12))
    return {name: scales.pop() if len(scales) == 1 else "mixed" for name, scales in groups.items()}


@contextlib.contextmanager
def spying(*targets):
    """Wraps each `(module, name)` to record the arguments of its calls, defaults applied.

    Yields `{name: [dict of arguments, ...]}`; tensors are left out.
    """
    calls = {name: [] for _, name in targets}
    originals = []
    for module, name in targets:
        original = getattr(module, name)
        signature = inspect.signature(original)

        def spy(*args, _original=original, _signature=signature, _name=name, **kwargs):
            bound = _signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls[_name].append({key: value for key, value in bound.arguments.items()
                                 if isinstance(value, (int, float, str, tuple, type(None)))})
            return _original(*args, **kwargs)

        originals.append((module, name, original))
        setattr(module, name, spy)
    try:
        yield calls
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


@functools.cache
def labelled_source():
    rng = np.random.RandomState(0)
    return data.from_arrays(rng.randint(0, 256, (64, 12, 16, 3)).astype(np.uint8),
                            np.arange(64) % 4)


TRAIN_TRANSFORMS = ((augment, "sample_crop_box"), (augment, "resize_crop"),
                    (augment, "random_flip_left_right"), (augment, "normalize"))


@functools.cache
def built(pipeline):
    """`(calls, dataset)`: a pipeline built with its defaults and the arguments it passes down."""
    source = labelled_source()
    if pipeline == "pretrain_dataset":
        with spying(*TRAIN_TRANSFORMS) as calls:
            dataset = data.pretrain_dataset(source, 16, 8)
    elif pipeline == "labeled_dataset(training=True)":
        with spying(*TRAIN_TRANSFORMS) as calls:
            dataset = data.labeled_dataset(source, 16, 8, training=True)
    elif pipeline == "labeled_dataset(training=False)":
        with spying((augment, "center_crop_resize"), (augment, "normalize")) as calls:
            dataset = data.labeled_dataset(source, 16, 8, training=False)
    elif pipeline == "labeled_arrays":
        with spying((augment, "center_crop_resize")) as calls:
            dataset = data.labeled_arrays(source, 16)
    else:
        with spying(*TRAIN_TRANSFORMS, (finetune_pipeline, "rand_augment"),
                    (finetune_pipeline, "random_erasing"), (finetune_pipeline, "mix_groups"),
                    (finetune_pipeline, "mixup_cutmix")) as calls:
            dataset = data.finetune_dataset(source, 16, 64, 10)
    return {name: found[0] for name, found in calls.items() if found}, dataset


def passed_down(pipeline):
    """The arguments a pipeline built with its defaults passes to the transforms it calls."""
    return built(pipeline)[0]


def passed(pipeline, function, *names):
    arguments = passed_down(pipeline)[function]
    values = tuple(arguments[name] for name in names)
    return values[0] if len(values) == 1 else values


TRAINING_PIPELINES = ("pretrain_dataset", "labeled_dataset(training=True)", "finetune_dataset")


def per_pipeline(function, *names):
    return {p: passed(p, function, *names) for p in TRAINING_PIPELINES}


# ----------------------------------------------------------------------------
# Observed outputs


def normalisation_of(pipeline):
    """`(mean, std)` recovered from a pipeline's output on an all-0 and an all-255 image."""
    source = data.from_arrays(np.stack([np.zeros((12, 16, 3), np.uint8),
                                        np.full((12, 16, 3), 255, np.uint8)]), np.array([0, 1]))
    if pipeline == "pretrain_dataset":
        batch = next(iter(data.pretrain_dataset(source, 8, 2))).numpy()
    else:
        batch = next(iter(data.labeled_dataset(source, 8, 2, training=False)))[0].numpy()
    low, high = batch.min(axis=(0, 1, 2)), batch.max(axis=(0, 1, 2))
    std = 1.0 / (high - low)
    return tuple(np.round(-low * std, 5).tolist()), tuple(np.round(std, 5).tolist())


def pil_eval_transform(image, size, short, resample):
    """torchvision's `Resize(short, resample)` + `CenterCrop(size)` on a PIL image, as numbers."""
    height, width = image.shape[:2]
    if height <= width:
        new_h, new_w = short, int(short * width / height)
    else:
        new_h, new_w = int(short * height / width), short
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample), np.float64)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return resized[top:top + size, left:left + size]


@functools.cache
def eval_transform_match():
    """Which official eval transform `labeled_dataset(training=False)` reproduces, at 64 px.

    A 150 x 200 noise image is evaluated at 64 px and compared with PIL
    resizes (bicubic, bilinear, Lanczos) of every shorter side 64-90, centre-
    cropped as torchvision does: the closest gives the crop fraction and the
    filter. The image shrinks, so antialiasing shows: the output is also
    compared with TensorFlow's bicubic resize without it.
    """
    size = 64
    image = np.random.RandomState(1).randint(0, 256, (150, 200, 3)).astype(np.uint8)
    source = data.from_arrays(image[None], np.array([0]))
    out = next(iter(data.labeled_dataset(source, size, 1, training=False)))[0].numpy()[0]
    pixels = (out * np.array(STD) + np.array(MEAN)) * 255.0
    filters = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}
    errors = {(short, name): np.abs(pil_eval_transform(image, size, short, f) - pixels).mean()
              for short in range(size, 91) for name, f in filters.items()}
    short, name = min(errors, key=errors.get)
    new_w = int(short * 200 / 150)
    plain = tf.image.resize(image.astype(np.float32), (short, new_w), "bicubic",
                            antialias=False).numpy().clip(0, 255)
    top, left = int(round((short - size) / 2.0)), int(round((new_w - size) / 2.0))
    aliased_error = np.abs(plain[top:top + size, left:left + size] - pixels).mean()
    return {"resize_shorter_side": short, "filter": name,
            "antialiased": bool(errors[short, name] < 1.0 < aliased_error)}


def erasing_pattern():
    """Boxes erased and how the noise varies, for `random_erasing` with its defaults and p = 1."""
    image = np.zeros((32, 32, 3), np.float32)
    for seed in range(20):  # the first seed whose draws fit (10 tries, as timm)
        out = np.asarray(data.random_erasing(image, np.array([seed, 7]), prob=1.0))
        changed = np.any(out != 0, axis=-1)
        if changed.any():
            break
    else:
        return {"boxes": 0}
    rows, cols = np.nonzero(changed)
    box = out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return {"boxes": int(changed.sum() == box.shape[0] * box.shape[1]),
            "per_pixel": bool(np.std(box[..., 0]) > 0.5),
            "per_channel": bool(np.any(box[..., 0] != box[..., 1])),
            "noise_std_about_1": bool(0.8 < np.std(box) < 1.2)}


def fill_colour():
    """The colour RandAugment's translation leaves behind (timm's `img_mean`)."""
    out = np.asarray(apply_op("translate_x", np.zeros((8, 8, 3), np.float32), 1.0, 1.0))
    return tuple(np.round(out[0, -1]).astype(int).tolist())  # the right edge, shifted left


def mixing_mode():
    """"batch" when `mixup_cutmix` (its defaults) draws one coefficient for the whole batch."""
    images = np.random.RandomState(0).rand(6, 8, 8, 3).astype(np.float32)
    _, targets, lam = data.mixup_cutmix(images, np.arange(6), 6, np.array([0, 3]))
    lam = np.asarray(lam)
    return "batch" if lam.shape == () and np.allclose(np.asarray(targets).max(axis=1),
                                                      np.asarray(targets).max()) else "elem"


@functools.cache
def finetune_batch_smoothing():
    """Label smoothing read off a batch of `finetune_dataset` (defaults): 10 classes, labels 0-3.

    Classes 4-9 are in no image's label, so their target is `smoothing / 10` however the
    images are mixed.
    """
    _, targets = next(iter(built("finetune_dataset")[1]))
    return round(float(np.asarray(targets)[:, 4:].min()) * 10, 6)


def norm_pix_rule():
    """`(ddof, epsilon)` of the recipe model's norm_pix target, matched against candidates."""
    _, model, _, _ = pretraining()
    patches = (1e-3 * np.random.RandomState(0).randn(2, 3, 48)).astype(np.float32)
    target = keras.ops.convert_to_numpy(model.reconstruction_loss.target(patches))
    centred = patches - patches.mean(axis=-1, keepdims=True)
    candidates = {(ddof, eps): centred / np.sqrt(patches.var(axis=-1, ddof=ddof, keepdims=True)
                                                 + eps)
                  for ddof in (0, 1) for eps in (0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)}
    return min(candidates, key=lambda c: np.abs(candidates[c] - target).max())


def token_init_std():
    """Std of the class token and the mask token at initialisation (256 values each)."""
    model = from_arguments(image_size=32, patch_size=16, hidden_dim=256, depth=1, num_heads=4,
                           mlp_ratio=1.0, decoder_hidden_dim=256, decoder_depth=1,
                           decoder_num_heads=4, seed=0)
    model.build()
    return (round(float(np.std(keras.ops.convert_to_numpy(model.encoder.cls_token))), 2),
            round(float(np.std(keras.ops.convert_to_numpy(model.decoder.mask_token))), 2))


def knn_monitor_settings():
    """k and temperature of the pretraining recipe's kNN monitor, and of `keras_mae.knn`."""
    config = parsed("pretrain", "--knn-reference", "20", "--knn-queries", "10")
    source = load_dataset(config.dataset, "--dataset", config.split, config.data_dir)
    monitor, _ = pretrain.knn_monitor(config, source, 3, 1)
    defaults = inspect.signature(knn.knn_predict).parameters
    monitor_defaults = inspect.signature(KNNMonitor).parameters
    return {"recipe monitor": (monitor.k, monitor.temperature),
            "KNNMonitor": (monitor_defaults["k"].default, monitor_defaults["temperature"].default),
            "knn_predict": (defaults["k"].default, defaults["temperature"].default)}


def compile_defaults(model):
    """The optimizer `model.compile()` (a built model) picks without arguments, as numbers."""
    model.compile()
    optimizer = model.optimizer
    betas_epsilon = {k: v for k, v in adamw_settings(optimizer).items() if k != "clipnorm"}
    summary = {"learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
               **betas_epsilon, "weight_decay": optimizer.weight_decay}
    if hasattr(optimizer, "layer_decay"):
        summary["layer_decay"] = optimizer.layer_decay
    return summary


def probe_head(probe):
    norm, head = probe.head_norm, probe.head
    return {"batch_norm_affine": bool(norm.center or norm.scale), "epsilon": norm.epsilon,
            "head_init_std": head.kernel_initializer.stddev, "pooling": probe.pooling}


# ----------------------------------------------------------------------------
# The table


@dataclasses.dataclass(frozen=True)
class Row:
    """One default: the project's `value`, its `source`, and how to `observe` it.

    `official` and `reason` are given when the project's value differs from
    the official one: the official value, and why or how the two differ.
    """

    id: str
    value: Any
    source: str
    observe: Callable[[], Any]
    official: Any = None
    reason: str = ""


def ft(name, *argv):
    return lambda: getattr(parsed("finetune", *argv, config="paper_vit_base"), name)


ROWS = [
    # --- the command line without --config
    Row("recipes.default_config", ("digits", "digits", "digits"),
        "the official recipes default to ImageNet at 224 px with the paper's hyperparameters",
        lambda: tuple(default_config_name(r) for r in ("pretrain", "finetune", "probe")),
        official="the paper's settings (here --config paper_vit_base/_large/_huge)",
        reason="a command without --config runs the embedded digits on a CPU in minutes; the "
               "small-data configs change hyperparameters for their budget and say which "
               "(CONTRIBUTING, 'Differences from the official code')"),
    Row("pretrain.digits.base_lr", 1.5e-3,
        f"{MAE} PRETRAIN.md:L15 (--blr 1.5e-4); {PAPER}, Table 8",
        lambda: parsed("pretrain").base_lr, official=1.5e-4,
        reason="the default digits config, a short run (30 epochs at batch 64); the small-data "
               "configs change hyperparameters for their budget (CONTRIBUTING, 'Differences "
               "from the official code')"),
    Row("probe.digits.base_lr", 10.0,
        f"{MAE} main_linprobe.py:L60 (--blr 0.1); {PAPER}, Table 10",
        lambda: parsed("probe").base_lr, official=0.1,
        reason="at batch 256 and 450 steps LARS (trust 0.001) barely moves the head at 0.1; "
               "measured 35.4% against 91.9% (classify_configs.probe_digits)"),
    Row("finetune.digits.regularisation",
        {"mixup": 0.0, "cutmix": 0.0, "rand_augment_ops": 0, "erasing_prob": 0.0,
         "crop_min": 0.6, "flip": False},
        f"{MAE} FINETUNE.md:L73 (--reprob 0.25 --mixup 0.8 --cutmix 1.0), main_finetune.py:L82 "
        f"(--aa rand-m9-mstd0.5-inc1); {TIMM} transforms_factory.py:L48, L69 (hflip 0.5, scale "
        f"0.08-1)",
        lambda: {name: getattr(parsed("finetune"), name) for name in
                 ("mixup", "cutmix", "rand_augment_ops", "erasing_prob", "crop_min", "flip")},
        official={"mixup": 0.8, "cutmix": 1.0, "rand_augment_ops": 2, "erasing_prob": 0.25,
                  "crop_min": 0.08, "flip": True},
        reason="1,500 digits: the full regularisation reached 65.7% in 30 epochs, this 98.3%; a "
               "mirrored digit is another symbol (classify_configs.finetune_digits)"),

    # --- pretraining: recipes/pretrain.py --config paper_vit_base
    Row("pretrain.mask_ratio", 0.75,
        f"{MAE} main_pretrain.py:L53 (--mask_ratio 0.75), PRETRAIN.md:L12",
        lambda: pretraining()[1].mask_ratio),
    Row("pretrain.norm_pix_loss", True,
        f"{MAE} PRETRAIN.md:L11, L20 (--norm_pix_loss; main_pretrain.py:L56-58 leaves it off)",
        lambda: pretraining()[1].norm_pix_loss),
    Row("pretrain.norm_pix_target", (1, 1e-6),
        f"{MAE} models_mae.py:L205-208 (target.var: unbiased; (var + 1.e-6)**.5)",
        norm_pix_rule),
    Row("pretrain.base_lr", 1.5e-4,
        f"{MAE} PRETRAIN.md:L15 (--blr 1.5e-4; main_pretrain.py:L66 defaults to 1e-3); "
        f"{PAPER}, Table 8",
        lambda: pretraining()[0].base_lr),
    Row("pretrain.batch_size", 4096,
        f"{MAE} PRETRAIN.md:L9, L18 (64 per GPU x 64 GPUs); {PAPER}, Table 8",
        lambda: pretraining()[0].batch_size),
    Row("pretrain.epochs", 800, f"{MAE} PRETRAIN.md:L13 (--epochs 800)",
        lambda: pretraining()[0].epochs),
    Row("pretrain.weight_decay", 0.05,
        f"{MAE} main_pretrain.py:L61 (--weight_decay 0.05), PRETRAIN.md:L15; {PAPER}, Table 8",
        lambda: pretraining()[2].weight_decay),
    Row("pretrain.adamw", {"betas": (0.9, 0.95), "epsilon": 1e-8, "clipnorm": None},
        f"{MAE} main_pretrain.py:L180 (torch.optim.AdamW(betas=(0.9, 0.95)), torch's eps 1e-8), "
        f"engine_pretrain.py:L57 (no clip_grad); {PAPER}, Table 8",
        lambda: adamw_settings(pretraining()[2])),
    Row("pretrain.weight_decay_groups",
        {"kernel": True, "bias": False, "gamma": False, "beta": False, "cls_token": True,
         "mask_token": True},
        f"{MAE} main_pretrain.py:L179 -> {TIMM} optim/optim_factory.py:L25-37 (add_weight_decay: "
        f"no decay for len(shape) == 1 or '.bias'; tokens decayed)",
        lambda: decay_by_kind(pretraining()[1], pretraining()[2])),
    Row("pretrain.position_tables_trained", False,
        f"{MAE} models_mae.py:L37, L51 (fixed sin-cos pos_embed: requires_grad=False)",
        lambda: any("position_embedding" in v.path for v in pretraining()[1].trainable_variables)),
    Row("pretrain.drop_path", 0.0,
        f"{MAE} models_mae.py:L25-28 (no drop path in the MAE's blocks)",
        lambda: pretraining()[1].encoder.drop_path_rate),
    Row("pretrain.schedule",
        {"warmup_epochs": 40.0, "final_lr": 0.0, "as_lr_sched": True},
        f"{MAE} main_pretrain.py:L68, L71 (--min_lr 0, --warmup_epochs 40), PRETRAIN.md:L14, "
        f"util/lr_sched.py:L9-15 (warmup, half-cycle cosine), engine_pretrain.py:L43 (per "
        f"iteration); {PAPER}, Table 8",
        lambda: schedule_summary(*[pretraining()[i] for i in (0, 2, 3)])),
    Row("pretrain.lr_rule", 1.5e-4 * 512 * 2 / 256,
        f"{MAE} main_pretrain.py:L163-166 (lr = blr * batch * accum_iter * world / 256)",
        lambda: pretraining("--batch-size", "512", "--accum-steps", "2")[3]),
    Row("pretrain.decoder", {"width": 512, "depth": 8, "heads": 16, "mlp_ratio": 4.0,
                             "layer_norm_epsilon": 1e-6},
        f"{MAE} models_mae.py:L223-227 (mae_vit_base_patch16_dec512d8b)",
        lambda: (lambda m: {"width": m.decoder_hidden_dim, "depth": m.decoder_depth,
                            "heads": m.decoder_num_heads, "mlp_ratio": m.decoder.mlp_ratio,
                            "layer_norm_epsilon": m.decoder.layer_norm_epsilon})(
            pretrain.build_model(parsed("pretrain", "--model-overrides", '{"depth": 1}',
                                        config="paper_vit_base")))),
    Row("pretrain.token_init_std", (0.02, 0.02),
        f"{MAE} models_mae.py:L79-80 (normal_(cls_token / mask_token, std=.02))",
        token_init_std),
    Row("MaskedAutoencoder.defaults", {"mask_ratio": 0.75, "norm_pix_loss": False},
        f"{MAE} models_mae.py:L28 (norm_pix_loss=False), L216 (forward(imgs, mask_ratio=0.75))",
        lambda: {name: inspect.signature(MaskedAutoencoder).parameters[name].default
                 for name in ("mask_ratio", "norm_pix_loss")}),
    Row("MaskedAutoencoder.compile", {"learning_rate": 1.5e-4, "betas": (0.9, 0.95),
                                      "epsilon": 1e-8, "weight_decay": 0.05},
        f"{MAE} main_pretrain.py:L180, L61, PRETRAIN.md:L15 (blr 1.5e-4 for a batch of 256)",
        lambda: compile_defaults(pretraining()[1])),

    # --- fine-tuning: recipes/finetune.py --config paper_vit_base / _large / _huge
    Row("finetune.base_lr", (5e-4, 1e-3, 1e-3),
        f"{MAE} FINETUNE.md:L72, L91, L107 (--blr 5e-4 / 1e-3 / 1e-3); {PAPER}, Table 9 (1e-3)",
        lambda: tuple(parsed("finetune", config=c).base_lr
                      for c in ("paper_vit_base", "paper_vit_large", "paper_vit_huge"))),
    Row("finetune.layer_decay", (0.65, 0.75, 0.75),
        f"{MAE} FINETUNE.md:L72, L91, L107 (--layer_decay 0.65 / 0.75 / 0.75); {PAPER}, "
        f"Table 9 (0.75)",
        lambda: tuple(parsed("finetune", config=c).layer_decay
                      for c in ("paper_vit_base", "paper_vit_large", "paper_vit_huge"))),
    Row("finetune.drop_path", (0.1, 0.2, 0.3),
        f"{MAE} FINETUNE.md:L73, L92, L108 (--drop_path 0.1 / 0.2 / 0.3)",
        lambda: tuple(parsed("finetune", config=c).drop_path_rate
                      for c in ("paper_vit_base", "paper_vit_large", "paper_vit_huge"))),
    Row("finetune.epochs", (100, 50, 50),
        f"{MAE} FINETUNE.md:L71, L90, L106 (--epochs 100 / 50 / 50); {PAPER}, Table 9",
        lambda: tuple(parsed("finetune", config=c).epochs
                      for c in ("paper_vit_base", "paper_vit_large", "paper_vit_huge"))),
    Row("finetune.batch_size", 1024,
        f"{MAE} FINETUNE.md:L68, L77 (32 per GPU x 32 GPUs); {PAPER}, Table 9",
        ft("batch_size")),
    Row("FinetuneConfig.defaults", {"base_lr": 1e-3, "layer_decay": 0.75, "drop_path_rate": 0.1},
        f"{MAE} main_finetune.py:L68 (--blr 1e-3), L70 (--layer_decay 0.75), L57 (--drop_path "
        f"0.1); {PAPER}, Table 9",
        lambda: {f.name: f.default for f in dataclasses.fields(FinetuneConfig)
                 if f.name in ("base_lr", "layer_decay", "drop_path_rate")}),
    Row("finetune.weight_decay", 0.05,
        f"{MAE} main_finetune.py:L63 (--weight_decay 0.05), FINETUNE.md:L73; {PAPER}, Table 9",
        lambda: finetuning()[2].weight_decay),
    Row("finetune.adamw", {"betas": (0.9, 0.999), "epsilon": 1e-8, "clipnorm": None},
        f"{MAE} main_finetune.py:L287 (torch.optim.AdamW defaults), L61 (--clip_grad None); "
        f"{PAPER}, Table 9",
        lambda: adamw_settings(finetuning()[2])),
    Row("finetune.weight_decay_groups",
        {"kernel": True, "bias": False, "gamma": False, "beta": False, "cls_token": False,
         "table": False},
        f"{MAE} main_finetune.py:L283-285, util/lr_decay.py:L32 (ndim == 1 or in "
        f"no_weight_decay()) with {TIMM} models/vision_transformer.py:L255-256 ({{'pos_embed', "
        f"'cls_token'}})",
        lambda: decay_by_kind(finetuning()[1], finetuning()[2])),
    Row("finetune.layer_scales",
        {"embeddings": round(0.65 ** 4, 12), "block 0": round(0.65 ** 3, 12),
         "block 1": round(0.65 ** 2, 12), "block 2": 0.65, "top": 1.0},
        f"{MAE} util/lr_decay.py:L23-25 (num_layers = blocks + 1, scale layer_decay ** "
        f"(num_layers - id)), L69-76 (ids: tokens and patch_embed 0, block i i + 1, rest "
        f"num_layers); here 3 blocks, layer decay 0.65",
        lambda: layer_scales(finetuning()[1], finetuning()[2])),
    Row("finetune.stochastic_depth", (0.0, 0.05, 0.1),
        f"{MAE} main_finetune.py:L229 -> {TIMM} models/vision_transformer.py:L226 (linspace(0, "
        f"drop_path_rate, depth)); here 3 blocks",
        lambda: tuple(round(b.drop_path_rate, 12) for b in finetuning()[1].encoder.blocks)),
    Row("finetune.schedule",
        {"warmup_epochs": 5.0, "final_lr": 1e-6, "as_lr_sched": True},
        f"{MAE} main_finetune.py:L73, L76 (--min_lr 1e-6, --warmup_epochs 5), "
        f"util/lr_sched.py:L9-15, engine_finetune.py:L47; {PAPER}, Table 9",
        lambda: schedule_summary(*[finetuning()[i] for i in (0, 2, 3)])),
    Row("finetune.lr_rule", 5e-4 * 64 * 4 / 256,
        f"{MAE} main_finetune.py:L267-270 (lr = blr * batch * accum_iter * world / 256)",
        lambda: finetuning("--batch-size", "64", "--accum-steps", "4")[3]),
    Row("finetune.classifier",
        {"pooling": "avg", "fc_norm_epsilon": 1e-6, "head_init_std": 2e-5},
        f"{MAE} main_finetune.py:L114-115 (global_pool True), models_vit.py:L46-48 (mean of "
        f"the patch tokens, fc_norm), L59 (LayerNorm eps 1e-6), main_finetune.py:L257 "
        f"(trunc_normal_(head.weight, std=2e-5))",
        lambda: {"pooling": finetuning()[1].pooling,
                 "fc_norm_epsilon": finetuning()[1].fc_norm.epsilon,
                 "head_init_std": finetuning()[1].head.kernel_initializer.stddev}),
    Row("ViTClassifier.defaults", {"pooling": "avg", "head_init_std": 2e-5},
        f"{MAE} main_finetune.py:L115, L257",
        lambda: {name: inspect.signature(ViTClassifier).parameters[name].default
                 for name in ("pooling", "head_init_std")}),
    Row("ViTClassifier.compile", {"learning_rate": 1e-3, "betas": (0.9, 0.999), "epsilon": 1e-8,
                                  "weight_decay": 0.05, "layer_decay": 0.75},
        f"{MAE} main_finetune.py:L68, L70, L63, L287; {PAPER}, Table 9",
        lambda: compile_defaults(finetuning()[1])),
    Row("finetune.label_smoothing", {"recipe": 0.1, "finetune_dataset": 0.1, "batch": 0.1},
        f"{MAE} main_finetune.py:L84 (--smoothing 0.1), L225 (Mixup(label_smoothing=...)); "
        f"{TIMM} data/mixup.py:L22-26 (off s / K, on 1 - s + s / K); {PAPER}, Table 9",
        lambda: {"recipe": ft("label_smoothing")(),
                 "finetune_dataset": passed("finetune_dataset", "mixup_cutmix", "smoothing"),
                 "batch": finetune_batch_smoothing()}),
    Row("finetune.mixup_cutmix",
        {"recipe": (0.8, 1.0), "finetune_dataset": (0.8, 1.0), "mixup_cutmix": (0.8, 1.0)},
        f"{MAE} FINETUNE.md:L73 (--mixup 0.8 --cutmix 1.0; main_finetune.py:L98, L100 default "
        f"0); {PAPER}, Table 9",
        lambda: {"recipe": (ft("mixup")(), ft("cutmix")()),
                 "finetune_dataset": passed("finetune_dataset", "mixup_cutmix", "mixup_alpha",
                                            "cutmix_alpha"),
                 "mixup_cutmix": tuple(inspect.signature(data.mixup_cutmix).parameters[n].default
                                       for n in ("mixup_alpha", "cutmix_alpha"))}),
    Row("finetune.mix_probabilities", {"recipe": (1.0, 0.5), "finetune_dataset": (1.0, 0.5)},
        f"{MAE} main_finetune.py:L104 (--mixup_prob 1.0), L106 (--mixup_switch_prob 0.5)",
        lambda: {"recipe": (ft("mixup_prob")(), ft("mixup_switch_prob")()),
                 "finetune_dataset": passed("finetune_dataset", "mixup_cutmix", "prob",
                                            "switch_prob")}),
    Row("finetune.mix_mode", "batch",
        f"{MAE} main_finetune.py:L108 (--mixup_mode batch); {TIMM} data/mixup.py:L141-153 "
        f"(one draw per batch)",
        mixing_mode),
    Row("finetune.mix_group_size", {"recipe": 32, "finetune_dataset": 32},
        f"{MAE} FINETUNE.md:L68 (--batch_size 32 per GPU), main_finetune.py:L222-225 (each "
        f"process mixes its own batch)",
        lambda: {"recipe": ft("mix_group_size")(),
                 "finetune_dataset": passed("finetune_dataset", "mix_groups", "group_size")},
        official="each GPU's batch (32 images in FINETUNE.md) mixed with its own draw",
        reason="one draw per 32 consecutive images of the global batch, whatever the devices "
               "hold (CONTRIBUTING, 'Differences from the official code')"),
    Row("finetune.rand_augment",
        {"recipe": (2, 9.0, 0.5), "finetune_dataset": (2, 9.0, 0.5, 0.5)},
        f"{MAE} main_finetune.py:L82 (--aa rand-m9-mstd0.5-inc1), util/datasets.py:L41; "
        f"{TIMM} data/auto_augment.py:L651 (2 ops), L668-669 (m9), L662-664 (mstd0.5), L613 "
        f"(prob 0.5 per op); {PAPER}, Table 9 (RandAug (9, 0.5))",
        lambda: {"recipe": (ft("rand_augment_ops")(), ft("rand_augment_magnitude")(),
                            ft("rand_augment_std")()),
                 "finetune_dataset": passed("finetune_dataset", "rand_augment", "num_ops",
                                            "magnitude", "magnitude_std", "prob")}),
    Row("finetune.rand_augment_ops",
        ("auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize",
         "solarize_add", "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y",
         "translate_x", "translate_y"),
        f"{TIMM} data/auto_augment.py:L558-575 (_RAND_INCREASING_TRANSFORMS, chosen by 'inc1' "
        f"at L665-667)",
        lambda: RAND_AUGMENT_OPS),
    Row("finetune.rand_augment_fill", (124, 116, 104),
        f"{TIMM} data/transforms_factory.py:L87 (img_mean = round(255 * mean))",
        fill_colour),
    Row("finetune.random_erasing",
        {"recipe": 0.25, "finetune_dataset": (0.25, (0.02, 1 / 3), 0.3, 10)},
        f"{MAE} main_finetune.py:L88 (--reprob 0.25), FINETUNE.md:L73, L133; {TIMM} "
        f"data/random_erasing.py:L47 (min_area 0.02, max_area 1/3, min_aspect 0.3), L52 "
        f"(max_aspect 1 / min_aspect), L75 (10 attempts)",
        lambda: {"recipe": ft("erasing_prob")(),
                 "finetune_dataset": (lambda a: (a["prob"], a["area"],
                                                 round(math.exp(a["log_ratio"][0]), 12),
                                                 a["attempts"]))(
                     passed_down("finetune_dataset")["random_erasing"])}),
    Row("finetune.random_erasing_mode",
        {"boxes": 1, "per_pixel": True, "per_channel": True, "noise_std_about_1": True},
        f"{MAE} main_finetune.py:L90 (--remode pixel), L92 (--recount 1); {TIMM} "
        f"data/random_erasing.py:L62-63 ('pixel': per-pixel normal), L72-76 (count boxes)",
        erasing_pattern),
    Row("finetune.train_crop_scale", {"recipe": 0.08, "finetune_dataset": (0.08, 1.0)},
        f"{MAE} util/datasets.py:L37-48 -> {TIMM} data/transforms_factory.py:L69 (scale "
        f"(0.08, 1.0))",
        lambda: {"recipe": ft("crop_min")(),
                 "finetune_dataset": passed("finetune_dataset", "sample_crop_box", "scale")}),
    Row("finetune.eval_crop_pct", {"224 px": 0.875, "384 px": 1.0},
        f"{MAE} util/datasets.py:L53-57 (224 / 256 up to 224 px, else 1.0)",
        lambda: {"224 px": eval_crop_pct(parsed("finetune", config="paper_vit_base"), 224),
                 "384 px": eval_crop_pct(parsed("finetune", config="paper_vit_base"), 384)}),

    # --- linear probe: recipes/linear_probe.py --config paper_vit_base
    Row("probe.base_lr", 0.1,
        f"{MAE} main_linprobe.py:L60 (--blr 0.1), FINETUNE.md:L146; {PAPER}, Table 10",
        lambda: probing()[0].base_lr),
    Row("probe.batch_size", 16384,
        f"{MAE} FINETUNE.md:L142, L150 (512 per GPU x 32 GPUs); {PAPER}, Table 10",
        lambda: probing()[0].batch_size),
    Row("probe.epochs", 90, f"{MAE} main_linprobe.py:L46 (--epochs 90); {PAPER}, Table 10",
        lambda: probing()[0].epochs),
    Row("probe.lars", {"momentum": 0.9, "trust_coefficient": 0.001, "weight_decay": 0.0},
        f"{MAE} main_linprobe.py:L252 (LARS(head, weight_decay=args.weight_decay)), L55 "
        f"(--weight_decay 0), util/lars.py:L18 (momentum 0.9, trust_coefficient 0.001); "
        f"{PAPER}, Table 10",
        lambda: {"momentum": probing()[2].momentum,
                 "trust_coefficient": probing()[2].trust_coefficient,
                 "weight_decay": probing()[2].weight_decay}),
    Row("probe.schedule", {"warmup_epochs": 10.0, "final_lr": 0.0, "as_lr_sched": True},
        f"{MAE} main_linprobe.py:L63, L66 (--min_lr 0, --warmup_epochs 10), "
        f"util/lr_sched.py:L9-15; {PAPER}, Table 10",
        lambda: schedule_summary(*[probing()[i] for i in (0, 2, 3)])),
    Row("probe.lr_rule", 0.1 * 512 * 2 / 256,
        f"{MAE} main_linprobe.py:L237-240 (lr = blr * batch * accum_iter * world / 256)",
        lambda: probing("--batch-size", "512", "--accum-steps", "2")[3]),
    Row("probe.head",
        {"batch_norm_affine": False, "epsilon": 1e-6, "head_init_std": 0.01, "pooling": "cls"},
        f"{MAE} main_linprobe.py:L222 (BatchNorm1d(affine=False, eps=1e-6)), L218 "
        f"(trunc_normal_(head.weight, std=0.01)), L72-74 (global_pool off: class token)",
        lambda: probe_head(probing()[1])),
    Row("probe.eval_crop_pct", 0.875,
        f"{MAE} main_linprobe.py:L138-139 (Resize(256), CenterCrop(224))",
        lambda: eval_crop_pct(probing()[0], 224)),
    Row("probe.train_crop_scale",
        {"recipe": 0.08, "labeled_dataset(training=True)": (0.08, 1.0)},
        f"{MAE} main_linprobe.py:L133, util/crop.py:L15 (torchvision's RandomResizedCrop "
        f"defaults: scale (0.08, 1.0))",
        lambda: {"recipe": probing()[0].crop_min,
                 "labeled_dataset(training=True)": passed("labeled_dataset(training=True)",
                                                          "sample_crop_box", "scale")}),
    Row("probe.augment", False,
        f"{MAE} main_linprobe.py:L132-134 (RandomResizedCrop + flip on every step)",
        lambda: probing()[0].augment,
        official="augmented crops through the frozen encoder every step",
        reason="the encoder runs once per image (centre view) and the head trains on stored "
               "features; --augment true gives the official crops (README, 'Linear probe and "
               "fine-tuning'; ProbeConfig)"),

    # --- the data pipelines, as users call them
    Row("pretrain_dataset.crop_scale", (0.2, 1.0),
        f"{MAE} main_pretrain.py:L124 (RandomResizedCrop(scale=(0.2, 1.0)))",
        lambda: passed("pretrain_dataset", "sample_crop_box", "scale")),
    Row("train_crop.ratio", {p: (3 / 4, 4 / 3) for p in TRAINING_PIPELINES},
        f"{MAE} main_pretrain.py:L124 (torchvision's default ratio); {TIMM} "
        f"data/transforms_factory.py:L70 (3/4, 4/3)",
        lambda: per_pipeline("sample_crop_box", "ratio")),
    Row("train_crop.interpolation", {p: "bicubic" for p in TRAINING_PIPELINES},
        f"{MAE} main_pretrain.py:L124 (interpolation=3, bicubic), util/datasets.py:L42, "
        f"main_linprobe.py:L133",
        lambda: per_pipeline("resize_crop", "method")),
    Row("train_crop.antialias", {p: False for p in TRAINING_PIPELINES},
        f"{MAE} main_pretrain.py:L124, main_linprobe.py:L133 (torchvision on PIL images); "
        f"{TIMM} data/transforms.py:L145 (F.resized_crop on a PIL image)",
        lambda: per_pipeline("resize_crop", "antialias"),
        official={p: True for p in TRAINING_PIPELINES},
        reason="the official crops are resized by PIL, which filters when it shrinks; the "
               "pipelines resize crops with TensorFlow's bicubic kernel unfiltered "
               "(augment.resize_crop's default)"),
    Row("train_crop.flip", {p: True for p in TRAINING_PIPELINES},
        f"{MAE} main_pretrain.py:L125, main_linprobe.py:L134 (RandomHorizontalFlip, p 0.5); "
        f"{TIMM} data/transforms_factory.py:L48, L73-74 (hflip 0.5)",
        lambda: {p: "random_flip_left_right" in passed_down(p) for p in TRAINING_PIPELINES}),
    Row("normalisation.observed",
        {"pretrain_dataset": (MEAN, STD), "labeled_dataset(training=False)": (MEAN, STD)},
        f"{MAE} main_pretrain.py:L127, main_linprobe.py:L136, L141, util/datasets.py:L32-33 -> "
        f"{TIMM} data/constants.py:L2-3",
        lambda: {p: normalisation_of(p)
                 for p in ("pretrain_dataset", "labeled_dataset(training=False)")}),
    Row("normalisation.finetune_dataset", (MEAN, STD),
        f"{MAE} util/datasets.py:L32-33, L46-47 -> {TIMM} data/constants.py:L2-3",
        lambda: tuple(tuple(v) for v in passed("finetune_dataset", "normalize", "mean", "std"))),
    Row("eval_transform.passed_down",
        {"crop_pct": 0.875, "method": "bicubic", "antialias": True},
        f"{MAE} util/datasets.py:L54 (224 / 256), L59 (Resize(BICUBIC), PIL filters when "
        f"shrinking), main_linprobe.py:L138-139",
        lambda: dict(zip(("crop_pct", "method", "antialias"),
                         passed("labeled_dataset(training=False)", "center_crop_resize",
                                "crop_pct", "method", "antialias")))),
    Row("eval_transform.output",
        {"resize_shorter_side": int(64 / 0.875), "filter": "bicubic", "antialiased": True},
        f"{MAE} util/datasets.py:L53-61 (Resize(int(size / crop_pct), BICUBIC) + "
        f"CenterCrop(size)), main_linprobe.py:L138-139",
        eval_transform_match),
    Row("labeled_arrays.crop_pct", 0.875,
        f"{MAE} util/datasets.py:L54, main_linprobe.py:L138-139",
        lambda: passed("labeled_arrays", "center_crop_resize", "crop_pct")),

    # --- the kNN monitor
    Row("knn.k_temperature",
        {"recipe monitor": (20, 0.07), "KNNMonitor": (20, 0.07), "knn_predict": (20, 0.07)},
        "facebookresearch/dino eval_knn.py:L194 (--nb_knn 10 20 100 200; Caron et al. 2021 "
        "report k = 20), L196 (--temperature 0.07), L165 (weights exp(similarity / T))",
        knn_monitor_settings),
]

assert len({row.id for row in ROWS}) == len(ROWS), "row ids must be unique"


def same(observed, expected):
    """Equality, with floats equal to 1e-6 relative and containers compared element by element."""
    if isinstance(expected, bool) or isinstance(observed, bool) or expected is None:
        return observed is expected or (type(observed) is type(expected)
                                        and observed == expected)
    if isinstance(expected, (int, float)) and isinstance(observed, (int, float, np.number)):
        return math.isclose(float(observed), float(expected), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(expected, dict):
        return (isinstance(observed, dict) and observed.keys() == expected.keys()
                and all(same(observed[k], expected[k]) for k in expected))
    if isinstance(expected, (tuple, list)):
        return (isinstance(observed, (tuple, list)) and len(observed) == len(expected)
                and all(same(o, e) for o, e in zip(observed, expected)))
    return observed == expected


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_official_default(row):
    if row.official is not None:
        assert row.reason and not same(row.value, row.official), (
            f"{row.id}: a row that differs from the official value gives the reason")
    observed = row.observe()
    assert same(observed, row.value), (
        f"{row.id}: observed {observed!r}, pinned {row.value!r} (source: {row.source}"
        + (f"; differs on purpose from {row.official!r}: {row.reason}" if row.reason else "")
        + ")")
