"""Pretrain a Masked Autoencoder: `python recipes/pretrain.py --config digits --output-dir runs/digits`.

Every field of `PretrainConfig` (recipes/pretrain_configs.py) is a flag. The
output directory receives:
```
OUTPUT/
  config.json            the resolved config
  checkpoint/            resumable state (model, optimizer, step, epoch)
  history.csv            per-epoch loss, and kNN top-1 on the epochs it runs;
                         epochs numbered as the progress bar's "Epoch 1/N",
                         row 0 before training
  tensorboard/           TensorBoard logs
  reconstructions/       epoch_XXXX.png grids on fixed test images and masks
  model.keras            the whole MAE
  preset/                the whole MAE as a preset folder (`keras_mae.presets`):
                         shared with `keras_hub.upload_preset`, continued with
                         `--init-preset`
  keras_hub/             the encoder as a KerasHub ViT preset (backbone and an
                         image converter with the ImageNet normalisation):
                         `keras_hub.models.ViTImageClassifier.from_preset`
  encoder.keras          the encoder alone, for probing and fine-tuning
  encoder.weights.h5     its weights
```
Starting the same command again with the same output directory continues
from the last checkpoint (a finished run exits at once). On SIGTERM the run
finishes its step, writes a checkpoint and exits with status 143.

`--strategy` spreads each global batch over devices (`keras_mae.distribute`):
`mirrored` (all local GPUs), `multi_worker` (TF_CONFIG), `tpu`, or on JAX
`data_parallel`. `--batch-size` stays the global batch, and so does the
learning-rate rule. Only the chief writes into OUTPUT (other workers write
into a temporary folder they delete); every worker resumes from the chief's
checkpoint, so OUTPUT must be on a file system all workers share.

On Linux without a CUDA driver, every recipe's command sets
`TF_CPP_MIN_LOG_LEVEL=3` unless it is set: TensorFlow then leaves out the
`failed call to cuInit` error line it logs on such machines (and its other
C++ log lines below FATAL); `TF_CPP_MIN_LOG_LEVEL=0` shows them all.
"""

import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes import flags  # noqa: E402
from recipes.common import (backend_note, check_data_flags, distributed_run,  # noqa: E402
                            hide_cuda_probe_error, load_dataset, other_split, output_directory,
                            parse_jit_compile, record_skipped, restart_with_heap_kept,
                            restore_latest, run_main, save_atomic, verbosity, warmup_cosine,
                            write_atomic)
from recipes.pretrain_configs import PretrainConfig, get_config  # noqa: E402
from recipes.training import (after_progress_bar, fit_epochs, history_logger,  # noqa: E402
                              tensorboard, write_history_row)


def build_parser():
    parser = flags.build_parser(PretrainConfig, __doc__.split("\n")[0],
                                config_help="named config (pretrain_configs.CONFIGS)")
    return flags.add_strategy_flags(parser)


def resolve_config(args):
    return flags.resolve_config(args, PretrainConfig, get_config)


def validate(config):
    for name in ("epochs", "batch_size", "accum_steps", "image_size", "checkpoint_every_steps",
                 "reconstruction_every_epochs", "knn_reference", "knn_queries"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int. Received: {value!r}")
    if not isinstance(config.knn_every_epochs, int) or config.knn_every_epochs < 0:
        raise ValueError(f"--knn-every-epochs must be an int >= 0 (0: off). "
                         f"Received: {config.knn_every_epochs!r}")
    if config.base_lr <= 0:
        raise ValueError(f"--base-lr must be positive. Received: {config.base_lr!r}")
    if config.init_preset:
        from keras_mae import presets

        saved, _ = presets.load_preset_config(config.init_preset)
        if saved.get("class_name") != "MaskedAutoencoder":
            raise ValueError(f"--init-preset {config.init_preset!r} holds a "
                             f"{saved.get('class_name')}, not a MaskedAutoencoder")
        size = saved["config"]["encoder"]["config"]["image_size"]
        if list(size) != [config.image_size] * 2:
            raise ValueError(f"--init-preset {config.init_preset!r} is a {size} px model; "
                             f"--image-size is {config.image_size}")


def build_model(config):
    import keras_mae

    if config.init_preset:
        return keras_mae.presets.from_preset(
            config.init_preset, mask_ratio=config.mask_ratio,
            norm_pix_loss=config.norm_pix_loss, seed=config.seed)
    overrides = dict(config.model_overrides)
    overrides.update(image_size=config.image_size, mask_ratio=config.mask_ratio,
                     norm_pix_loss=config.norm_pix_loss, seed=config.seed)
    return keras_mae.models.build(config.model, **overrides)


def build_optimizer(config, model, steps_per_epoch):
    from keras_mae import optimizers

    effective_batch = config.batch_size * config.accum_steps
    peak = optimizers.scaled_learning_rate(config.base_lr, effective_batch)
    schedule = warmup_cosine(config, steps_per_epoch, peak)
    # torch.optim.AdamW's update (epsilon 1e-8) with timm's parameter groups, as main_pretrain.py
    optimizer = optimizers.pretraining_adamw(
        model, schedule, beta_1=config.beta_1, beta_2=config.beta_2,
        weight_decay=config.weight_decay,
        gradient_accumulation_steps=config.accum_steps if config.accum_steps > 1 else None)
    return optimizer, peak


def parameter_count(variables):
    import numpy as np

    return sum(int(np.prod(v.shape)) for v in variables)


def sample_images(config, source):
    """Eight fixed evaluation images for the reconstruction grids."""
    from keras_mae import data

    dataset = data.pretrain_dataset(source, config.image_size, 8, augment=False, shuffle_buffer=0,
                                    drop_remainder=False)
    return next(iter(dataset)).numpy()


def knn_monitor(config, source, num_channels, replicas):
    """The `KNNMonitor` of `config`, or `(None, reason)` when it stays off."""
    from keras_mae import callbacks, data

    if not config.knn_every_epochs:
        return None, "off (--knn-every-epochs 0)"
    if replicas > 1:
        return None, "off (runs on one replica only)"
    if not source.has_labels:
        return None, f"off ({source.name} has no labels)"
    if config.knn_dataset:
        queries = load_dataset(config.knn_dataset, "--knn-dataset", config.eval_split,
                               config.data_dir)
        if not queries.has_labels:
            raise ValueError(f"--knn-dataset {config.knn_dataset!r} has no labels")
        queries = data.slice_source(queries, 0, min(config.knn_queries, queries.num_examples))
        reference = data.slice_source(source, 0, min(config.knn_reference, source.num_examples))
    else:
        count = min(config.knn_queries, source.num_examples // 5)
        queries = data.slice_source(source, source.num_examples - count, count)
        reference = data.slice_source(
            source, 0, min(config.knn_reference, source.num_examples - count))
    monitor = callbacks.KNNMonitor(
        *data.labeled_arrays(reference, config.image_size, num_channels),
        *data.labeled_arrays(queries, config.image_size, num_channels),
        every_n_epochs=config.knn_every_epochs)
    return monitor, (f"every {config.knn_every_epochs} epochs: {reference.num_examples} "
                     f"reference ({reference.name}), {queries.num_examples} queries "
                     f"({queries.name}), k {monitor.k}, temperature {monitor.temperature}, "
                     f"pooling {monitor.pooling}")


def run(config, output_dir, log=print, strategy="default", tpu_address=None):
    """Runs (or resumes) pretraining; returns a dict of final figures.

    `strategy` names a `keras_mae.distribute` strategy. The chief writes into
    `output_dir`; other workers write into a temporary folder, deleted at the
    end, and restore from the chief's checkpoint in `output_dir`.
    """
    check_data_flags(config)
    validate(config)
    with output_directory(output_dir):
        return distributed_run(config, output_dir, strategy, tpu_address,
                               lambda dist, replicas, write_dir: _run(
                                   config, output_dir, write_dir, log, dist, strategy, replicas))


def _run(config, output_dir, write_dir, log, dist, strategy, replicas):
    """`run` after the strategy is set: restores from `output_dir`, writes into `write_dir`."""
    import keras

    from keras_mae import distribute

    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    # weight initialisation is seeded too, so the same command gives the same run
    keras.utils.set_random_seed(config.seed)

    from keras_mae import callbacks as mae_callbacks
    from keras_mae import data

    source = load_dataset(config.dataset, "--dataset", config.split, config.data_dir,
                          config.skip_bad_images)
    if source.num_examples is None:
        raise ValueError(f"--dataset {config.dataset!r} has unknown size; pass a sized source")
    steps_per_epoch = source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"--dataset {config.dataset!r} has {source.num_examples} images, fewer than "
            f"--batch-size {config.batch_size}")
    try:
        eval_source = other_split(config, source)
    except ValueError:
        eval_source = source

    with distribute.scope(dist):
        model = build_model(config)
        model.build()
        optimizer, peak_lr = build_optimizer(config, model, steps_per_epoch)
        model.compile(optimizer=optimizer, jit_compile=parse_jit_compile(config.jit_compile))
        distribute.configure_model(model, dist)

        # every worker restores the chief's checkpoint (the shared output directory)
        start_step, folder = restore_latest(model, output_dir)
    ckpt_dir = os.path.join(write_dir, "checkpoint")
    total_steps = config.epochs * steps_per_epoch

    write_atomic(os.path.join(write_dir, "config.json"), config.to_json())
    log("keras-mae pretraining")
    log(f"  backend        {backend_note(model)}")
    log(f"  strategy       {strategy}: {replicas} replica(s), "
        f"{config.batch_size // replicas} images each; "
        f"{'chief' if write_dir == output_dir else 'worker, writing to ' + write_dir}")
    log(f"  config         {config.to_json()}")
    log(f"  model          {config.init_preset or config.model}: "
        f"{parameter_count(model.trainable_variables):,} trainable parameters (encoder {parameter_count(model.encoder.trainable_variables):,}), "
        f"{model.num_patches} patches, {model.num_visible} visible")
    log(f"  dataset        {source.name}: {source.num_examples} images, "
        f"{steps_per_epoch} steps/epoch x {config.epochs} epochs = {total_steps} steps")
    log(f"  learning rate  peak {peak_lr:.3g} (base {config.base_lr:g} x "
        f"{config.batch_size * config.accum_steps}/256)")
    log(f"  output         {os.path.abspath(output_dir)}")
    if start_step:
        log(f"  resuming       from {folder} (step {start_step} of {total_steps})")
    record_skipped(source, write_dir, log)

    monitor, knn_note = knn_monitor(config, source, model.encoder.num_channels, replicas)
    log(f"  knn monitor    {knn_note}")
    images = sample_images(config, eval_source)
    recon = mae_callbacks.ReconstructionCallback(
        images, os.path.join(write_dir, "reconstructions"),
        every_n_epochs=config.reconstruction_every_epochs, seed=config.seed)
    recon.set_model(model)
    if start_step == 0:
        recon.write(0)
    # epochs numbered as the progress bar shows them: history.csv's rows, the
    # reconstructions' and the log's epochs; 0 is before training
    history_path = os.path.join(write_dir, "history.csv")
    later = after_progress_bar(log)
    callbacks = []
    if monitor is not None:
        monitor.set_model(model)
        if start_step == 0:
            top1 = monitor.evaluate(0)
            write_history_row(history_path, 0, {monitor.name: top1})
            log(f"  knn top-1      {top1:.4f} before training ({monitor.history[-1][2]:.1f} s)")

        def log_knn(epoch, logs):
            if monitor.history and monitor.history[-1][0] == epoch + 1:
                later(f"  knn top-1      {monitor.history[-1][1]:.4f} after epoch {epoch + 1} "
                      f"({monitor.history[-1][2]:.1f} s)")

        # before the CSV and TensorBoard loggers, which read the value from the logs
        callbacks = [monitor, keras.callbacks.LambdaCallback(on_epoch_end=log_knn)]

    started = time.time()

    # the epoch's permutation from (seed, epoch); a resumed epoch starts at its
    # step without reading the records before it; each worker reads its share
    def epoch_dataset(epoch, step_in_epoch):
        def shard(num_shards, shard_index):
            return data.pretrain_dataset(
                source, config.image_size, config.batch_size, seed=config.seed, epoch=epoch,
                start_step=step_in_epoch, shuffle_buffer=config.shuffle_buffer,
                num_channels=model.encoder.num_channels, reshuffle_each_iteration=False,
                num_shards=num_shards, shard_index=shard_index)

        return distribute.input_dataset(dist, shard, config.batch_size)

    fit_epochs(model, epoch_dataset, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
               start_step=start_step, checkpoint_dir=ckpt_dir,
               every_steps=config.checkpoint_every_steps,
               callbacks=[mae_callbacks.StopOnNonFiniteLoss(start_step), *callbacks,
                          history_logger(history_path),
                          tensorboard(os.path.join(write_dir, "tensorboard")), recon, later],
               verbose=verbosity())

    final_grid = os.path.join(recon.output_dir, f"epoch_{config.epochs:04d}.png")
    if not os.path.exists(final_grid):
        recon.write(config.epochs)
    _export(model, write_dir)
    # workers leave together: one that exits while another still talks to it
    # aborts the other's collectives ("Socket closed"); the chief leaves last
    arrived = distribute.leave_together(dist)
    result = {"steps": total_steps, "seconds": round(time.time() - started, 1)}
    if arrived > 1:
        log(f"  barrier        {arrived} replicas finished")
    result["final_loss"] = _last_loss(history_path)
    log(f"done: {json.dumps(result)}; encoder at {os.path.join(write_dir, 'encoder.keras')}")
    return result


def _export(model, output_dir):
    """Writes model.keras, preset/, keras_hub/, encoder.keras and encoder.weights.h5 atomically."""
    from keras_mae import presets
    from keras_mae.convert import save_keras_hub_preset

    for obj, name, method in ((model, "model.keras", "save"), (model.encoder, "encoder.keras", "save"),
                              (model.encoder, "encoder.weights.h5", "save_weights")):
        save_atomic(obj, os.path.join(output_dir, name), method)
    presets.save_to_preset(model, os.path.join(output_dir, "preset"), overwrite=True)
    save_keras_hub_preset(model.encoder, os.path.join(output_dir, "keras_hub"), overwrite=True)


def _last_loss(history_path):
    import csv

    if not os.path.exists(history_path):
        return None
    with open(history_path) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["loss"]) if rows else None


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_main(lambda: run(resolve_config(args), args.output_dir, strategy=args.strategy,
                                tpu_address=args.tpu_address))


if __name__ == "__main__":
    hide_cuda_probe_error()
    restart_with_heap_kept()
    sys.exit(main())
