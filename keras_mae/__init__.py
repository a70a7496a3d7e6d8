"""keras_mae: Masked Autoencoders (He et al., 2021) for Keras 3.

Runs unchanged on the TensorFlow, JAX and PyTorch backends. `keras_mae.data`
(tf.data pipelines) and `keras_mae.convert` (PyTorch checkpoints) are imported
on demand: `from keras_mae import data`.
"""

from keras_mae import callbacks
from keras_mae import config
from keras_mae import distribute
from keras_mae import knn
from keras_mae import layers
from keras_mae import losses
from keras_mae import models
from keras_mae import ops
from keras_mae import optimizers
from keras_mae import presets
from keras_mae import visualize
from keras_mae.models import MaskedAutoencoder

__version__ = "0.1.0"
