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

import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.classify_configs import ProbeConfig, get_probe_config  # noqa: E402
from recipes.flags import build_parser, resolve_config  # noqa: E402
from recipes.pretrain import check_output_dir, parse_jit_compile  # noqa: E402

# ----------------------------------------------------------------------------
# Shared with recipes/finetune.py


def validate_common(config):
    """Checks the shared numeric fields; raises ValueError naming the flag."""
    for name in ("epochs", "batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int. Received: {value!r}")
    if not isinstance(config.image_size, int) or config.image_size < 0:
        raise ValueError(f"--image-size must be an int >= 0 (0: the encoder's). "
                         f"Received: {config.image_size!r}")
    if not config.base_lr > 0:
        raise ValueError(f"--base-lr must be positive. Received: {config.base_lr!r}")
    if config.warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs must be >= 0. Received: {config.warmup_epochs!r}")
    if config.pooling not in ("cls", "avg"):
        raise ValueError(f"--pooling must be cls or avg. Received: {config.pooling!r}")


def check_encoder_source(config):
    """Fails fast on a missing encoder file or architecture file."""
    if config.encoder != "random":
        if not os.path.isfile(config.encoder):
            raise ValueError(f"--encoder {config.encoder!r}: file not found (expected an "
                             "encoder.keras written by recipes/pretrain.py, or 'random')")
        if not config.encoder.endswith(".keras"):
            raise ValueError(f"--encoder {config.encoder!r} is not a .keras file")
    elif config.encoder_config and not os.path.isfile(config.encoder_config):
        raise ValueError(f"--encoder-config {config.encoder_config!r}: file not found")


def random_encoder_arguments(config):
    """ViTEncoder arguments of `--encoder random` (from a config.json or a model name)."""
    from keras_mae.models import CONFIGS
    from keras_mae.models.classifier import ENCODER_ARGS

    model, overrides, image_size = config.model, dict(config.model_overrides), None
    if config.encoder_config:
        with open(config.encoder_config) as f:
            pretrain = json.load(f)
        model = pretrain.get("model", model)
        overrides = {**pretrain.get("model_overrides", {}), **overrides}
        image_size = pretrain.get("image_size")
    if model not in CONFIGS:
        raise ValueError(f"Unknown model {model!r}. Known: {sorted(CONFIGS)}")
    arguments = {**CONFIGS[model], **overrides}
    if image_size:
        arguments["image_size"] = image_size
    if config.image_size:
        arguments["image_size"] = config.image_size
    arguments["seed"] = config.seed
    return {k: v for k, v in arguments.items() if k in ENCODER_ARGS}


def load_encoder(config):
    """The `ViTEncoder` named by `--encoder` (a file, or `random`)."""
    import keras

    from keras_mae.models import ViTEncoder

    if config.encoder == "random":
        encoder = ViTEncoder(**random_encoder_arguments(config))
        encoder.build()
        return encoder
    encoder = keras.saving.load_model(config.encoder)
    if not isinstance(encoder, ViTEncoder):
        encoder = getattr(encoder, "encoder", None)
        if not isinstance(encoder, ViTEncoder):
            raise ValueError(f"--encoder {config.encoder!r} holds neither a ViTEncoder nor a "
                             "model with an `encoder` attribute")
    return encoder


def load_sources(config):
    """(train source, eval source, num_classes, note); raises for unlabelled data."""
    from keras_mae import data

    train = data.load_source(config.dataset, split=config.split, data_dir=config.data_dir)
    note = ""
    if config.eval_dataset:
        evaluation = data.load_source(config.eval_dataset, split=config.eval_split,
                                      data_dir=config.data_dir)
    else:
        evaluation = data.load_source(config.dataset, split=config.eval_split,
                                      data_dir=config.data_dir)
        if evaluation.name == train.name:
            note = "eval set is the training set (pass --eval-dataset for a held-out one)"
    for which, source in (("--dataset", train), ("eval dataset", evaluation)):
        if not source.has_labels:
            raise ValueError(f"{which} {source.name!r} has no labels; classification needs "
                             "labelled data (class sub-folders, or 'y' in the .npz)")
        if source.num_examples is None:
            raise ValueError(f"{which} {source.name!r} has unknown size; pass a sized source")
    counts = [s.num_classes for s in (train, evaluation) if s.num_classes is not None]
    if not counts:
        raise ValueError(f"cannot tell the number of classes of {train.name!r}")
    return train, evaluation, max(counts), note


def image_side(config, encoder):
    """The square image side for the data: `--image-size` or the encoder's."""
    height, width = encoder.image_size
    if height != width:
        raise ValueError(f"Only square encoders are supported here. Received image_size="
                         f"{encoder.image_size}")
    return config.image_size or int(height)


def topk_accuracy(logits, labels, k):
    """Fraction of rows whose label is among the k largest logits (k capped at the classes)."""
    import numpy as np

    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def dataset_labels(dataset):
    import numpy as np

    return np.concatenate([labels.numpy() for _, labels in dataset])


def write_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save_model_atomic(model, path):
    stem, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(os.path.dirname(path), f".{stem}.tmp-{os.getpid()}{ext}")
    model.save(tmp)
    os.replace(tmp, path)


def warmup_cosine(config, steps_per_epoch, peak):
    from keras_mae import optimizers

    total = config.epochs * steps_per_epoch
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total)
    return optimizers.WarmupCosineDecay(peak, total, warmup, min_lr=min(config.min_lr, peak))


def verbosity():
    return 1 if sys.stdout.isatty() else 2


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

    model = ViTClassifier.from_encoder(encoder, num_classes, pooling=pooling,
                                       head_init_std=0.01, head_batch_norm=True,
                                       drop_path_rate=0.0, name="probe")
    model.encoder.trainable = False
    if model.fc_norm is not None:
        model.fc_norm.trainable = False
    return model


def feature_extractor(classifier):
    """A Keras model `(B, H, W, C)` -> `(B, D)` pooled features (inference mode), for `predict`."""
    import keras

    class FeatureExtractor(keras.Model):
        def __init__(self, classifier, **kwargs):
            super().__init__(**kwargs)
            self.classifier = classifier

        def call(self, images):
            return self.classifier.features(images, training=False)

    return FeatureExtractor(classifier, name="features")


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

    from keras_mae import data, optimizers

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
    probe = build_probe(encoder, num_classes, config.pooling)
    head = head_model(probe)
    peak = optimizers.scaled_learning_rate(config.base_lr, config.batch_size)
    optimizer = optimizers.LARS(warmup_cosine(config, steps_per_epoch, peak),
                                momentum=config.momentum, weight_decay=config.weight_decay)
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
    log(f"  schedule       {config.epochs} epochs x {steps_per_epoch} steps, LARS peak lr "
        f"{peak:.3g} (base {config.base_lr:g} x {config.batch_size}/256), warmup "
        f"{config.warmup_epochs:g} epochs")

    started = time.time()
    channels = encoder.num_channels
    extractor = feature_extractor(probe)
    features = lambda dataset: extractor.predict(dataset, verbose=0)  # noqa: E731
    eval_ds = data.labeled_dataset(eval_source, size, config.batch_size, training=False,
                                   num_channels=channels)
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
                                     num_channels=channels)
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


def report(output_dir, model, model_file, logits, labels, started, log):
    """Writes `metrics.json` (top-1/top-5 of `logits`) and the model, atomically; logs and returns the figures."""
    metrics = {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}
    write_atomic(os.path.join(output_dir, "metrics.json"), json.dumps(metrics, indent=2))
    save_model_atomic(model, os.path.join(output_dir, model_file))
    result = {**metrics, "eval_images": int(len(labels)),
              "seconds": round(time.time() - started, 1)}
    log(f"done: {json.dumps(result)}")
    return result


def main(argv=None):
    args = build_parser(ProbeConfig, __doc__.split("\n")[0]).parse_args(argv)
    try:
        config = resolve_config(args, ProbeConfig, get_probe_config)
        run(config, args.output_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
