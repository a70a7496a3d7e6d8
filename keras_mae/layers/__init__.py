"""Keras layers of the Masked Autoencoder, one public layer per file."""

from keras_mae.layers.attention import MultiHeadSelfAttention
from keras_mae.layers.drop_path import DropPath
from keras_mae.layers.patch_embedding import PatchEmbedding
from keras_mae.layers.position_embedding import SinCosPositionEmbedding
from keras_mae.layers.random_masking import RandomMasking
from keras_mae.layers.token_dense import TokenDense
from keras_mae.layers.transformer_block import TransformerBlock
