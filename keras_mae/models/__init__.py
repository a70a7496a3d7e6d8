"""Models: the ViT encoder, the MAE decoder, the Masked Autoencoder and configs."""

from keras_mae.models.classifier import ViTClassifier
from keras_mae.models.configs import CONFIGS
from keras_mae.models.configs import build
from keras_mae.models.configs import from_arguments
from keras_mae.models.configs import split_arguments
from keras_mae.models.configs import mae_vit_base_patch16
from keras_mae.models.configs import mae_vit_huge_patch14
from keras_mae.models.configs import mae_vit_large_patch16
from keras_mae.models.configs import mae_vit_small_patch8
from keras_mae.models.configs import mae_vit_tiny_patch4
from keras_mae.models.mae_decoder import MAEDecoder
from keras_mae.models.masked_autoencoder import MaskedAutoencoder
from keras_mae.models.task import Task
from keras_mae.models.vit_encoder import ViTEncoder
