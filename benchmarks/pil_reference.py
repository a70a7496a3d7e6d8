"""The official loader's per-image work, in PIL and numpy: the reference for the JPEG benchmark.

The official pretraining (`main_pretrain.py`) builds torchvision's
`RandomResizedCrop(224, scale=(0.2, 1.0), interpolation=BICUBIC)`,
`RandomHorizontalFlip()`, `ToTensor()` and `Normalize(ImageNet mean/std)` over
`ImageFolder` (PIL `open` + `convert("RGB")`), run by a `DataLoader` whose
worker processes each build whole batches. This module repeats that work
without torchvision: the crop box as torchvision's `get_params` draws it
(checked against ours in `tests/test_augment_reference.py`), PIL's crop and
bicubic resize, and numpy for the rest.
"""

import math

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def torchvision_crop_box(height, width, rng, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """`(top, left, h, w)` as torchvision's `RandomResizedCrop.get_params`, from a numpy RandomState.

    Example:
    ```python
    torchvision_crop_box(375, 500, np.random.RandomState(0))
    ```
    """
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h + 1), rng.randint(0, width - w + 1), h, w
    if width / height < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif width / height > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def train_image(path, rng, size=224, scale=(0.2, 1.0)):
    """One image as the official pretraining loader makes it: float32 (size, size, 3), normalised.

    Example:
    ```python
    train_image("photo.jpg", np.random.RandomState(0)).shape   # (224, 224, 3)
    ```
    """
    with Image.open(path) as image:
        image = image.convert("RGB")
    top, left, h, w = torchvision_crop_box(image.height, image.width, rng, scale)
    image = image.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    if rng.rand() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return (np.asarray(image, np.float32) / 255.0 - MEAN) / STD


def train_batch(task):
    """A whole batch in one worker, as a DataLoader worker collates it: `(paths, seed)` -> (B, S, S, 3)."""
    paths, seed = task
    rng = np.random.RandomState(seed)
    return np.stack([train_image(path, rng) for path in paths])
