"""Named pretraining configurations. Each docstring gives the command, time and result.

A config is a `PretrainConfig`; every field is also a command-line flag of
`recipes/pretrain.py` (`--base-lr 1e-4`, `--model-overrides '{"depth": 6}'`).
"""

import dataclasses
import json


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run depends on.

    `batch_size` is the global batch per optimizer micro-step; with
    `accum_steps` > 1 the effective batch is `batch_size * accum_steps`, and
    the learning rate is `base_lr * effective_batch / 256` (the paper's rule).

    `knn_every_epochs` N > 0 runs `keras_mae.callbacks.KNNMonitor` every N
    epochs (and once before training) when the dataset has labels: weighted
    kNN top-1 of the encoder's mean patch token, the first `knn_reference`
    training images as the reference, the last `knn_queries` as queries (or
    the first `knn_queries` of `knn_dataset` when given); 0 turns it off.

    `init_preset`, a preset folder of a whole MAE (`keras_mae.presets`, e.g.
    another run's `preset/`), starts from its weights and architecture instead
    of `model` / `model_overrides`; `mask_ratio`, `norm_pix_loss` and `seed`
    are this config's.
    """

    model: str = "mae_vit_tiny_patch4"
    model_overrides: dict = dataclasses.field(default_factory=dict)
    init_preset: str = ""
    dataset: str = "digits"
    split: str = "train"
    eval_split: str = "test"
    data_dir: str = None
    image_size: int = 32
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    epochs: int = 20
    batch_size: int = 64
    accum_steps: int = 1
    base_lr: float = 1.5e-4
    min_lr: float = 0.0
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    beta_1: float = 0.9
    beta_2: float = 0.95
    mixed_precision: bool = False
    jit_compile: str = "auto"
    checkpoint_every_steps: int = 200
    reconstruction_every_epochs: int = 5
    seed: int = 0
    shuffle_buffer: int = 10000
    skip_bad_images: bool = False
    knn_every_epochs: int = 5
    knn_reference: int = 5000
    knn_queries: int = 1000
    knn_dataset: str = ""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def digits():
    """The embedded default: scikit-learn's 8x8 digits (1,500 train images) at 32 px.

    Command: `KERAS_BACKEND=tensorflow .venv/bin/python recipes/pretrain.py --config digits
    --output-dir runs/digits`
    Time: 3 min 51 s in all (218 s of training, 690 steps) measured on a
    2-core CPU that other jobs shared (load ~4), TensorFlow backend with XLA.
    Result: norm_pix masked-patch loss 1.66 in epoch 1, 0.49 in epoch 30
    (predicting zeros scores 1.0); its linear probe and fine-tuning against
    the untrained encoder: the `digits` configs of `recipes/classify_configs.py`.
    """
    return PretrainConfig(
        model="mae_vit_tiny_patch4",
        model_overrides=dict(hidden_dim=128, depth=4, num_heads=4,
                             decoder_hidden_dim=64, decoder_depth=2, decoder_num_heads=4),
        dataset="digits", image_size=32, epochs=30, batch_size=64, base_lr=1.5e-3,
        warmup_epochs=3, checkpoint_every_steps=100, reconstruction_every_epochs=5,
    )


def cifar10():
    """CIFAR-10 at 32 px with the tiny ViT (patch 4, 192 wide, 12 blocks), 200 epochs: GPU-sized.

    Command: `.venv/bin/python recipes/pretrain.py --config cifar10 --dataset tfds:cifar10
    --output-dir runs/cifar10` (or `--dataset ../shared/data/cifar10_train_0.npz,...`).
    Time: not measured on a GPU. The same model on a 2-core CPU (TensorFlow,
    XLA) trained 40,000 images in 213-254 s an epoch in the `cifar10_cpu`
    run, so these 200 epochs of 50,000 images would take about 14 hours there.
    Result: not measured; the 20-epoch `cifar10_cpu` run is the measured one.
    """
    return PretrainConfig(
        model="mae_vit_tiny_patch4", dataset="tfds:cifar10", image_size=32,
        epochs=200, batch_size=256, base_lr=1.5e-4, warmup_epochs=10,
        checkpoint_every_steps=500, reconstruction_every_epochs=10,
    )


def cifar10_cpu():
    """CIFAR-10 on a 2-core CPU in under 90 minutes: the tiny ViT (patch 4, 192 wide, 12 blocks), 20 epochs.

    Command: `.venv/bin/python recipes/pretrain.py --config cifar10_cpu --dataset
    ../shared/data/cifar10_train_0.npz,../shared/data/cifar10_train_1.npz
    --output-dir runs/cifar10_cpu` (40,000 images, 156 steps of 256 per epoch,
    3,120 steps; default TensorFlow backend with XLA).
    Time: 80 min 13 s in all (4,780 s of training: 208-255 s an epoch, the
    kNN monitor's 6 evaluations 26-47 s each) on a 2-core Intel Xeon
    (AVX-512, AMX), part of it shared with a test run at low priority.
    Result: norm_pix masked-patch loss 0.893 after epoch 1, 0.384 after
    epoch 20. kNN top-1 (5,000 reference and 1,000 held-out training images,
    mean patch token) 28.4% before training, then 36.0 / 39.2 / 41.1 / 41.5 /
    41.9% after epochs 4 / 8 / 12 / 16 / 20. Linear probe
    (`recipes/linear_probe.py --config cifar10 --encoder RUN/encoder.keras
    --dataset` the same two files `--eval-dataset cifar10_test_1k.npz`):
    59.2% top-1 on the 1,000 test images, against 44.7% for the same
    architecture untrained (`--encoder random --encoder-config RUN/config.json`).
    Settings chosen for the budget: the paper's mask ratio 0.75, norm_pix
    loss, AdamW (0.9, 0.95), weight decay 0.05; base lr 1.5e-3 (10x the
    paper's, for a short run at batch 256; the paper's 1.5e-4 at batch 4096
    is a rate of 2.4e-3), 3 warmup epochs, the library's 128-wide 4-block
    decoder. Not compared with other sizes or rates within this budget.
    """
    return PretrainConfig(
        model="mae_vit_tiny_patch4", dataset="tfds:cifar10", image_size=32,
        epochs=20, batch_size=256, base_lr=1.5e-3, warmup_epochs=3,
        checkpoint_every_steps=200, reconstruction_every_epochs=4, knn_every_epochs=4,
    )


def tiny_imagenet():
    """Tiny-ImageNet-sized (64 px, 200 classes) with the small ViT (patch 8, 384 wide).

    Command: `.venv/bin/python recipes/pretrain.py --config tiny_imagenet --dataset DIR/train
    --output-dir runs/tiny_imagenet` (a folder per class).
    Time: GPU-sized; not measured yet.
    Result: not measured yet.
    """
    return PretrainConfig(
        model="mae_vit_small_patch8", dataset="tiny_imagenet", image_size=64,
        epochs=200, batch_size=256, base_lr=1.5e-4, warmup_epochs=10,
        checkpoint_every_steps=1000, reconstruction_every_epochs=10,
    )


def _paper(model, epochs=800):
    return PretrainConfig(
        model=model, dataset="tfds:imagenet2012", image_size=224, epochs=epochs,
        batch_size=4096, base_lr=1.5e-4, warmup_epochs=40, weight_decay=0.05,
        checkpoint_every_steps=1000, reconstruction_every_epochs=20,
    )


def paper_vit_base():
    """The paper's ViT-B/16: 800 epochs (1600 with `--epochs 1600`), batch 4096, blr 1.5e-4.

    Command: `.venv/bin/python recipes/pretrain.py --config paper_vit_base --data-dir DIR
    --output-dir runs/vit_base` (ImageNet-1k prepared for tfds in DIR).
    Time: GPU/TPU-sized; not run here.
    Result (paper): 83.6% fine-tuned top-1 (1600 epochs), 68.0% linear probe.
    """
    return _paper("mae_vit_base_patch16")


def paper_vit_large():
    """The paper's ViT-L/16, 800 epochs, batch 4096. Paper: 85.9% fine-tuned (1600 ep)."""
    return _paper("mae_vit_large_patch16")


def paper_vit_huge():
    """The paper's ViT-H/14, 800 epochs, batch 4096. Paper: 86.9% fine-tuned (1600 ep)."""
    return _paper("mae_vit_huge_patch14")


CONFIGS = {
    "digits": digits,
    "cifar10": cifar10,
    "cifar10_cpu": cifar10_cpu,
    "tiny_imagenet": tiny_imagenet,
    "paper_vit_base": paper_vit_base,
    "paper_vit_large": paper_vit_large,
    "paper_vit_huge": paper_vit_huge,
}


def get_config(name):
    """Returns the named `PretrainConfig`, or raises naming the known ones."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown pretraining config {name!r}. Known: {sorted(CONFIGS)}")
    return CONFIGS[name]()
