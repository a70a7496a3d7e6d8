"""Fine-tune an MAE encoder as a classifier: `python recipes/finetune.py --config digits --encoder runs/digits/encoder.keras --output-dir runs/finetune`.

The MAE fine-tuning recipe (paper Appendix A.2, official `main_finetune.py`):
a `ViTClassifier` (global average pooling + `fc_norm`, head kernel truncated
normal std 2e-5, stochastic depth 0.1) whose whole encoder trains, position
table included, with AdamW (weight decay 0.05, none on biases, norms, tokens
and positions) and layer-wise lr decay 0.75, lr = base_lr x batch / 256 with
warmup then cosine, on RandomResizedCrop + flip + RandAugment (9, 0.5) +
random erasing 0.25 images mixed by mixup 0.8 / cutmix 1.0 (switch 0.5, one
draw per 32 images) with label smoothing 0.1 (`keras_mae.data.finetune_dataset`).
The eval split is scored every `--eval-every-epochs` epochs.

The encoder comes from `--encoder PATH` (an `encoder.keras` from
pretraining), `--encoder random` (untrained, see `ClassifyConfig`) or
`--from-official PATH` (an official `.pth`, via
`keras_mae.convert.from_official_checkpoint`). An `--image-size` other than
the encoder's resizes its position table bicubically. Every field of
`FinetuneConfig` (recipes/classify_configs.py) is a flag; `--strategy` spreads
each global batch over devices as in `recipes/pretrain.py`. The output
directory receives:
```
OUTPUT/
  config.json       the resolved config
  checkpoint/       resumable state (model, optimizer, step, epoch)
  history.csv       loss per epoch (epoch 1: the progress bar's "Epoch 1/N")
  evaluations.json  {epoch: {"top1", "top5"}} on the eval split
  metrics.json      the last epoch's top1/top5, and best_top1 with best_epoch
  classifier.keras  the fine-tuned ViTClassifier
  export/           with --export: saved_model/ and/or model.onnx
```
Starting the same command again continues from the last checkpoint; on
SIGTERM the run finishes its step, writes a checkpoint and exits with status
143.
"""

import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.classify_configs import FinetuneConfig, get_finetune_config  # noqa: E402
from recipes.common import (backend_note, check_data_flags, check_encoder_source,  # noqa: E402
                            dataset_labels, distributed_run, eval_crop_pct, fit_and_evaluate,
                            hide_cuda_probe_error, image_side, output_directory,
                            load_encoder, load_sources, record_skipped, report,
                            restart_with_heap_kept, run_main, compile_and_restore,
                            topk_scores, validate_common, warmup_cosine, write_atomic)
from recipes.flags import add_strategy_flags, build_parser, resolve_config  # noqa: E402


def validate(config):
    validate_common(config)
    for name in ("layer_decay",):
        value = getattr(config, name)
        if not 0 < value <= 1:
            raise ValueError(f"--layer-decay must be in (0, 1]. Received: {value!r}")
    for name in ("drop_path_rate", "label_smoothing", "mixup_switch_prob", "mixup_prob",
                 "erasing_prob"):
        value = getattr(config, name)
        upper_open = name == "drop_path_rate"
        if not 0 <= value <= 1 or (upper_open and value == 1):
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1"
                             f"{')' if upper_open else ']'}. Received: {value!r}")
    for name in ("mixup", "cutmix", "weight_decay", "rand_augment_std"):
        if getattr(config, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0. "
                             f"Received: {getattr(config, name)!r}")
    if not 0 <= config.rand_augment_magnitude <= 10:
        raise ValueError(f"--rand-augment-magnitude must be in [0, 10]. "
                         f"Received: {config.rand_augment_magnitude!r}")
    if not isinstance(config.rand_augment_ops, int) or config.rand_augment_ops < 0:
        raise ValueError(f"--rand-augment-ops must be an int >= 0. "
                         f"Received: {config.rand_augment_ops!r}")
    if not 0 < config.crop_min <= 1:
        raise ValueError(f"--crop-min must be in (0, 1]. Received: {config.crop_min!r}")
    if config.from_official and not os.path.isfile(config.from_official):
        raise ValueError(f"--from-official {config.from_official!r}: file not found")


def source_encoder(config):
    """The pretrained `ViTEncoder`: from `--from-official`, or `--encoder`."""
    if not config.from_official:
        return load_encoder(config)
    try:
        from keras_mae.convert import from_official_checkpoint
    except ImportError as error:
        raise ValueError(f"--from-official needs keras_mae.convert, which cannot be imported "
                         f"here: {error}") from error
    model = from_official_checkpoint(config.from_official)
    return getattr(model, "encoder", model)


def build_classifier(config, encoder, num_classes, dtype=None):
    """The fine-tuning `ViTClassifier`: a copy of `encoder` at `--image-size`, positions trainable."""
    from keras_mae.models.classifier import ViTClassifier

    encoder = encoder.copy(image_size=config.image_size or None,
                           drop_path_rate=config.drop_path_rate, trainable_positions=True,
                           **({"dtype": dtype} if dtype else {}))
    model = ViTClassifier(encoder, num_classes, pooling=config.pooling,
                          head_init_std=config.head_init_std, name="vit_classifier")
    model.build()
    return model


def build_optimizer(config, model, steps_per_epoch):
    from keras_mae import optimizers

    peak = optimizers.scaled_learning_rate(config.base_lr, config.batch_size * config.accum_steps)
    optimizer = optimizers.finetuning_adamw(
        model, warmup_cosine(config, steps_per_epoch, peak), layer_decay=config.layer_decay,
        weight_decay=config.weight_decay, beta_1=config.beta_1, beta_2=config.beta_2,
        gradient_accumulation_steps=config.accum_steps if config.accum_steps > 1 else None)
    return optimizer, peak


def augmentation_summary(config):
    """One line naming exactly the augmentations that are on."""
    parts = [f"random resized crop (area {config.crop_min:g}-1)"
             + (" + flip" if config.flip else ", no flip")]
    if config.rand_augment_ops:
        parts.append(f"RandAugment ({config.rand_augment_ops} ops, m "
                     f"{config.rand_augment_magnitude:g}, std {config.rand_augment_std:g})")
    if config.erasing_prob:
        parts.append(f"random erasing {config.erasing_prob:g}")
    mixes = [f"{name} {alpha:g}" for name, alpha in (("mixup", config.mixup),
                                                     ("cutmix", config.cutmix)) if alpha]
    if mixes:
        parts.append(" / ".join(mixes) + f" per {config.mix_group_size or 'batch'} images"
                     + (f" (p {config.mixup_prob:g})" if config.mixup_prob < 1 else ""))
    off = [name for name, on in (("RandAugment", config.rand_augment_ops),
                                 ("erasing", config.erasing_prob),
                                 ("mixup", config.mixup), ("cutmix", config.cutmix)) if not on]
    line = ", ".join(parts) + f"; label smoothing {config.label_smoothing:g}"
    return line + (f"; off: {', '.join(off)}" if off else "")


def run(config, output_dir, log=print, strategy="default", tpu_address=None):
    """Fine-tunes (or resumes) and evaluates; returns `{"top1", "top5", "best_top1", ...}`."""
    check_data_flags(config)
    validate(config)
    if not config.from_official:
        check_encoder_source(config)
    with output_directory(output_dir):
        formats = export_formats(config)
        return distributed_run(config, output_dir, strategy, tpu_address,
                               lambda dist, replicas, write_dir: _run(
                                   config, output_dir, write_dir, log, dist, strategy, replicas,
                                   formats))


def export_formats(config):
    """The formats of `--export`, checked before any compute."""
    if not config.export:
        return ()
    from keras_mae import export

    formats = tuple(f.strip() for f in config.export.split(",") if f.strip())
    export.check_formats(formats)
    return formats


def _run(config, output_dir, write_dir, log, dist, strategy, replicas, formats):
    import keras

    from keras_mae import data, distribute
    from keras_mae.data.finetune_pipeline import check_mix_groups

    train_source, eval_source, num_classes, note = load_sources(config)
    steps_per_epoch = train_source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--dataset has {train_source.num_examples} images, fewer than "
                         f"--batch-size {config.batch_size}")
    encoder = source_encoder(config)
    dtype = "mixed_bfloat16" if config.mixed_precision else None
    with distribute.scope(dist):
        # the head's initialiser, stochastic depth and the shuffles repeat run to
        # run, whatever the encoder's source drew (as the official seeding)
        keras.utils.set_random_seed(config.seed)
        model = build_classifier(config, encoder, num_classes, dtype)
        size = image_side(config, model.encoder)
        check_mix_groups(config.batch_size, config.mix_group_size, replicas)
        optimizer, peak = build_optimizer(config, model, steps_per_epoch)
        start_step, folder = compile_and_restore(
            model, optimizer, keras.losses.CategoricalCrossentropy(from_logits=True), config,
            dist, replicas, output_dir)
    total_steps = config.epochs * steps_per_epoch
    crop_pct = eval_crop_pct(config, size)

    write_atomic(os.path.join(write_dir, "config.json"), config.to_json())
    origin = config.from_official or config.encoder
    log("keras-mae fine-tuning")
    log(f"  backend        {backend_note(model)}")
    log(f"  strategy       {strategy}: {replicas} replica(s), "
        f"{config.batch_size // replicas} images each")
    log(f"  encoder        {origin}: {model.encoder.depth} blocks, width "
        f"{model.encoder.hidden_dim}, {size} px (encoder trained at "
        f"{tuple(encoder.image_size)}), drop path {config.drop_path_rate:g}; pooling "
        f"{config.pooling}; position table trained")
    log(f"  dataset        {train_source.name}: {train_source.num_examples} images, "
        f"{num_classes} classes; eval {eval_source.name}: {eval_source.num_examples} images "
        f"(centre crop {crop_pct:g}) every {config.eval_every_epochs} epoch(s)")
    if note:
        log(f"  note           {note}")
    record_skipped(train_source, write_dir, log)
    log(f"  augmentation   {augmentation_summary(config)}")
    log(f"  schedule       {config.epochs} epochs x {steps_per_epoch} steps of "
        f"{config.batch_size}{f' x {config.accum_steps} accumulated' if config.accum_steps > 1 else ''}"
        f", AdamW peak lr {peak:.3g} (base {config.base_lr:g} x "
        f"{config.batch_size * config.accum_steps}/256), layer decay {config.layer_decay:g}, "
        f"weight decay {config.weight_decay:g}")
    if start_step:
        log(f"  resuming       from {folder} (step {start_step} of {total_steps})")

    started = time.time()
    channels = model.encoder.num_channels

    def epoch_dataset(epoch, step_in_epoch):
        def shard(num_shards, shard_index):
            return data.finetune_dataset(
                train_source, size, config.batch_size, num_classes, seed=config.seed,
                shuffle_buffer=config.shuffle_buffer, num_channels=channels,
                crop_scale=(config.crop_min, 1.0), rand_augment_ops=config.rand_augment_ops,
                rand_augment_magnitude=config.rand_augment_magnitude,
                rand_augment_std=config.rand_augment_std, erasing_prob=config.erasing_prob,
                mixup_alpha=config.mixup, cutmix_alpha=config.cutmix,
                switch_prob=config.mixup_switch_prob, mix_prob=config.mixup_prob,
                smoothing=config.label_smoothing, mix_group_size=config.mix_group_size,
                epoch=epoch, start_step=step_in_epoch, num_shards=num_shards,
                shard_index=shard_index, reshuffle_each_iteration=False, flip=config.flip)

        return distribute.input_dataset(dist, shard, config.batch_size)

    eval_ds = data.labeled_dataset(eval_source, size, config.batch_size, training=False,
                                   num_channels=channels, crop_pct=crop_pct)
    eval_labels = dataset_labels(eval_ds)
    def score():
        return topk_scores(model.predict(eval_ds, verbose=0), eval_labels)

    evaluations = fit_and_evaluate(model, epoch_dataset, config, steps_per_epoch, start_step,
                                   write_dir, score, log)
    return report(write_dir, model, "classifier.keras", evaluations, started, log, formats)


def main(argv=None):
    parser = add_strategy_flags(build_parser(FinetuneConfig, __doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    return run_main(lambda: run(resolve_config(args, FinetuneConfig, get_finetune_config),
                                args.output_dir, strategy=args.strategy,
                                tpu_address=args.tpu_address))


if __name__ == "__main__":
    hide_cuda_probe_error()
    restart_with_heap_kept()
    sys.exit(main())
