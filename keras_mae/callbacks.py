"""Keras callbacks for Masked Autoencoder training."""

import os
import time

import keras
import numpy as np

from keras_mae import knn, visualize


class ReconstructionCallback(keras.callbacks.Callback):
    """Writes a reconstruction grid PNG every `every_n_epochs` epochs.

    The same images and the same masks (fixed noise from `seed`) are used at
    every epoch, so successive files show the model improving on one task.

    Args:
        images: `(N, H, W, C)` float images as the model takes them.
        output_dir: folder for `epoch_{epoch:04d}.png` files.
        every_n_epochs: int >= 1.
        seed: int, for the fixed masking noise.
        mean: the images' normalisation mean (see `visualize.reconstruction_grid`).
        std: the images' normalisation std (see `visualize.reconstruction_grid`).

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
        """Writes the grid for `epoch` (1-based; 0 is before training) and returns its path.

        The PNG's caption says which epoch it shows (`visualize.reconstruction_grid`).
        """
        noise = np.random.RandomState(self.seed).rand(
            len(self.images), self.model.num_patches).astype(np.float32)
        path = os.path.join(self.output_dir, f"epoch_{epoch:04d}.png")
        caption = "before training" if epoch == 0 else f"after epoch {epoch}"
        visualize.reconstruction_grid(self.model, self.images, noise=noise, path=path,
                                      mean=self.mean, std=self.std, caption=caption)
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


class KNNMonitor(keras.callbacks.Callback):
    """Weighted kNN top-1 of the encoder's features every `every_n_epochs` epochs, into the logs.

    The encoder (`model.encoder`, or the model itself when it has no
    `encoder`) embeds all patches of the reference and query images in
    inference mode; each query's label is predicted by `keras_mae.knn`
    (cosine similarity, `k` neighbours weighted by `exp(similarity /
    temperature)`) and the accuracy is written as `logs[name]`, so
    `CSVLogger`, `TensorBoard` and `History` record it (place this callback
    before those that read the logs). Epochs without an evaluation leave
    `logs[name]` unset, as Keras leaves `val_` metrics unset on the epochs
    `validation_freq` skips: `History` then lists only the evaluated epochs'
    values (`history` says which epochs they are), and Keras' `CSVLogger`,
    which fixes its columns at the first epoch, writes the column only when
    the first epoch is evaluated.

    Args:
        reference_images: `(N, H, W, C)` float images as the model takes them.
        reference_labels: `(N,)` int labels.
        query_images: `(M, H, W, C)` float images.
        query_labels: `(M,)` int labels.
        every_n_epochs: int >= 1.
        k: neighbours of the kNN (default 20).
        temperature: temperature of the kNN weights (default 0.07).
        pooling: `"avg"` (mean of the normalised patch tokens) or `"cls"`.
        batch_size: images per forward pass.
        num_classes: defaults to `max(label) + 1`.
        name: the logs key. Defaults to `"knn_top1"`.

    Attributes:
        history: list of `(epoch, top1, seconds)`; epoch 0 is `evaluate()`
            called before training.

    Example:
    ```python
    monitor = KNNMonitor(x_ref, y_ref, x_query, y_query, every_n_epochs=2)
    model.fit(dataset, epochs=10, callbacks=[monitor])
    monitor.history   # [(2, 0.31, 4.2), (4, 0.36, 4.1), ...]
    ```
    """

    def __init__(self, reference_images, reference_labels, query_images, query_labels,
                 every_n_epochs=1, k=20, temperature=0.07, pooling="avg", batch_size=256,
                 num_classes=None, name="knn_top1"):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be an int >= 1. Received: {every_n_epochs!r}")
        if pooling not in ("avg", "cls"):
            raise ValueError(f"`pooling` must be 'avg' or 'cls'. Received: {pooling!r}")
        for which, images, labels in (("reference", reference_images, reference_labels),
                                      ("query", query_images, query_labels)):
            if len(images) == 0 or len(images) != len(labels):
                raise ValueError(f"{which} images and labels must be non-empty and of equal "
                                 f"length. Received: {len(images)} images, {len(labels)} labels")
        self.reference_images = np.asarray(reference_images, np.float32)
        self.reference_labels = np.asarray(reference_labels).astype(np.int64)
        self.query_images = np.asarray(query_images, np.float32)
        self.query_labels = np.asarray(query_labels).astype(np.int64)
        self.every_n_epochs = every_n_epochs
        self.k, self.temperature, self.pooling = k, temperature, pooling
        self.batch_size = batch_size
        self.num_classes = num_classes or int(max(self.reference_labels.max(),
                                                  self.query_labels.max()) + 1)
        self.name = name
        self.history = []
        self._extractor = None

    def _encoder(self):
        return getattr(self.model, "encoder", None) or self.model

    def features(self, images):
        """`(N, H, W, C)` -> `(N, D)` pooled features of the current encoder (numpy)."""
        if self._extractor is None:
            self._extractor = _PooledFeatures(self._encoder(), self.pooling, name="knn_features")
        return self._extractor.predict(images, batch_size=self.batch_size, verbose=0)

    def evaluate(self, epoch=0):
        """Computes the kNN top-1 now, appends `(epoch, top1, seconds)` to `history`, returns top-1."""
        started = time.time()
        top1 = knn.knn_accuracy(self.features(self.reference_images), self.reference_labels,
                                self.features(self.query_images), self.query_labels,
                                self.num_classes, self.k, self.temperature)
        self.history.append((epoch, top1, round(time.time() - started, 2)))
        return top1

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        value = self.evaluate(epoch + 1)
        if logs is not None:
            logs[self.name] = value


class _PooledFeatures(keras.Model):
    """`(B, H, W, C)` -> `(B, D)`: an encoder's class token or mean patch token, inference mode."""

    def __init__(self, encoder, pooling, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.pooling = pooling

    def call(self, images):
        tokens = self.encoder(images, training=False)
        if self.pooling == "cls":
            return tokens[:, 0]
        return keras.ops.mean(tokens[:, 1:], axis=1)
