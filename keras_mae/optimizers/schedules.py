"""Learning-rate schedules used by the MAE training recipes.

References:
    - He et al., "Masked Autoencoders Are Scalable Vision Learners",
      CVPR 2022 (arXiv:2111.06377).
    - The official MAE reference implementation (facebookresearch/mae),
      `util/lr_sched.py` (`adjust_learning_rate`).
"""

import math
import numbers

import keras
from keras import ops


def _check_number(name, value, allow_zero=True):
    """Raises a `ValueError` unless `value` is a finite non-negative number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"`{name}` must be finite and {bound}. Received: {name}={value!r}"
        )


def scaled_learning_rate(base_lr, global_batch_size):
    """Applies the linear learning-rate scaling rule of the MAE paper.

    The paper specifies a *base* learning rate for a batch of 256 samples;
    the actual rate is `base_lr * global_batch_size / 256`.

    Args:
        base_lr: Float, the base learning rate (e.g. `1.5e-4` for MAE
            pre-training, `5e-4` for fine-tuning, `0.1` for linear probing).
        global_batch_size: Int, the total batch size summed over all devices
            and gradient-accumulation steps.

    Returns:
        Float, the scaled learning rate.

    Example:

    ```python
    from keras_mae.optimizers import scaled_learning_rate
    scaled_learning_rate(1.5e-4, 4096)  # 0.0024
    ```

    References:
        He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021,
        Appendix A.1 ("lr = base_lr x batchsize / 256").
    """
    _check_number("base_lr", base_lr)
    if (
        isinstance(global_batch_size, bool)
        or not isinstance(global_batch_size, numbers.Integral)
        or global_batch_size <= 0
    ):
        raise ValueError(
            "`global_batch_size` must be a positive integer. "
            f"Received: global_batch_size={global_batch_size!r}"
        )
    return float(base_lr) * int(global_batch_size) / 256.0


@keras.saving.register_keras_serializable(package="keras_mae")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup followed by a half-cycle cosine decay.

    The values equal Keras' `CosineDecay(0.0, total_steps - warmup_steps,
    alpha=min_lr / peak_lr, warmup_target=peak_lr, warmup_steps=warmup_steps)`
    (tested to 1e-6 of the peak). This class is kept for what Keras' lacks.
    Keras' branches between warmup and decay with `ops.cond`, and ours
    selects with `ops.where`:

    - on PyTorch, Keras' branch is data-dependent control flow: under
      `torch.compile` it breaks the optimizer update into many graphs, a
      slower update, and `fullgraph=True` refuses it (`tests/test_optimizers.py`);
    - on JAX, `ops.cond` takes scalar steps only, so a whole schedule cannot
      be evaluated (plotted) in one call; ours takes an array of steps;
    - it takes the MAE arguments (absolute `min_lr`), and returns `min_lr`
      from `total_steps` on, also when `warmup_steps == total_steps`.

    For an optimizer step `step` (0-based, as passed by Keras optimizers):

    - `step < warmup_steps`: `lr = peak_lr * step / warmup_steps`
      (so the very first update uses a learning rate of 0);
    - otherwise: `lr = min_lr + (peak_lr - min_lr) * 0.5 *
      (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps)))`;
    - `step >= total_steps`: `lr = min_lr`.

    With `warmup_steps = warmup_epochs * steps_per_epoch` and
    `total_steps = epochs * steps_per_epoch` this equals the official MAE
    `adjust_learning_rate`, which is called before every iteration with the
    fractional epoch `epoch + iteration / steps_per_epoch`.

    Args:
        peak_lr: Float, the learning rate reached at the end of warmup
            (usually from `scaled_learning_rate`).
        total_steps: Int, total number of optimizer steps of the run.
        warmup_steps: Int, number of linear warmup steps,
            `0 <= warmup_steps <= total_steps`.
        min_lr: Float, the final learning rate, `0 <= min_lr <= peak_lr`.
            Defaults to `0.0`.
        accumulation_steps: Int >= 1, the optimizer's
            `gradient_accumulation_steps` (1: none). Keras evaluates the
            schedule at every batch and applies the rate of the last batch of
            each group of k; the official engine sets the rate at the first
            (`data_iter_step % accum_iter == 0`). With k > 1 step `s` gets the
            rate of `s - s % k`, so update `u` uses the official rate of batch
            `u * k`. `total_steps` and `warmup_steps` count batches.

    Returns:
        Called with a step, returns a float32 tensor of the step's shape
        (a scalar step gives a scalar).

    Example:

    ```python
    import keras
    from keras_mae.optimizers import WarmupCosineDecay
    schedule = WarmupCosineDecay(peak_lr=1e-3, total_steps=100,
                                 warmup_steps=10)
    round(float(schedule(5)), 6)  # 0.0005
    round(float(schedule(10)), 6)  # 0.001
    float(schedule(100))  # 0.0
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    ```

    References:
        - He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021.
        - Official MAE implementation (facebookresearch/mae),
          `util/lr_sched.py`.
    """

    def __init__(self, peak_lr, total_steps, warmup_steps, min_lr=0.0, accumulation_steps=1):
        _check_number("peak_lr", peak_lr)
        _check_number("min_lr", min_lr)
        _check_number("total_steps", total_steps, allow_zero=False)
        _check_number("warmup_steps", warmup_steps)
        if warmup_steps > total_steps:
            raise ValueError(
                "`warmup_steps` must not exceed `total_steps`. Received: "
                f"warmup_steps={warmup_steps!r}, total_steps={total_steps!r}"
            )
        if min_lr > peak_lr:
            raise ValueError(
                "`min_lr` must not exceed `peak_lr`. Received: "
                f"min_lr={min_lr!r}, peak_lr={peak_lr!r}"
            )
        if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, int) \
                or accumulation_steps < 1:
            raise ValueError("`accumulation_steps` must be an int >= 1. Received: "
                             f"accumulation_steps={accumulation_steps!r}")
        self.peak_lr = peak_lr
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.min_lr = min_lr
        self.accumulation_steps = accumulation_steps

    def __call__(self, step):
        if self.accumulation_steps > 1:
            step = ops.subtract(step, ops.mod(step, self.accumulation_steps))
        step = ops.cast(step, "float32")
        peak_lr = float(self.peak_lr)
        min_lr = float(self.min_lr)
        warmup = float(self.warmup_steps)
        # Both denominators are guarded; the guarded branches are never
        # selected when the true denominator is zero.
        warmup_lr = peak_lr * step / max(warmup, 1.0)
        decay_steps = max(float(self.total_steps) - warmup, 1.0)
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        cosine_lr = min_lr + (peak_lr - min_lr) * 0.5 * (
            1.0 + ops.cos(math.pi * progress)
        )
        lr = ops.where(step < warmup, warmup_lr, cosine_lr)
        # Explicit clamp, also covering `warmup_steps == total_steps`.
        return ops.where(step >= float(self.total_steps), min_lr, lr)

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_lr": self.min_lr,
            "accumulation_steps": self.accumulation_steps,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
