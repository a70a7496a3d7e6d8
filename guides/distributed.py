"""
Title: Pretraining on several GPUs or a TPU
Author: keras-mae contributors
Date created: 2026/11/29
Last modified: 2026/11/29
Description: Data-parallel MAE pretraining with tf.distribute (GPUs, TPU) or JAX, and how batch size and learning rate scale with the number of devices.
Accelerator: GPU
"""

"""
## Introduction

MAE pretraining is long: the paper trains for 800 to 1600 epochs on ImageNet with a
batch of 4096 images. Such a batch is spread over many accelerators with *data
parallelism*: every device holds a copy of the model, receives a slice of each global
batch, computes gradients on it, and the gradients are averaged before every update, so
all copies stay identical.

`keras_mae.distribute` hides the differences between the backends behind one name:

| backend    | strategy names                                   | runs on                          |
|------------|--------------------------------------------------|----------------------------------|
| TensorFlow | `default`, `mirrored`, `multi_worker`, `tpu`     | GPUs of one or several machines, TPUs |
| JAX        | `default`, `data_parallel` (alias `mirrored`)    | all devices JAX sees (GPUs, TPU cores) |
| PyTorch    | `default`                                        | one device                        |

This guide trains a small MAE with whatever your runtime has: on a Colab GPU that is one
device, on a Colab TPU runtime with the JAX backend eight TPU cores. The code is the same
in every case.

## Setup
"""

# !pip install -q git+https://github.com/keras-mae/keras-mae

import os

backend = "jax"  # @param ["tensorflow", "jax", "torch"]
os.environ.setdefault("KERAS_BACKEND", backend)  # a KERAS_BACKEND set outside wins

"""
`KERAS_MAE_GUIDE_SMALL=1` shrinks everything to a few-second CPU run on the default
single device (no download); leave it unset to run the guide for real.
"""

import tempfile

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_mae
from keras_mae import data, distribute, optimizers

SMALL = os.environ.get("KERAS_MAE_GUIDE_SMALL") == "1"
FIGURES = tempfile.mkdtemp(prefix="figures_") if SMALL else "figures"
os.makedirs(FIGURES, exist_ok=True)
keras.utils.set_random_seed(0)


def show(figure, name):
    """Saves a figure under FIGURES and displays it (only saves in a small run)."""
    figure.savefig(os.path.join(FIGURES, name), dpi=110, bbox_inches="tight")
    if SMALL:
        plt.close(figure)
    else:
        plt.show()


"""
## Choosing the strategy

`"auto"` below picks the data-parallel strategy of the backend (`mirrored` on TensorFlow,
`data_parallel` on JAX) and `default` on PyTorch. For a Cloud TPU with TensorFlow, pick
`tpu` and set `TPU_ADDRESS` (`"local"` on a TPU VM). On JAX a TPU needs no special name:
its cores are simply JAX devices.

A multi-worker TensorFlow strategy must be created before TensorFlow runs anything else,
so in your own programs call `get_strategy` first.
"""

STRATEGY = "auto"  # @param ["auto", "default", "mirrored", "data_parallel", "tpu"]
TPU_ADDRESS = None  # e.g. "local" on a TPU VM, or a TPU name

if SMALL:
    STRATEGY = "default"
elif STRATEGY == "auto":
    STRATEGY = {"tensorflow": "mirrored", "jax": "data_parallel"}.get(
        keras.backend.backend(), "default")

strategy = distribute.get_strategy(STRATEGY, tpu_address=TPU_ADDRESS if STRATEGY == "tpu" else None)
replicas = distribute.num_replicas(strategy)
print(f"backend {keras.backend.backend()}, strategy {STRATEGY!r}: {replicas} replica(s)")

"""
## Batch size and learning rate

The batch you give `fit` is the *global* batch; each of the `replicas` devices gets
`global_batch / replicas` images of it, so the global batch must divide evenly (the
dataset drops an incomplete last batch). We fix the batch per device, which is what
device memory limits, and let the global batch grow with the number of devices.

The paper's rule sets the learning rate from the global batch:
`lr = base_lr * global_batch / 256`. Since the loss is averaged over the global batch
(Keras divides each replica's loss by the number of replicas), one step on eight devices
is the same update as one step on one device with the same global batch; more devices
just mean fewer steps per epoch, each with a larger learning rate.
"""

if SMALL:
    DATASET, PER_DEVICE_BATCH, EPOCHS, STEPS = "digits", 16, 2, 3
    MODEL = dict(patch_size=8, hidden_dim=32, depth=1, num_heads=2,
                 decoder_hidden_dim=32, decoder_depth=1, decoder_num_heads=2)
else:
    import tensorflow_datasets as tfds

    tfds.builder("cifar10").download_and_prepare()
    DATASET, PER_DEVICE_BATCH = "tfds:cifar10", 256
    EPOCHS = 20  # full run: 200 and more
    STEPS = None  # whole epochs
    MODEL = {}  # mae_vit_tiny_patch4 as defined by the library

BASE_LR, WARMUP_EPOCHS = 1.5e-4, 2  # the paper's base rate (per 256 images)
global_batch = PER_DEVICE_BATCH * replicas
source = data.load_source(DATASET, split="train")
steps_per_epoch = STEPS or source.num_examples // global_batch
peak_lr = optimizers.scaled_learning_rate(BASE_LR, global_batch)
print(f"global batch {global_batch} = {replicas} x {PER_DEVICE_BATCH}; "
      f"{steps_per_epoch} steps per epoch; peak learning rate {peak_lr:.2e}")

"""
The same epochs of 50,000 images at 1, 2, 4 and 8 devices, 256 images each: the schedule
is stretched over fewer, larger steps and peaks higher.
"""

figure, axis = plt.subplots(figsize=(7, 3.5))
for devices in (1, 2, 4, 8):
    batch = PER_DEVICE_BATCH * devices
    steps = max(1, 50_000 // batch) * EPOCHS
    schedule = optimizers.WarmupCosineDecay(
        optimizers.scaled_learning_rate(BASE_LR, batch), steps, WARMUP_EPOCHS * steps // EPOCHS)
    rates = keras.ops.convert_to_numpy(schedule(keras.ops.arange(steps, dtype="float32")))
    axis.plot(np.linspace(0, EPOCHS, steps), rates,
              label=f"{devices} device(s): batch {batch}, {steps // EPOCHS} steps/epoch")
axis.set_xlabel("epoch")
axis.set_ylabel("learning rate")
axis.set_title("Warmup + cosine schedule as the global batch grows")
axis.legend(fontsize=8)
axis.grid(alpha=0.3)
show(figure, "learning_rate_vs_devices.png")

"""
## Building the model under the strategy

Everything that creates variables (the model, the optimizer's slots through `compile`)
goes inside `distribute.scope(strategy)`: on TensorFlow that mirrors each variable on
every device; on JAX the `DataParallel` distribution, installed globally by
`get_strategy`, already replicates variables and shards batches, and the scope does
nothing; on PyTorch it does nothing either. `configure_model` adapts the compiled model
where a strategy needs it (a workaround for scalar logs under TensorFlow's multi-worker
strategy) and leaves it unchanged otherwise.

Each replica draws its own masks: `RandomMasking` folds the replica id into its random
seed under `tf.distribute`, and on JAX the masks of the whole global batch are drawn at
once.
"""

with distribute.scope(strategy):
    model = keras_mae.models.mae_vit_tiny_patch4(seed=0, **MODEL)
    model.build()
    total_steps = EPOCHS * steps_per_epoch
    schedule = optimizers.WarmupCosineDecay(
        peak_lr, total_steps, max(1, WARMUP_EPOCHS * total_steps // EPOCHS))
    optimizer = optimizers.AdamW(schedule, beta_2=0.95, weight_decay=0.05)
    optimizers.exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "pretrain")
    model.compile(optimizer=optimizer)
distribute.configure_model(model, strategy)

"""
## Training

The input pipeline yields global batches; Keras splits them over the replicas. With
several hosts (a TPU pod slice, several GPU machines) every host runs this same program;
only `distribute.is_chief()` should write files.
"""

train = data.pretrain_dataset(source, image_size=model.encoder.image_size[0], batch_size=global_batch,
                              repeat=True, seed=0)
# the pipeline shuffles; Keras' own `shuffle` does not apply to a `tf.data.Dataset`
history = model.fit(train, epochs=EPOCHS, steps_per_epoch=steps_per_epoch, shuffle=False,
                    verbose=2)

figure, axis = plt.subplots(figsize=(6, 3.5))
axis.plot(np.arange(1, EPOCHS + 1), history.history["loss"], marker="o")
axis.set_xlabel("epoch")
axis.set_ylabel("masked-patch MSE")
axis.set_title(f"Pretraining on {replicas} replica(s)")
axis.grid(alpha=0.3)
show(figure, "loss.png")

if distribute.is_chief():
    model.encoder.save(os.path.join(FIGURES if SMALL else ".", "encoder.keras"))

"""
We have not measured this notebook's speed on Colab hardware, so we quote no throughput.
To see what more devices buy you, compare the `ms/step` Keras prints at 1 replica and at
`replicas` replicas: with a fixed batch per device, near-constant time per step means the
epoch time falls in proportion to the devices.

## Trying it without accelerators

Both multi-device paths can be exercised on a CPU by splitting it into virtual devices
before the framework starts:

- JAX: `os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"` before
  importing Keras, then `STRATEGY = "data_parallel"`.
- TensorFlow: `tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
  [tf.config.LogicalDeviceConfiguration()] * 2)` before anything else, then
  `STRATEGY = "mirrored"` (with no GPU, `mirrored` uses all logical CPU devices).

## The same from the command line

The repository's recipe takes the strategy as a flag and keeps `--batch-size` global,
with checkpoints that survive preemption (see `guides/distributed_training.md` in the
repository for several machines and TPU pods):

```bash
KERAS_BACKEND=tensorflow python recipes/pretrain.py --config cifar10 --strategy mirrored --output-dir runs/c10
KERAS_BACKEND=tensorflow python recipes/pretrain.py --config cifar10 --strategy tpu --tpu-address local --output-dir runs/c10
KERAS_BACKEND=jax python recipes/pretrain.py --config cifar10 --strategy data_parallel --output-dir runs/c10
```
"""
