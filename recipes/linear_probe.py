"""Linear probe of an MAE encoder: `python recipes/linear_probe.py --config digits --encoder runs/digits/encoder.keras --output-dir runs/probe`.

The official MAE linear-probe protocol (paper Appendix A.3): the encoder is
frozen and runs in inference mode; its class token (`--pooling cls`, default)
or the mean of its patch tokens (`--pooling avg`) goes through
BatchNormalization without affine parameters (eps 1e-6) and a linear head
(kernel truncated normal, std 0.01; zero bias), trained with LARS (momentum
0.9, no weight decay), lr = base_lr x batch / 256, linear warmup then cosine.

Modes: without `--augment` (default) features are computed once per image
(centre view) for the train and eval splits and only the head trains on
them; with `--augment true` every step runs the frozen encoder on a random
resized crop + flip. Every field of `ProbeConfig` (recipes/classify_configs.py)
is a flag. The output directory receives:
```
OUTPUT/
  config.json       the resolved config
  metrics.json      {"top1": ..., "top5": ...} on the eval split
  probe_head.keras  the trained head: (B, D) pooled features -> (B, classes) logits
```
"""

import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.classify_configs import ProbeConfig, get_probe_config  # noqa: E402
from recipes.flags import build_parser, resolve_config  # noqa: E402
from recipes.common import (check_encoder_source, check_output_dir, dataset_labels,  # noqa: E402
                            image_side, load_encoder, load_sources, parse_jit_compile,
                            record_skipped, report, restart_with_heap_kept, run_main,
                            validate_common, verbosity, warmup_cosine, write_atomic)

# ----------------------------------------------------------------------------
# Probe


def validate(config):
    validate_common(config)
    if not 0 < config.crop_min <= 1:
        raise ValueError(f"--crop-min must be in (0, 1]. Received: {config.crop_min!r}")
    if config.weight_decay < 0 or config.momentum < 0:
        raise ValueError(f"--weight-decay and --momentum must be >= 0. Received: "
                         f"{config.weight_decay!r}, {config.momentum!r}")


def build_probe(encoder, num_classes, pooling):
    """A `ViTClassifier` with the encoder (and `fc_norm`) frozen and a BN + linear head."""
    from keras_mae.models.classifier import ViTClassifier

    model = ViTClassifier(encoder, num_classes, pooling=pooling, head_init_std=0.01,
                          head_batch_norm=True, name="probe")
    model.build()
    model.encoder.trainable = False
    if model.fc_norm is not None:
        model.fc_norm.trainable = False
    return model


def build_optimizer(config, steps_per_epoch):
    """The official probe's optimizer (main_linprobe.py): LARS, lr = base_lr x batch / 256, warmup + cosine."""
    from keras_mae import optimizers

    peak = optimizers.scaled_learning_rate(config.base_lr, config.batch_size)
    return optimizers.LARS(warmup_cosine(config, steps_per_epoch, peak), momentum=config.momentum,
                           weight_decay=config.weight_decay), peak


def head_model(probe):
    """The probe's trainable part as a functional model: `(B, D)` features -> logits."""
    import keras

    inputs = keras.Input((probe.hidden_dim,), name="features")
    return keras.Model(inputs, probe.classify_features(inputs), name="probe_head")


def run(config, output_dir, log=print):
    """Runs the probe; returns `{"top1", "top5", ...}`."""
    validate(config)
    check_encoder_source(config)
    check_output_dir(output_dir)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_mae import data

    train_source, eval_source, num_classes, note = load_sources(config)
    encoder = load_encoder(config)
    # the head's initialiser and the shuffles repeat run to run, whatever the
    # encoder's source drew (as the official seeding of torch and numpy)
    keras.utils.set_random_seed(config.seed)
    size = image_side(config, encoder)
    if tuple(encoder.image_size) != (size, size):
        raise ValueError(f"--image-size {size} does not match the encoder's image size "
                         f"{tuple(encoder.image_size)}; a linear probe uses the encoder as is")
    steps_per_epoch = train_source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--dataset has {train_source.num_examples} images, fewer than "
                         f"--batch-size {config.batch_size}")
    probe = build_probe(encoder, num_classes, config.pooling)
    head = head_model(probe)
    optimizer, peak = build_optimizer(config, steps_per_epoch)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    jit = parse_jit_compile(config.jit_compile)

    write_atomic(os.path.join(output_dir, "config.json"), config.to_json())
    mode = ("augmented: random resized crop + flip, frozen encoder run every step"
            if config.augment else
            "precomputed features: encoder run once per image (centre view), no augmentation")
    log("keras-mae linear probe")
    log(f"  backend        {keras.backend.backend()}")
    log(f"  encoder        {config.encoder}: {encoder.depth} blocks, width {encoder.hidden_dim}, "
        f"{size} px, patch {encoder.patch_size}; pooling {config.pooling}")
    log(f"  mode           {mode}")
    log(f"  dataset        {train_source.name}: {train_source.num_examples} images, "
        f"{num_classes} classes; eval {eval_source.name}: {eval_source.num_examples} images")
    if note:
        log(f"  note           {note}")
    record_skipped(train_source, output_dir, log)
    log(f"  schedule       {config.epochs} epochs x {steps_per_epoch} steps, LARS peak lr "
        f"{peak:.3g} (base {config.base_lr:g} x {config.batch_size}/256), warmup "
        f"{config.warmup_epochs:g} epochs")

    started = time.time()
    channels = encoder.num_channels
    extractor = probe.feature_model()
    features = lambda dataset: extractor.predict(dataset, verbose=0)  # noqa: E731
    eval_ds = data.labeled_dataset(eval_source, size, config.batch_size, training=False,
                                   num_channels=channels, crop_pct=config.crop_pct)
    before = [keras.ops.convert_to_numpy(v) for v in probe.encoder.weights]
    if config.augment:
        probe.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
        train_ds = data.labeled_dataset(train_source, size, config.batch_size, training=True,
                                        seed=config.seed, shuffle_buffer=config.shuffle_buffer,
                                        repeat=True, num_channels=channels,
                                        crop_scale=(config.crop_min, 1.0))
        probe.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                  verbose=verbosity())
    else:
        plain = data.labeled_dataset(train_source, size, config.batch_size, training=False,
                                     num_channels=channels, crop_pct=config.crop_pct)
        train_x, train_y = features(plain), dataset_labels(plain)
        log(f"  features       {train_x.shape} computed in {time.time() - started:.1f} s")
        head.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
        train_ds = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
                    .shuffle(len(train_x), seed=config.seed, reshuffle_each_iteration=True)
                    .batch(config.batch_size, drop_remainder=True).repeat())
        head.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                 verbose=verbosity())
    after = [keras.ops.convert_to_numpy(v) for v in probe.encoder.weights]
    if any(not np.array_equal(a, b) for a, b in zip(before, after)):
        raise RuntimeError("the frozen encoder's weights changed during the probe")

    logits = head.predict(features(eval_ds), verbose=0)
    return report(output_dir, head, "probe_head.keras", logits, dataset_labels(eval_ds),
                  started, log)


def main(argv=None):
    args = build_parser(ProbeConfig, __doc__.split("\n")[0]).parse_args(argv)
    return run_main(lambda: run(resolve_config(args, ProbeConfig, get_probe_config),
                                args.output_dir))


if __name__ == "__main__":
    restart_with_heap_kept()
    sys.exit(main())
