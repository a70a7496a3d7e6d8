"""Fine-tuning augmentations, under the names this module has always offered.

The fine-tuning recipe of the MAE paper (Appendix A.2, Table 9; official
`main_finetune.py` with timm's transforms): RandomResizedCrop + flip,
RandAugment (9, 0.5), normalisation, random erasing (p 0.25), then mixup
(0.8) / cutmix (1.0) on label-smoothed (0.1) targets. Each job has its module:

* :mod:`keras_mae.data.randaugment`: :func:`rand_augment`, its operations by
  name (:data:`RAND_AUGMENT_OPS`, :func:`apply_op`);
* :mod:`keras_mae.data.erasing`: :func:`random_erasing`;
* :mod:`keras_mae.data.mixing`: :func:`one_hot_smoothed`, :func:`cutmix_box`,
  :func:`mixup_cutmix`;
* :mod:`keras_mae.data.finetune_pipeline`: :func:`finetune_dataset`, the
  ``tf.data`` chain of all of them.

This module re-exports them, so ``from keras_mae.data import mix;
mix.finetune_dataset(...)`` keeps working.

Example:
    >>> from keras_mae.data import mix
    >>> mix.rand_augment(tf.fill([8, 8, 3], 100.0), tf.constant([1, 2])).shape
    TensorShape([8, 8, 3])
"""

from keras_mae.data.erasing import random_erasing
from keras_mae.data.finetune_pipeline import finetune_dataset
from keras_mae.data.mixing import cutmix_box, mixup_cutmix, one_hot_smoothed
from keras_mae.data.randaugment import RAND_AUGMENT_OPS, apply_op, rand_augment

__all__ = [
    "RAND_AUGMENT_OPS",
    "apply_op",
    "cutmix_box",
    "finetune_dataset",
    "mixup_cutmix",
    "one_hot_smoothed",
    "rand_augment",
    "random_erasing",
]
