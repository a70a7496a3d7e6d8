"""
Title: Pretraining a Masked Autoencoder on CIFAR-10
Author: keras-mae contributors
Date created: 2026/11/29
Last modified: 2026/11/29
Description: Train a small MAE on CIFAR-10 and watch its reconstructions of hidden patches sharpen.
Accelerator: GPU
"""

"""
## Introduction

A Masked Autoencoder (He et al., 2021, [arXiv:2111.06377](https://arxiv.org/abs/2111.06377))
cuts an image into patches, hides most of them (75% here), and asks a Vision Transformer
to paint the hidden ones back from the few it can still see. No labels are involved: the
image is its own target. What remains after training is an encoder that has learned what
images of this kind tend to look like, which the next guide (`probe_and_finetune`) turns
into a classifier.

In this guide you will:

1. look at the CIFAR-10 training images as the MAE sees them (random crops, flips);
2. train `mae_vit_tiny_patch4`, a 12-block ViT made for 32 px images;
3. watch the representation improve while it trains, with a kNN classifier on the
   encoder's features (no labels are used for training; they only score the features);
4. plot the loss, and compare the reconstructions of the same images, under the same
   masks, at several points of training.

The settings are those of the recipe's `cifar10_cpu` configuration, measured on a 2-core
CPU (figures below, marked as CPU figures); on a Colab GPU the same 20 epochs take
minutes (not timed).

## Setup

The first cell installs keras-mae (in a terminal: `pip install
git+https://github.com/keras-mae/keras-mae`) and picks the Keras backend. keras-mae runs
the same code on TensorFlow, JAX and PyTorch; the backend has to be chosen before Keras is
imported, so after changing it restart the runtime.
"""

# !pip install -q git+https://github.com/keras-mae/keras-mae

import os

backend = "jax"  # @param ["tensorflow", "jax", "torch"]
os.environ.setdefault("KERAS_BACKEND", backend)  # a KERAS_BACKEND set outside wins

"""
`KERAS_MAE_GUIDE_SMALL=1` turns every guide into a tiny run that finishes in seconds on a
CPU without network access (a smoke test); leave it unset to run the guide for real.
Figures are saved under `figures/` and shown inline.
"""

import tempfile

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_mae
from keras_mae import data, visualize

SMALL = os.environ.get("KERAS_MAE_GUIDE_SMALL") == "1"
FIGURES = tempfile.mkdtemp(prefix="figures_") if SMALL else "figures"
os.makedirs(FIGURES, exist_ok=True)
keras.utils.set_random_seed(0)
print("Keras", keras.__version__, "on", keras.backend.backend())


def show(figure, name):
    """Saves a figure under FIGURES and displays it (only saves in a small run)."""
    figure.savefig(os.path.join(FIGURES, name), dpi=110, bbox_inches="tight")
    if SMALL:
        plt.close(figure)
    else:
        plt.show()


"""
## The data

`keras_mae.data.load_source("tfds:cifar10")` reads CIFAR-10 through TensorFlow Datasets,
but never downloads: the dataset must be prepared first, which the cell below does once
(about 170 MB). The small run uses the 8x8 handwritten digits shipped with scikit-learn
instead, so that it needs no network.

`pretrain_dataset` applies the paper's pretraining augmentation (random resized crop with
20-100% of the area, horizontal flip) and normalises the pixels with the ImageNet mean and
standard deviation, which is what the model expects.
"""

if SMALL:
    DATASET, IMAGE_SIZE, BATCH_SIZE, EPOCHS = "digits", 32, 16, 2
else:
    import tensorflow_datasets as tfds

    tfds.builder("cifar10").download_and_prepare()
    DATASET = "tfds:cifar10"
    IMAGE_SIZE = 32
    BATCH_SIZE = 256
    EPOCHS = 20  # as the recipe's cifar10_cpu; the paper trains for 800-1600 epochs

source = data.load_source(DATASET, split="train")
print(f"{source.name}: {source.num_examples} images of {source.image_shape}")
steps_per_epoch = 3 if SMALL else source.num_examples // BATCH_SIZE
train = data.pretrain_dataset(source, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE,
                              repeat=True, seed=0)

batch = next(iter(train)).numpy()
figure, axes = plt.subplots(2, 8, figsize=(12, 3.2))
for image, axis in zip(visualize.denormalize(batch[:16]), axes.flat):
    axis.imshow(image)
    axis.axis("off")
figure.suptitle("Training images after random crop and flip")
show(figure, "training_images.png")

"""
## The model

`mae_vit_tiny_patch4` cuts a 32x32 image into 64 patches of 4x4 pixels. With a mask ratio
of 0.75 the encoder (192 wide, 12 blocks) only ever sees 16 of them; the decoder (128 wide,
4 blocks) receives the encoded visible patches plus a shared "mask token" at each hidden
position and predicts the pixels of all 64 patches. The loss is the mean squared error on
the hidden patches only.

We train with the paper's normalised-pixel target (`norm_pix_loss=True`): each hidden
patch is compared with its own pixels standardised by their mean and variance, which the
paper finds gives better features. The reconstructions below therefore borrow each hidden
patch's true mean and variance: they show predicted structure, not predicted colour.

The optimiser follows the paper: AdamW with betas (0.9, 0.95), weight decay 0.05, and a
learning rate of `base_lr * batch_size / 256` that warms up linearly and then follows a
half cosine. Biases and norms are not decayed, as in the official code; the class and mask
tokens are (`exclude_from_weight_decay_mae(..., "pretrain")`). `keras_mae.optimizers.AdamW` is
Keras' AdamW with PyTorch's update: epsilon 1e-8, added after the bias correction. The
base rate, 1.5e-3, is ten times the paper's 1.5e-4 because this run is short and its
batch small (the paper's 1.5e-4 at batch 4096 is a rate of 2.4e-3); warmup lasts 3 of
the 20 epochs.
"""

if SMALL:
    model = keras_mae.models.mae_vit_tiny_patch4(
        patch_size=8, hidden_dim=32, depth=1, num_heads=2,
        decoder_hidden_dim=32, decoder_depth=1, decoder_num_heads=2, seed=0)
else:
    model = keras_mae.models.mae_vit_tiny_patch4(norm_pix_loss=True, seed=0)
model.build()  # create the variables, so that the weight-decay exclusions below can see them

total_steps = EPOCHS * steps_per_epoch
peak_lr = keras_mae.optimizers.scaled_learning_rate(1.5e-3, BATCH_SIZE)
schedule = keras_mae.optimizers.WarmupCosineDecay(
    peak_lr, total_steps=total_steps, warmup_steps=max(1, 3 * total_steps // 20))
optimizer = keras_mae.optimizers.AdamW(schedule, beta_1=0.9, beta_2=0.95, weight_decay=0.05)
keras_mae.optimizers.exclude_from_weight_decay_mae(optimizer, model.trainable_variables, "pretrain")
model.compile(optimizer=optimizer)
print(f"{model.count_params():,} parameters, {model.num_patches} patches, "
      f"{model.num_visible} visible to the encoder")

"""
## Watching the reconstructions

`ReconstructionCallback` writes a grid of eight fixed images every few epochs: each row
shows the original, what the encoder is given (hidden patches in grey), the
reconstruction, and the reconstruction with the visible patches pasted back. The masks are
drawn from a fixed seed, so every grid poses the same puzzle. We write the first grid
before any training, when the model can only produce noise.
"""

eval_source = data.load_source(DATASET, split="test")
fixed_images = next(iter(data.pretrain_dataset(
    eval_source, IMAGE_SIZE, batch_size=8, augment=False, shuffle_buffer=0))).numpy()
grids = keras_mae.callbacks.ReconstructionCallback(
    fixed_images, os.path.join(FIGURES, "reconstructions"),
    every_n_epochs=max(1, EPOCHS // 4), seed=1)
grids.set_model(model)
grids.write(0)

"""
## Watching the features: a kNN monitor

A falling loss says the model paints better; it does not say the encoder's features are
becoming useful. `KNNMonitor` checks that directly every few epochs: it embeds labelled
reference images and query images with the encoder (all patches, no masking), averages
each image's patch tokens, and classifies every query by a weighted vote of its 20 most
similar references (cosine similarity, weights `exp(similarity / 0.07)`, as Wu et al. 2018
and DINO). The labels are used for this score only, never for training. The accuracy goes
into the training logs as `knn_top1` on the epochs it runs (`knn.history` lists them).
"""


reference = data.labeled_arrays(data.slice_source(source, 0, 200 if SMALL else 5000),
                                IMAGE_SIZE)
queries = data.labeled_arrays(data.slice_source(eval_source, 0, 100 if SMALL else 1000),
                              IMAGE_SIZE)
knn = keras_mae.callbacks.KNNMonitor(*reference, *queries,
                                     every_n_epochs=1 if SMALL else 4)
knn.set_model(model)
print(f"kNN top-1 before training: {knn.evaluate(0):.3f}")

# the pipeline shuffles; Keras' own `shuffle` does not apply to a `tf.data.Dataset`
history = model.fit(train, epochs=EPOCHS, steps_per_epoch=steps_per_epoch, shuffle=False,
                    callbacks=[knn, grids], verbose=2)

"""
The kNN curve. CPU figures: the recipe's run of these settings (`python recipes/pretrain.py
--config cifar10_cpu`, 40,000 CIFAR-10 training images, 80 minutes on a 2-core CPU; kNN on
5,000 reference and 1,000 held-out training images) measured 28.4% before training, then
36.0, 39.2, 41.1, 41.5 and 41.9% after epochs 4, 8, 12, 16 and 20. A linear probe of that
encoder reached 59.2% on 1,000 test images, against 44.7% for the same ViT untrained (see
the `probe_and_finetune` guide). This notebook's own curve uses the test split as queries.
"""

figure, axis = plt.subplots(figsize=(6, 3.5))
epochs, top1, _ = zip(*knn.history)
axis.plot(epochs, np.array(top1) * 100, marker="o")
axis.set_xlabel("epoch")
axis.set_ylabel("kNN top-1 (%)")
axis.set_title("Weighted kNN on the encoder's mean patch token")
axis.grid(alpha=0.3)
show(figure, "knn.png")

"""
## The loss

With normalised-pixel targets, a model that always predicted zeros would score about 1.
The loss drops fast in the first epochs, then slowly as the model learns edges and
shapes. In the recipe's CPU run of these settings it was 0.893 after the first epoch and
0.384 after the twentieth.
"""

figure, axis = plt.subplots(figsize=(6, 3.5))
axis.plot(np.arange(1, EPOCHS + 1), history.history["loss"], marker="o")
axis.set_xlabel("epoch")
axis.set_ylabel("masked-patch MSE")
axis.set_title("Pretraining loss")
axis.grid(alpha=0.3)
show(figure, "loss.png")

"""
## Reconstructions over training

The grids written during training, side by side. Early on the model fills hidden patches
with the average colour around them; later it continues edges and shapes across the gaps.
The reconstructions stay blurry: with three quarters of the image gone the model predicts
a plausible average, not the one true image, and the MSE loss rewards exactly that.
"""

paths = sorted(grids.written)
figure, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 6))
for path, axis in zip(paths, np.atleast_1d(axes)):
    axis.imshow(plt.imread(path))
    axis.set_title(f"epoch {int(path[-8:-4])}")
    axis.axis("off")
figure.suptitle("original | masked | reconstruction | reconstruction + visible")
show(figure, "reconstructions_over_training.png")

"""
## Save the encoder

Only the encoder is needed downstream. `probe_and_finetune` looks for this file and
pretrains a smaller model itself when it is absent.
"""

model.encoder.save(os.path.join(FIGURES if SMALL else ".", "cifar10_encoder.keras"))

"""
## Going further

- Train longer: the loss keeps falling for hundreds of epochs, and the paper finds linear
  probing accuracy still improving at 1600 epochs (paper, ImageNet).
- The command-line recipe in the repository, `python recipes/pretrain.py --config cifar10
  --output-dir runs/cifar10`, does the same with resumable checkpoints, TensorBoard logs
  and mixed precision.
- Try `norm_pix_loss=True`, or another `mask_ratio`: the paper finds 75% best for both
  fine-tuning and linear probing (paper, Figure 5).
"""
