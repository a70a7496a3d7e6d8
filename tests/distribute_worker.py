"""Multi-device checks run in a fresh process: `python tests/distribute_worker.py MODE [ARGS]`.

Device layouts (logical CPUs for TensorFlow, host devices for JAX) can only be
set before the framework starts, so tests/test_distribute.py runs each check
here in its own process. Every mode prints one line `RESULT {json}` at the end.

Modes:
    tf_mirrored           on 2 logical CPUs with MirroredStrategy: one SGD step on 2
                          replicas vs on one device, then RandomMasking's masks and
                          DropPath's paths per replica against one device's on the
                          global batch (and the masks without the per-replica slices).
    jax_step              one SGD step with DataParallel on 2 host devices vs one device.
    pretrain_crash N ARGS recipes/pretrain.py ARGS, the process dying right after
                          global step N (no clean-up, as a kill).
    shard_batches         under MultiWorkerMirroredStrategy (TF_CONFIG): one epoch of
                          `distribute.input_dataset` over 48 records labelled with their
                          index (global batch 8); reports this worker's labels per step.
    jax_process_batches   one of 2 JAX processes (JAX_COORDINATOR, JAX_PROCESS_ID): as
                          shard_batches, under `data_parallel` after
                          `jax.distributed.initialize`, then one `fit` step on those
                          batches; reports the labels per step and the loss.
    recipe RECIPE ARGS    on 2 devices (logical CPUs for TensorFlow, host devices for JAX):
                          recipes/RECIPE.py ARGS (with or without --strategy); reports
                          its exit status.
    leave_order           under MultiWorkerMirroredStrategy (TF_CONFIG): `leave_together`,
                          then the other worker takes 2 s more to exit; reports when
                          the chief returned and when the other one exited.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TINY = dict(image_size=32, patch_size=8, hidden_dim=32, depth=1, num_heads=2,
            decoder_hidden_dim=16, decoder_depth=1, decoder_num_heads=2,
            norm_pix_loss=True, seed=0)


def report(**values):
    print("RESULT " + json.dumps(values), flush=True)


def two_logical_cpus():
    """Splits the CPU into two logical devices; must run before any TensorFlow op."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


def fixed_noise_model(**overrides):
    """A tiny MAE whose `call` takes the masking noise from a `{"images", "noise"}` batch."""
    import keras_mae

    class FixedNoiseMAE(keras_mae.MaskedAutoencoder):
        def call(self, inputs, noise=None, training=None):
            if isinstance(inputs, dict) and noise is None:
                noise = inputs.get("noise")
            return super().call(inputs, noise=noise, training=training)

    model = keras_mae.models.from_arguments(FixedNoiseMAE, **{**TINY, **overrides})
    return model


def batch(size=8):
    import numpy as np

    rng = np.random.RandomState(0)
    return {"images": rng.rand(size, 32, 32, 3).astype("float32"),
            "noise": rng.rand(size, 16).astype("float32")}


def sgd_step(model, weights, data):
    """Sets `weights`, does one SGD step on the whole of `data` as one batch; returns new weights."""
    import keras

    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    history = model.fit(data, batch_size=len(data["images"]), epochs=1, shuffle=False, verbose=0)
    return [keras.ops.convert_to_numpy(v) for v in model.weights], history.history["loss"][0]


def compare(reference, weights, before):
    import numpy as np

    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, weights))
    update = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, before))
    return diff, update


def tf_masks():
    import numpy as np
    import tensorflow as tf

    from keras_mae import distribute
    from keras_mae.layers import DropPath, RandomMasking, replica_random

    strategy = distribute.get_strategy("mirrored")
    with distribute.scope(strategy):
        masking, drop = RandomMasking(0.75, seed=0), DropPath(0.5, seed=0)
    tokens = tf.constant(np.ones((2, 16, 4), "float32"))  # identical samples on each replica
    ones = tf.constant(np.ones((8, 3), "float32"))

    def draw_twice(fn):
        step = tf.function(lambda: strategy.run(fn))
        return [[v.numpy().tolist() for v in strategy.experimental_local_results(step())]
                for _ in range(2)]

    masks = draw_twice(lambda: masking(tokens)[1])
    paths = draw_twice(lambda: drop(ones, training=True))
    # one device on the global batch (both replicas' samples), from the same seeds
    single_masking, single_drop = RandomMasking(0.75, seed=0), DropPath(0.5, seed=0)
    single_masks = [single_masking(np.ones((4, 16, 4), "float32"))[1].numpy().tolist() for _ in range(2)]
    single_paths = [single_drop(np.ones((16, 3), "float32"), training=True).numpy().tolist()
                    for _ in range(2)]
    # every replica on the one-replica path, to show what the slices prevent
    replica_random.tf_replicas = lambda: None
    with distribute.scope(strategy):
        plain = RandomMasking(0.75, seed=0)
    unsliced = draw_twice(lambda: plain(tokens)[1])
    return dict(replicas=strategy.num_replicas_in_sync, masks=masks, single_masks=single_masks,
                paths=paths, single_paths=single_paths, unsliced_masks=unsliced)


def tf_step():
    from keras_mae import distribute

    data = batch()
    single = fixed_noise_model()
    before = [w.numpy() for w in single.weights]
    reference, loss_single = sgd_step(single, before, data)
    strategy = distribute.get_strategy("mirrored")
    with distribute.scope(strategy):
        mirrored = fixed_noise_model()
        weights, loss_mirrored = sgd_step(mirrored, before, data)
    diff, update = compare(reference, weights, before)
    return dict(replicas=strategy.num_replicas_in_sync, max_diff=diff, max_update=update,
                loss_single=loss_single, loss_mirrored=loss_mirrored)


def tf_mirrored():
    two_logical_cpus()
    step = tf_step()
    report(**{**step, **tf_masks()})  # masks last: it disables the slices for its second draw


def jax_step():
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=2").strip()
    import keras

    from keras_mae import distribute

    data = batch()
    single = fixed_noise_model()
    before = [keras.ops.convert_to_numpy(w) for w in single.weights]
    reference, loss_single = sgd_step(single, before, data)
    distribution = distribute.get_strategy("data_parallel")
    parallel = fixed_noise_model()
    weights, loss_parallel = sgd_step(parallel, before, data)
    kernel = parallel.encoder.weights[0].value
    diff, update = compare(reference, weights, before)
    report(replicas=distribute.num_replicas(distribution), max_diff=diff, max_update=update,
           loss_single=loss_single, loss_mirrored=loss_parallel,
           weight_devices=len(kernel.sharding.device_set))


def pretrain_crash(step, argv):
    from keras_mae import checkpoint, distribute
    from recipes import pretrain

    original = checkpoint.StepCheckpoint.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        if self.global_step >= step:
            # both workers die after the same step, neither while the other still
            # waits on it (that one would fail with "Socket closed" instead)
            distribute.leave_together(self.model.distribute_strategy)
            print(f"CRASH at step {self.global_step}", flush=True)
            os._exit(3)

    checkpoint.StepCheckpoint.on_train_batch_end = on_train_batch_end
    return pretrain.main(argv)


def leave_order():
    import time

    from keras_mae import distribute

    strategy = distribute.get_strategy("multi_worker")
    distribute.leave_together(strategy)
    if distribute.is_chief():
        report(chief=True, returned_at=time.time())
    else:
        time.sleep(2.0)  # a slow exit, which the chief has to outwait
        report(chief=False, exiting_at=time.time())
    return 0


def shard_batches():
    import numpy as np

    from keras_mae import data, distribute

    strategy = distribute.get_strategy("multi_worker")
    records = (np.zeros((48, 4, 4, 1), np.uint8), np.arange(48))
    dataset = distribute.input_dataset(strategy, lambda num_shards, shard_index: data.labeled_dataset(
        records, 4, 8, training=True, seed=3, epoch=1, num_shards=num_shards,
        shard_index=shard_index, reshuffle_each_iteration=False), 8)
    steps = [[int(v) for part in strategy.experimental_local_results(labels) for v in part.numpy()]
             for _, labels in dataset]
    report(chief=distribute.is_chief(), steps=steps)
    distribute.leave_together(strategy)
    return 0


def jax_process_batches():
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR"],
                               num_processes=2, process_id=int(os.environ["JAX_PROCESS_ID"]))
    import keras
    import numpy as np

    from keras_mae import data, distribute

    strategy = distribute.get_strategy("data_parallel")
    rng = np.random.RandomState(0)
    records = ((rng.rand(48, 32, 32, 3) * 255).astype(np.uint8), np.arange(48))

    def build(num_shards, shard_index):
        return data.labeled_dataset(records, 32, 8, training=True, seed=3, epoch=1,
                                    num_shards=num_shards, shard_index=shard_index,
                                    reshuffle_each_iteration=False)

    steps = [[int(v) for v in labels.numpy()]
             for _, labels in distribute.input_dataset(strategy, build, 8)]
    keras.utils.set_random_seed(0)
    model = fixed_noise_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    images = distribute.input_dataset(strategy, lambda n, i: build(n, i).map(
        lambda x, y: {"images": x, "noise": tf_noise(x)}), 8)
    history = model.fit(images, epochs=1, steps_per_epoch=2, verbose=0)
    report(process=jax.process_index(), steps=steps, loss=float(history.history["loss"][-1]),
           auto_shard=strategy.auto_shard_dataset)
    return 0


def tf_noise(images):
    """Masking noise read off each image (16 pixels of its first channel): the same image gets
    the same mask however the global batch is split."""
    import tensorflow as tf

    return tf.reshape(images[:, ::8, ::8, 0], [-1, 16])


def recipe(name, argv):
    import importlib

    if os.environ.get("KERAS_BACKEND") == "jax":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_force_host_platform_device_count=2").strip()
    else:
        two_logical_cpus()
    code = importlib.import_module(f"recipes.{name}").main(argv)
    report(code=code)
    return code


def main(argv):
    mode = argv[0]
    if mode == "recipe":
        return recipe(argv[1], argv[2:])
    if mode == "pretrain_crash":
        return pretrain_crash(int(argv[1]), argv[2:])
    {"tf_mirrored": tf_mirrored, "jax_step": jax_step, "leave_order": leave_order,
     "shard_batches": shard_batches, "jax_process_batches": jax_process_batches}[mode]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
