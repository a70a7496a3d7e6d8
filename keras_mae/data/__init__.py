"""Data loading and augmentation for MAE pretraining and evaluation.

`load_source` turns a name, path, array or dataset into a `Source`;
`pretrain_dataset` and `labeled_dataset` build batched, augmented `tf.data`
pipelines from it; `augment` holds the per-image transforms. `finetune_dataset`
is the fine-tuning pipeline, from `randaugment`, `erasing` and `mixing`.
"""

from keras_mae.data.augment import (IMAGENET_MEAN, IMAGENET_STD, center_crop_resize,
                                    normalize, random_flip_left_right,
                                    random_resized_crop, sample_crop_box)
from keras_mae.data.erasing import random_erasing
from keras_mae.data.finetune_pipeline import finetune_dataset
from keras_mae.data.image_files import decode_file, scan_images
from keras_mae.data.mixing import mixup_cutmix, one_hot_smoothed
from keras_mae.data.pipeline import labeled_arrays, labeled_dataset, pretrain_dataset
from keras_mae.data.randaugment import rand_augment
from keras_mae.data.sources import Source, from_arrays, load_source, slice_source, subset_source

__all__ = [
    "finetune_dataset",
    "mixup_cutmix",
    "one_hot_smoothed",
    "rand_augment",
    "random_erasing",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Source",
    "center_crop_resize",
    "decode_file",
    "from_arrays",
    "labeled_arrays",
    "labeled_dataset",
    "load_source",
    "normalize",
    "pretrain_dataset",
    "random_flip_left_right",
    "random_resized_crop",
    "sample_crop_box",
    "scan_images",
    "slice_source",
    "subset_source",
]
