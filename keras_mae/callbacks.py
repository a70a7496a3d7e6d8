"""Keras callbacks for Masked Autoencoder training."""

import os

import keras
import numpy as np

from keras_mae import visualize


class ReconstructionCallback(keras.callbacks.Callback):
    """Writes a reconstruction grid PNG every `every_n_epochs` epochs.

    The same images and the same masks (fixed noise from `seed`) are used at
    every epoch, so successive files show the model improving on one task.

    Args:
        images: `(N, H, W, C)` float images as the model takes them.
        output_dir: folder for `epoch_{epoch:04d}.png` files.
        every_n_epochs: int >= 1.
        seed: int, for the fixed masking noise.
        mean, std: the images' normalisation (see `visualize.reconstruction_grid`).

    Example:
    ```python
    callback = ReconstructionCallback(images[:8], "runs/demo/reconstructions")
    model.fit(dataset, epochs=10, callbacks=[callback])
    ```
    """

    def __init__(self, images, output_dir, every_n_epochs=1, seed=0,
                 mean=visualize.IMAGENET_MEAN, std=visualize.IMAGENET_STD):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be an int >= 1. Received: {every_n_epochs!r}")
        self.images = np.asarray(images, np.float32)
        self.output_dir = output_dir
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.mean, self.std = mean, std
        self.written = []

    def write(self, epoch):
        """Writes the grid for `epoch` (1-based in the file name) and returns its path."""
        noise = np.random.RandomState(self.seed).rand(
            len(self.images), self.model.num_patches).astype(np.float32)
        path = os.path.join(self.output_dir, f"epoch_{epoch:04d}.png")
        visualize.reconstruction_grid(self.model, self.images, noise=noise, path=path,
                                      mean=self.mean, std=self.std)
        self.written.append(path)
        return path

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self.write(epoch + 1)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `FloatingPointError` naming the step as soon as the loss is NaN or Inf.

    Place it before checkpoint callbacks: the step that produced the bad loss
    is then never saved, and the last good checkpoint stays the newest.

    Args:
        start_step: the global step the current `fit` starts from.
    """

    def __init__(self, start_step=0):
        super().__init__()
        self.global_step = start_step

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.model.stop_training = True
            raise FloatingPointError(
                f"Loss became {float(loss)} at step {self.global_step} "
                f"(epoch batch {batch}); training stopped, the last saved checkpoint is kept."
            )
