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
is a flag; `--strategy` spreads each global batch over devices as in
`recipes/pretrain.py`. The output directory receives:
```
OUTPUT/
  config.json       the resolved config
  features.npz      (without --augment) the train and eval features, reused on resume
  checkpoint/       resumable state of what trains (the head, or the probe)
  history.csv       loss per epoch (epoch 1: the progress bar's "Epoch 1/N")
  evaluations.json  {epoch: {"top1", "top5"}} on the eval split
  metrics.json      the last epoch's top1/top5, and best_top1 with best_epoch
  probe_head.keras  the trained head: (B, D) pooled features -> (B, classes) logits
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

from recipes.classify_configs import ProbeConfig, get_probe_config  # noqa: E402
from recipes.common import (backend_note, check_data_flags, check_encoder_source,  # noqa: E402
                            dataset_labels, distributed_run, eval_crop_pct, fit_and_evaluate,
                            hide_cuda_probe_error, image_side, output_directory,
                            load_encoder, load_sources, record_skipped, report,
                            restart_with_heap_kept, run_main, compile_and_restore,
                            topk_scores, validate_common, warmup_cosine, write_atomic)
from recipes.flags import add_strategy_flags, build_parser, resolve_config  # noqa: E402

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

    peak = optimizers.scaled_learning_rate(config.base_lr, config.batch_size * config.accum_steps)
    return optimizers.LARS(
        warmup_cosine(config, steps_per_epoch, peak), momentum=config.momentum,
        weight_decay=config.weight_decay,
        gradient_accumulation_steps=config.accum_steps if config.accum_steps > 1 else None), peak


def head_model(probe):
    """The probe's trainable part as a functional model: `(B, D)` features -> logits."""
    import keras

    inputs = keras.Input((probe.hidden_dim,), name="features")
    return keras.Model(inputs, probe.classify_features(inputs), name="probe_head")


def stored_features(config, path, compute, log):
    """The features of `compute()` (a dict of arrays), kept in `path` for a resumed run.

    The file is reused only when it was made with the same encoder, data and
    evaluation transform (`config` fields); it is written through a rename.
    """
    import json

    import numpy as np

    from keras_mae import files

    key = json.dumps({name: getattr(config, name) for name in (
        "encoder", "encoder_config", "model", "model_overrides", "dataset", "split",
        "train_images", "eval_dataset", "eval_split", "image_size", "pooling", "crop_pct",
        "mixed_precision", "seed", "skip_bad_images")}, sort_keys=True)
    if os.path.exists(path):
        with np.load(path) as saved:
            if str(saved["key"]) == key:
                log(f"  features       reused from {path}")
                return {name: saved[name] for name in saved.files if name != "key"}
    started = time.time()
    arrays = compute()
    log(f"  features       {arrays['train_x'].shape} computed in {time.time() - started:.1f} s")
    with files.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)
    return arrays


def feature_batches(x, y, batch_size, seed):
    """`(epoch, step, num_shards, shard_index) -> dataset` over stored features.

    Each epoch is a full permutation from `(seed, epoch)` and each worker reads
    its share of every global batch, as the image pipelines
    (`keras_mae.data.order`).
    """
    import tensorflow as tf

    from keras_mae.data import order

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)

    def build(epoch, step_in_epoch, num_shards, shard_index):
        records = order.epoch_records(len(x), batch_size, order.epoch_key(seed, 0, epoch),
                                      num_shards=num_shards, shard_index=shard_index,
                                      start_step=step_in_epoch)
        return (records.map(lambda index, _: (tf.gather(x, index), tf.gather(y, index)))
                .batch(batch_size // num_shards, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))

    return build


def run(config, output_dir, log=print, strategy="default", tpu_address=None):
    """Runs (or resumes) the probe; returns `{"top1", "top5", "best_top1", ...}`."""
    check_data_flags(config)
    validate(config)
    check_encoder_source(config)
    with output_directory(output_dir):
        return distributed_run(config, output_dir, strategy, tpu_address,
                               lambda dist, replicas, write_dir: _run(
                                   config, output_dir, write_dir, log, dist, strategy, replicas))


def _run(config, output_dir, write_dir, log, dist, strategy, replicas):
    import keras
    import numpy as np

    from keras_mae import data, distribute

    train_source, eval_source, num_classes, note = load_sources(config)
    encoder = load_encoder(config)
    size = image_side(config, encoder)
    if tuple(encoder.image_size) != (size, size):
        raise ValueError(f"--image-size {size} does not match the encoder's image size "
                         f"{tuple(encoder.image_size)}; a linear probe uses the encoder as is")
    steps_per_epoch = train_source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--dataset has {train_source.num_examples} images, fewer than "
                         f"--batch-size {config.batch_size}")
    if config.mixed_precision:
        encoder = encoder.copy(dtype="mixed_bfloat16")
    crop_pct = eval_crop_pct(config, size)
    with distribute.scope(dist):
        # the head's initialiser and the shuffles repeat run to run, whatever the
        # encoder's source drew (as the official seeding of torch and numpy)
        keras.utils.set_random_seed(config.seed)
        probe = build_probe(encoder, num_classes, config.pooling)
        head = head_model(probe)
        trained = probe if config.augment else head
        optimizer, peak = build_optimizer(config, steps_per_epoch)
        start_step, folder = compile_and_restore(
            trained, optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            config, dist, replicas, output_dir)
    total_steps = config.epochs * steps_per_epoch

    write_atomic(os.path.join(write_dir, "config.json"), config.to_json())
    mode = ("augmented: random resized crop + flip, frozen encoder run every step"
            if config.augment else
            "precomputed features: encoder run once per image (centre view), no augmentation")
    log("keras-mae linear probe")
    log(f"  backend        {backend_note(probe)}")
    log(f"  strategy       {strategy}: {replicas} replica(s), "
        f"{config.batch_size // replicas} images each")
    log(f"  encoder        {config.encoder}: {encoder.depth} blocks, width {encoder.hidden_dim}, "
        f"{size} px, patch {encoder.patch_size}; pooling {config.pooling}")
    log(f"  mode           {mode}")
    log(f"  dataset        {train_source.name}: {train_source.num_examples} images, "
        f"{num_classes} classes; eval {eval_source.name}: {eval_source.num_examples} images "
        f"(centre crop {crop_pct:g}) every {config.eval_every_epochs} epoch(s)")
    if note:
        log(f"  note           {note}")
    record_skipped(train_source, write_dir, log)
    log(f"  schedule       {config.epochs} epochs x {steps_per_epoch} steps of "
        f"{config.batch_size}{f' x {config.accum_steps} accumulated' if config.accum_steps > 1 else ''}"
        f", LARS peak lr {peak:.3g} (base {config.base_lr:g} x "
        f"{config.batch_size * config.accum_steps}/256), warmup {config.warmup_epochs:g} epochs")
    if start_step:
        log(f"  resuming       from {folder} (step {start_step} of {total_steps})")

    started = time.time()
    channels = encoder.num_channels
    eval_ds = data.labeled_dataset(eval_source, size, config.batch_size, training=False,
                                   num_channels=channels, crop_pct=crop_pct)
    before = [keras.ops.convert_to_numpy(v) for v in probe.encoder.weights]
    if config.augment:
        eval_labels = dataset_labels(eval_ds)

        def shards(epoch, step_in_epoch, num_shards, shard_index):
            return data.labeled_dataset(
                train_source, size, config.batch_size, training=True, seed=config.seed,
                shuffle_buffer=config.shuffle_buffer, num_channels=channels,
                crop_scale=(config.crop_min, 1.0), epoch=epoch, start_step=step_in_epoch,
                num_shards=num_shards, shard_index=shard_index, reshuffle_each_iteration=False,
                flip=config.flip)

        def score():
            return topk_scores(probe.predict(eval_ds, verbose=0), eval_labels)
    else:
        extractor = probe.feature_model()

        def compute():
            plain = data.labeled_dataset(train_source, size, config.batch_size, training=False,
                                         num_channels=channels, crop_pct=crop_pct)
            return {"train_x": extractor.predict(plain, verbose=0).astype("float32"),
                    "train_y": dataset_labels(plain),
                    "eval_x": extractor.predict(eval_ds, verbose=0).astype("float32"),
                    "eval_y": dataset_labels(eval_ds)}

        arrays = stored_features(config, os.path.join(write_dir, "features.npz"), compute, log)
        shards = feature_batches(arrays["train_x"], arrays["train_y"], config.batch_size,
                                 config.seed)

        def score():
            return topk_scores(head.predict(arrays["eval_x"], batch_size=config.batch_size,
                                            verbose=0), arrays["eval_y"])

    def epoch_dataset(epoch, step_in_epoch):
        return distribute.input_dataset(
            dist, lambda num_shards, shard_index: shards(epoch, step_in_epoch, num_shards,
                                                         shard_index), config.batch_size)

    evaluations = fit_and_evaluate(trained, epoch_dataset, config, steps_per_epoch, start_step,
                                   write_dir, score, log)
    after = [keras.ops.convert_to_numpy(v) for v in probe.encoder.weights]
    if any(not np.array_equal(a, b) for a, b in zip(before, after)):
        raise RuntimeError("the frozen encoder's weights changed during the probe")
    return report(write_dir, head, "probe_head.keras", evaluations, started, log)


def main(argv=None):
    parser = add_strategy_flags(build_parser(ProbeConfig, __doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    return run_main(lambda: run(resolve_config(args, ProbeConfig, get_probe_config),
                                args.output_dir, strategy=args.strategy,
                                tpu_address=args.tpu_address))


if __name__ == "__main__":
    hide_cuda_probe_error()
    restart_with_heap_kept()
    sys.exit(main())
