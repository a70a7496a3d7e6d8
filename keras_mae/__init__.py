"""keras_mae: Masked Autoencoders (He et al., 2021) for Keras 3.

Runs unchanged on the TensorFlow, JAX and PyTorch backends.
"""

from keras_mae import layers
from keras_mae import losses
from keras_mae import models
from keras_mae import ops
from keras_mae.models import MaskedAutoencoder

__version__ = "0.1.0"
