"""Weight conversion from and to the official PyTorch MAE and Hugging Face ViT-MAE.

- `from_official_checkpoint`: official `.pth` (or `.safetensors`, or a state
  dict) -> `MaskedAutoencoder` / `ViTEncoder`.
- `to_official_state_dict`: Keras model -> official key layout.
- `load_official_state_dict`: official state dict -> an existing Keras model.
- `from_transformers`: `ViTMAEForPreTraining` / `ViTMAEModel` (or a local
  `save_pretrained` directory) -> `MaskedAutoencoder` / `ViTEncoder`.
- `to_keras_hub` / `from_keras_hub`: `ViTEncoder` <-> KerasHub `ViTBackbone`;
  `save_keras_hub_preset`: a KerasHub preset with the ImageNet normalisation.
- `interpolate_pos_embed`: bicubic resizing of a position table to a new grid.

torch, transformers and keras_hub are imported only when a function needs them.
"""

from keras_mae.convert.hf import from_transformers
from keras_mae.convert.hf import hf_to_official_state_dict
from keras_mae.convert.keras_hub import from_keras_hub
from keras_mae.convert.keras_hub import save_keras_hub_preset
from keras_mae.convert.keras_hub import to_keras_hub
from keras_mae.convert.official import from_official_checkpoint
from keras_mae.convert.official import load_official_state_dict
from keras_mae.convert.official import to_official_state_dict
from keras_mae.convert.official import weight_table
from keras_mae.ops import interpolate_pos_embed
