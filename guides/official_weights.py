"""
Title: Reconstructing your own images with the official MAE weights
Author: keras-mae contributors
Date created: 2026/11/29
Last modified: 2026/11/29
Description: Load the published MAE checkpoints (PyTorch or Hugging Face) into Keras and redraw the paper's reconstruction figure at mask ratios 0.75, 0.85 and 0.95.
Accelerator: GPU
"""

"""
## Introduction

The MAE authors published their weights in PyTorch format, and Hugging Face hosts
converted copies. `keras_mae.convert` reads both into a Keras `MaskedAutoencoder`, which
then runs unchanged on TensorFlow, JAX or PyTorch.

The paper's best-known figure shows ImageNet validation images with 75% of their patches
removed, next to what the model paints back. This guide redraws it on images of your
choice, and then pushes the mask ratio to 85% and 95%, where the model sees one patch in
twenty.

Two sources of weights:

- `"official"`: `mae_visualize_vit_large.pth` (ViT-Large, 1.3 GB) from the official
  repository. The authors trained this checkpoint with plain pixel targets specially for
  visualisation, so its reconstructions show predicted colours as they are.
- `"huggingface"`: `facebook/vit-mae-base` (ViT-Base) through `transformers`.

## Setup

Reading the checkpoints needs `torch` (and `transformers` for the Hugging Face weights);
Colab has both. We import torch before Keras: importing TensorFlow first and a CUDA build
of torch second can crash the process.
"""

# !pip install -q git+https://github.com/keras-mae/keras-mae

import os

backend = "jax"  # @param ["tensorflow", "jax", "torch"]
os.environ.setdefault("KERAS_BACKEND", backend)  # a KERAS_BACKEND set outside wins

import torch  # noqa: F401  (before Keras, see above)

"""
`KERAS_MAE_GUIDE_SMALL=1` replaces the download by a tiny randomly initialised Hugging
Face model and your images by a synthetic one, so that the guide runs in seconds on a CPU
without network access. The reconstructions of that run are noise, of course.
"""

import tempfile

import keras
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from keras_mae import convert, visualize

SMALL = os.environ.get("KERAS_MAE_GUIDE_SMALL") == "1"
FIGURES = tempfile.mkdtemp(prefix="figures_") if SMALL else "figures"
os.makedirs(FIGURES, exist_ok=True)


def show(figure, name):
    """Saves a figure under FIGURES and displays it (only saves in a small run)."""
    figure.savefig(os.path.join(FIGURES, name), dpi=110, bbox_inches="tight")
    if SMALL:
        plt.close(figure)
    else:
        plt.show()


"""
## Load the weights

`keras.utils.get_file` downloads the official file once and caches it under
`~/.keras/`. `convert.from_official_checkpoint` reads the architecture from the tensor
shapes (ViT-L/16 at 224 px, decoder 512 wide with 8 blocks) and returns a built
`MaskedAutoencoder`. `convert.from_transformers` does the same from a `transformers`
model, taking heads, LayerNorm epsilon and the loss target from its config.
"""

WEIGHTS = "official"  # @param ["official", "huggingface"]
OFFICIAL_URL = "https://dl.fbaipublicfiles.com/mae/visualize/mae_visualize_vit_large.pth"

hf_model = None
if SMALL:
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    hf_model = ViTMAEForPreTraining(ViTMAEConfig(
        image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=128, decoder_hidden_size=32,
        decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=128)).eval()
    model = convert.from_transformers(hf_model)
elif WEIGHTS == "official":
    path = keras.utils.get_file("mae_visualize_vit_large.pth", OFFICIAL_URL)
    model = convert.from_official_checkpoint(path)
else:
    from transformers import ViTMAEForPreTraining

    hf_model = ViTMAEForPreTraining.from_pretrained("facebook/vit-mae-base").eval()
    model = convert.from_transformers(hf_model)

print(f"{model.count_params():,} parameters; {model.encoder.image_size} px, "
      f"patch {model.encoder.patch_size}, {model.num_patches} patches; "
      f"norm_pix_loss={model.norm_pix_loss}")

"""
## Your images

Put the paths of your own images in `IMAGE_PATHS` (in Colab, upload them with the Files
panel on the left). Left empty, the guide uses the two photographs that ship with
scikit-learn. Each image is resized so that its shorter side matches the model, centre
cropped to a square, scaled to [0, 1] and normalised with the ImageNet mean and standard
deviation, as during pretraining.
"""

IMAGE_PATHS = []  # e.g. ["my_dog.jpg", "street.png"]


def synthetic_image(size=256, seed=0):
    """A colourful test card: a gradient background with a few discs and bars."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([x, y, 1 - x * y], axis=-1)
    for _ in range(4):
        cy, cx, radius = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.08, 0.2)]
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius ** 2] = rng.uniform(0, 1, 3)
    image[::32, :] = 0.0
    return Image.fromarray(np.uint8(image * 255))


def load_pictures():
    if SMALL:
        return [synthetic_image()]
    if IMAGE_PATHS:
        return [Image.open(path).convert("RGB") for path in IMAGE_PATHS]
    from sklearn.datasets import load_sample_image

    return [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def prepare(picture, size):
    """PIL image -> (size, size, 3) float32, normalised as the model expects."""
    scale = size / min(picture.size)
    width, height = round(picture.width * scale), round(picture.height * scale)
    picture = picture.resize((width, height), Image.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    picture = picture.crop((left, top, left + size, top + size))
    pixels = np.asarray(picture, np.float32) / 255.0
    return (pixels - visualize.IMAGENET_MEAN) / visualize.IMAGENET_STD


size = model.encoder.image_size[0]
images = np.stack([prepare(picture, size) for picture in load_pictures()]).astype("float32")
print("images:", images.shape)

"""
## A check of the conversion

When a `transformers` model is at hand, we can feed both models the same image and the
same masking noise: the predicted patches must agree up to float32 round-off. (The
Hugging Face model takes channels first.)
"""

noise = np.random.RandomState(0).rand(len(images), model.num_patches).astype("float32")
if hf_model is not None:
    with torch.no_grad():
        hf_pred = hf_model(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)),
                           noise=torch.from_numpy(noise)).logits.numpy()
    keras_pred = keras.ops.convert_to_numpy(model(images, noise=noise)["pred"])
    print(f"largest difference from transformers: {np.abs(hf_pred - keras_pred).max():.2e}")

"""
## The paper's figure, at three mask ratios

The model was trained with a fixed mask ratio, but nothing in the architecture depends on
it: the encoder processes however many patches it is given, and the decoder puts mask
tokens everywhere else. A call (and `reconstruction_panels`) takes `mask_ratio=` for that
call only; the model's own ratio, used in training, stays 0.75.

We reuse one noise array for all ratios. Patches are kept in order of increasing noise, so
the patches visible at 95% are also visible at 85% and 75%: each column hides strictly
more of the same picture.

`visualize.reconstruction_panels` returns, per image, the original, the masked input, the
raw reconstruction and the reconstruction with the visible patches pasted back, as the
official demo shows them.
"""

RATIOS = (0.75, 0.85, 0.95)
panels = {}
for ratio in RATIOS:
    panels[ratio] = visualize.reconstruction_panels(model, images, noise=noise, mask_ratio=ratio)

columns = [("original", panels[RATIOS[0]][:, 0])]
for ratio in RATIOS:
    columns.append((f"masked {ratio:.0%}", panels[ratio][:, 1]))
    columns.append((f"reconstruction {ratio:.0%}", panels[ratio][:, 3]))

figure, axes = plt.subplots(len(images), len(columns),
                            figsize=(2.4 * len(columns), 2.6 * len(images)), squeeze=False)
for row in range(len(images)):
    for axis, (title, pictures) in zip(axes[row], columns):
        axis.imshow(pictures[row])
        axis.set_title(title, fontsize=9)
        axis.axis("off")
show(figure, "mask_ratios.png")

"""
At 75% the reconstructions are close to the originals in layout and colour, blurry in
fine texture. At 95% the model still places large objects and the horizon plausibly,
which is the paper's point: the task cannot be solved by copying neighbouring pixels, so
the encoder has to learn what scenes look like (paper, Figure 4 shows the same trend on
ImageNet).

`reconstruction_grid` packs the same four panels into one PNG, handy for logging:
"""

grid = visualize.reconstruction_grid(model, images, noise=noise,
                                     path=os.path.join(FIGURES, "grid_075.png"))
figure, axis = plt.subplots(figsize=(10, 2.8 * len(images)))
axis.imshow(grid)
axis.set_title("original | masked | reconstruction | reconstruction + visible (75%)")
axis.axis("off")
show(figure, "grid_075.png")

"""
## Share it through KerasHub

KerasHub is where Keras users find vision backbones (`from_preset`, uploads to Kaggle and
Hugging Face, task models such as `ViTImageClassifier`). `convert.save_keras_hub_preset`
writes the MAE encoder as a KerasHub `ViTBackbone` preset, together with an image
converter that applies the ImageNet normalisation, so the KerasHub classifier takes raw
0-255 pixels and needs nothing of keras-mae to load. The backbone computes what the
encoder computes: the fused query/key/value projection is split into KerasHub's
attention layers, the sin-cos position table becomes its (learned) position embedding.
`convert.from_keras_hub` goes back.
"""

import keras_hub

from keras_mae import presets

SHARE = tempfile.mkdtemp(prefix="presets_")
HUB_PRESET = os.path.join(SHARE, "mae_vit_keras_hub")
convert.save_keras_hub_preset(model.encoder, HUB_PRESET)
classifier = keras_hub.models.ViTImageClassifier.from_preset(HUB_PRESET, num_classes=2)
difference = np.abs(keras.ops.convert_to_numpy(classifier.backbone(images))
                    - keras.ops.convert_to_numpy(model.encoder(images))).max()
print(f"KerasHub backbone vs keras-mae encoder: max |diff| {difference:.2e}")
print("preset files:", sorted(os.listdir(HUB_PRESET)))

"""
It trains as any KerasHub classifier does; one step on our images, with made-up labels:
"""

pixels = np.clip(np.round((images * visualize.IMAGENET_STD + visualize.IMAGENET_MEAN) * 255),
                 0, 255).astype("float32")
classifier.compile(optimizer=keras.optimizers.AdamW(1e-5),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = classifier.fit(pixels, np.arange(len(pixels)) % 2, batch_size=len(pixels),
                         epochs=1, verbose=0)
print("loss after one step:", round(history.history["loss"][-1], 4))

"""
The whole MAE, decoder included, goes into a preset folder of the same layout
(`config.json`, `model.weights.h5`, `metadata.json`) with `keras_mae.presets`, for those
who want to continue pretraining (`recipes/pretrain.py --init-preset FOLDER`) or redo
this figure.
"""

MAE_PRESET = presets.save_to_preset(model, os.path.join(SHARE, "mae_full"))
same = presets.from_preset(MAE_PRESET)
same_pred = keras.ops.convert_to_numpy(same(images, noise=noise)["pred"])
print("MAE preset reloads exactly:",
      bool(np.array_equal(same_pred, keras.ops.convert_to_numpy(model(images, noise=noise)["pred"]))))

"""
Both folders upload with KerasHub's own tool, which checks the folder first
(`config.json`, `model.weights.h5`), then needs your Kaggle or Hugging Face credentials:

```python
keras_hub.upload_preset("kaggle://USER/mae-vit/keras/visualize-vit-large", HUB_PRESET)
keras_hub.upload_preset("hf://USER/mae-vit-large-keras", HUB_PRESET)
```

The path end to end: the official `.pth` -> `convert.from_official_checkpoint` ->
`convert.save_keras_hub_preset` -> `keras_hub.upload_preset` -> anyone's
`keras_hub.models.ViTImageClassifier.from_preset("kaggle://USER/...", num_classes=...)`.

## Going further

- For classification, the encoder alone matters: `convert.from_official_checkpoint(
  "mae_pretrain_vit_base.pth")` returns a `ViTEncoder` (the `mae_pretrain_*` files hold
  no decoder), ready for the `probe_and_finetune` guide's `ViTClassifier(encoder, num_classes)`.
- `convert.to_official_state_dict(model)` goes the other way, to the official key layout,
  for models you train with keras-mae.
- Another image size works too: `from_official_checkpoint(path, image_size=320)` resizes
  the position tables bicubically.
"""
