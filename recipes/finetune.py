"""Fine-tune an MAE encoder as a classifier: `python recipes/finetune.py --config digits --encoder runs/digits/encoder.keras --output-dir runs/finetune`.

The MAE fine-tuning recipe (paper Appendix A.2, official `main_finetune.py`):
a `ViTClassifier` (global average pooling + `fc_norm`, head kernel truncated
normal std 2e-5, stochastic depth 0.1) trained with AdamW (weight decay 0.05,
none on biases, norms, tokens and positions) and layer-wise lr decay 0.75,
lr = base_lr x batch / 256 with warmup then cosine, on RandomResizedCrop +
flip + RandAugment (9, 0.5) + random erasing 0.25 images mixed by mixup 0.8 /
cutmix 1.0 (switch 0.5) with label smoothing 0.1 (`keras_mae.data.mix`).

The encoder comes from `--encoder PATH` (an `encoder.keras` from
pretraining), `--encoder random` (untrained, see `ClassifyConfig`) or
`--from-official PATH` (an official `.pth`, via
`keras_mae.convert.from_official_checkpoint`). An `--image-size` other than
the encoder's resizes its position table bicubically. Every field of
`FinetuneConfig` (recipes/classify_configs.py) is a flag. The output
directory receives:
```
OUTPUT/
  config.json       the resolved config
  history.csv       loss and learning rate per epoch
  metrics.json      {"top1": ..., "top5": ...} on the eval split
  classifier.keras  the fine-tuned ViTClassifier
```
"""

import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.classify_configs import FinetuneConfig, get_finetune_config  # noqa: E402
from recipes.common import (check_encoder_source, check_output_dir, dataset_labels,  # noqa: E402
                            load_encoder, load_sources, parse_jit_compile, record_skipped,
                            report, restart_with_heap_kept, run_main, validate_common, verbosity,
                            warmup_cosine, write_atomic)
from recipes.flags import build_parser, resolve_config  # noqa: E402


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


def build_classifier(config, encoder, num_classes):
    from keras_mae.models.classifier import ViTClassifier

    encoder = encoder.copy(image_size=config.image_size or None,
                           drop_path_rate=config.drop_path_rate)
    model = ViTClassifier(encoder, num_classes, pooling=config.pooling,
                          head_init_std=config.head_init_std, name="vit_classifier")
    model.build()
    return model


def build_optimizer(config, model, steps_per_epoch):
    from keras_mae import optimizers

    peak = optimizers.scaled_learning_rate(config.base_lr, config.batch_size)
    optimizer = optimizers.LayerDecayAdamW(
        warmup_cosine(config, steps_per_epoch, peak), num_layers=model.encoder.depth,
        layer_decay=config.layer_decay, weight_decay=config.weight_decay,
        beta_1=config.beta_1, beta_2=config.beta_2, epsilon=1e-8)
    optimizers.exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "finetune")
    return optimizer, peak


def run(config, output_dir, log=print):
    """Fine-tunes and evaluates; returns `{"top1", "top5", ...}`."""
    validate(config)
    if not config.from_official:
        check_encoder_source(config)
    check_output_dir(output_dir)
    import keras

    from keras_mae import data
    from keras_mae.data import mix

    train_source, eval_source, num_classes, note = load_sources(config)
    steps_per_epoch = train_source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--dataset has {train_source.num_examples} images, fewer than "
                         f"--batch-size {config.batch_size}")
    encoder = source_encoder(config)
    # the head's initialiser, stochastic depth and the shuffles repeat run to
    # run, whatever the encoder's source drew (as the official seeding)
    keras.utils.set_random_seed(config.seed)
    model = build_classifier(config, encoder, num_classes)
    size = model.encoder.image_size
    if size[0] != size[1]:
        raise ValueError(f"Only square images are supported here. Received: image_size={size}")
    size = int(size[0])
    optimizer, peak = build_optimizer(config, model, steps_per_epoch)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=parse_jit_compile(config.jit_compile))

    write_atomic(os.path.join(output_dir, "config.json"), config.to_json())
    origin = config.from_official or config.encoder
    log("keras-mae fine-tuning")
    log(f"  backend        {keras.backend.backend()}")
    log(f"  encoder        {origin}: {model.encoder.depth} blocks, width "
        f"{model.encoder.hidden_dim}, {size} px (encoder trained at "
        f"{tuple(encoder.image_size)}), drop path {config.drop_path_rate:g}; pooling "
        f"{config.pooling}")
    log(f"  dataset        {train_source.name}: {train_source.num_examples} images, "
        f"{num_classes} classes; eval {eval_source.name}: {eval_source.num_examples} images")
    if note:
        log(f"  note           {note}")
    record_skipped(train_source, output_dir, log)
    log(f"  augmentation   RandAugment ({config.rand_augment_ops} ops, m "
        f"{config.rand_augment_magnitude:g}, std {config.rand_augment_std:g}), erasing "
        f"{config.erasing_prob:g}, mixup {config.mixup:g} / cutmix {config.cutmix:g}, "
        f"smoothing {config.label_smoothing:g}")
    log(f"  schedule       {config.epochs} epochs x {steps_per_epoch} steps, AdamW peak lr "
        f"{peak:.3g} (base {config.base_lr:g} x {config.batch_size}/256), layer decay "
        f"{config.layer_decay:g}, weight decay {config.weight_decay:g}")

    started = time.time()
    channels = model.encoder.num_channels
    train_ds = mix.finetune_dataset(
        train_source, size, config.batch_size, num_classes, seed=config.seed,
        shuffle_buffer=config.shuffle_buffer, repeat=True, num_channels=channels,
        crop_scale=(config.crop_min, 1.0), rand_augment_ops=config.rand_augment_ops,
        rand_augment_magnitude=config.rand_augment_magnitude,
        rand_augment_std=config.rand_augment_std, erasing_prob=config.erasing_prob,
        mixup_alpha=config.mixup, cutmix_alpha=config.cutmix,
        switch_prob=config.mixup_switch_prob, mix_prob=config.mixup_prob,
        smoothing=config.label_smoothing)
    history_path = os.path.join(output_dir, "history.csv")
    if os.path.exists(history_path):
        os.remove(history_path)
    model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
              callbacks=[keras.callbacks.CSVLogger(history_path)], verbose=verbosity())

    eval_ds = data.labeled_dataset(eval_source, size, config.batch_size, training=False,
                                   num_channels=channels, crop_pct=config.crop_pct)
    logits = model.predict(eval_ds, verbose=0)
    return report(output_dir, model, "classifier.keras", logits, dataset_labels(eval_ds),
                  started, log)


def main(argv=None):
    args = build_parser(FinetuneConfig, __doc__.split("\n")[0]).parse_args(argv)
    return run_main(lambda: run(resolve_config(args, FinetuneConfig, get_finetune_config),
                                args.output_dir))


if __name__ == "__main__":
    restart_with_heap_kept()
    sys.exit(main())
