"""Choosing a distribution strategy by name, on any Keras backend.

One entry point, `get_strategy(name)`, turns a name such as `"mirrored"` into
what the current backend needs: a `tf.distribute.Strategy` on TensorFlow, a
`keras.distribution.DataParallel` (installed globally) on JAX, nothing on
PyTorch. `scope(strategy)` is the context in which to create the model, the
optimizer and call `compile`; `is_chief()` tells the process that writes
files. TensorFlow and JAX are imported inside the functions only, so this
module imports on every backend.

| backend    | names                                                      |
|------------|------------------------------------------------------------|
| tensorflow | `default`, `mirrored`, `multi_worker`, `tpu`               |
| jax        | `default`, `data_parallel` (alias `mirrored`)              |
| torch      | `default` (single device)                                  |
"""

import contextlib
import itertools
import json
import os
import socket
import sys
import time

import keras

SUPPORTED = {
    "tensorflow": ("default", "mirrored", "multi_worker", "tpu"),
    "jax": ("default", "data_parallel", "mirrored"),
    "torch": ("default",),
}


def supported_strategies(backend=None):
    """The strategy names `get_strategy` accepts on a backend.

    Args:
        backend: `"tensorflow"`, `"jax"` or `"torch"`; the current Keras
            backend when None.

    Returns:
        A tuple of names.

    Example:
    ```python
    from keras_mae import distribute
    distribute.supported_strategies("torch")  # ("default",)
    ```
    """
    backend = backend or keras.backend.backend()
    return SUPPORTED.get(backend, ("default",))


def get_strategy(name="default", tpu_address=None):
    """Returns the distribution strategy called `name` on the current backend.

    TensorFlow: `"default"` is `tf.distribute.get_strategy()` (one device);
    `"mirrored"` a `MirroredStrategy` over all local GPUs, or over all logical
    CPU devices when there is no GPU; `"multi_worker"` a
    `MultiWorkerMirroredStrategy` configured from the `TF_CONFIG` environment
    variable (create it at the very start of the program); `"tpu"` a
    `TPUStrategy` on `tpu_address` (or the `TPU_NAME` variable; `"local"` on
    a TPU VM).

    JAX: `"default"` installs no distribution and returns None;
    `"data_parallel"` (or `"mirrored"`) builds a `keras.distribution.DataParallel`
    over all devices, sets it with `keras.distribution.set_distribution` and
    returns it. After `jax.distributed.initialize()` (or
    `keras.distribution.initialize()`) the devices of every process take part.

    PyTorch: only `"default"` (returns None); training runs on one device.

    Args:
        name: str, one of `supported_strategies()`.
        tpu_address: str or None, the TPU name or `grpc://` address, for
            `"tpu"` only.

    Returns:
        A `tf.distribute.Strategy` (TensorFlow), a
        `keras.distribution.Distribution` or None (JAX), None (PyTorch).

    Raises:
        ValueError: naming `name` and the supported names when the backend
            does not support it, or when its configuration is missing.

    Example:
    ```python
    from keras_mae import distribute
    strategy = distribute.get_strategy("mirrored")
    with distribute.scope(strategy):
        model = keras_mae.models.mae_vit_base_patch16()
        model.compile(optimizer="adamw")
    model.fit(global_batches)
    ```
    """
    backend = keras.backend.backend()
    supported = supported_strategies(backend)
    if not isinstance(name, str) or name not in supported:
        extra = ""
        if backend == "torch":
            extra = (" Multi-device training is not supported on the PyTorch backend yet; "
                     "use the TensorFlow or JAX backend for it.")
        raise ValueError(
            f"Unknown or unsupported strategy {name!r} on the {backend} backend. "
            f"Supported: {', '.join(supported)}.{extra}"
        )
    if tpu_address is not None and name != "tpu":
        raise ValueError(f"`tpu_address` is only used with strategy 'tpu'. Received: "
                         f"strategy={name!r}, tpu_address={tpu_address!r}")
    if backend == "tensorflow":
        return _tensorflow_strategy(name, tpu_address)
    if backend == "jax":
        return _jax_distribution(name)
    return None


def _tensorflow_strategy(name, tpu_address):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        cluster = _tf_config()
        if not cluster:
            raise ValueError(
                "strategy 'multi_worker' needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}). Received: TF_CONFIG unset')
        return tf.distribute.MultiWorkerMirroredStrategy()
    address = tpu_address or os.environ.get("TPU_NAME")
    if not address:
        raise ValueError("strategy 'tpu' needs a TPU address: pass tpu_address "
                         "(a TPU name, 'grpc://host:8470', or 'local' on a TPU VM) or set "
                         "TPU_NAME. Received: tpu_address=None")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    if address != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _jax_distribution(name):
    if name == "default":
        return None
    # each process builds its own share of the input (`input_dataset`)
    import jax

    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(),
        auto_shard_dataset=jax.process_count() == 1)
    keras.distribution.set_distribution(distribution)
    return distribution


def _tf_config():
    """The parsed `TF_CONFIG`, `{}` when unset; ValueError when not JSON."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}. Received: {text!r}") from error


def _tf_task(config):
    """`(type, index)` of this task in a parsed `TF_CONFIG`; `(None, 0)` when it names none."""
    task = config.get("task") or {}
    return task.get("type"), int(task.get("index", 0) or 0)


def scope(strategy=None):
    """The context in which to build and compile a model for `strategy`.

    Args:
        strategy: what `get_strategy` returned.

    Returns:
        `strategy.scope()` for a `tf.distribute.Strategy`; a null context
        otherwise (JAX distributions act through
        `keras.distribution.set_distribution`, PyTorch has none).

    Example:
    ```python
    with distribute.scope(strategy):
        model = build_model()
        model.compile(optimizer=optimizer)
    ```
    """
    if strategy is not None and hasattr(strategy, "scope") and hasattr(strategy, "run"):
        return strategy.scope()
    return contextlib.nullcontext()


def configure_model(model, strategy=None):
    """Adjusts a compiled model to `strategy`; call it after `compile`.

    Under a TensorFlow `MultiWorkerMirroredStrategy`, Keras 3 reduces the
    scalar logs of each step with `strategy.reduce("MEAN", logs, axis=0)`,
    which fails on scalars ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). This wraps the model's
    `train_step` and `test_step` so that they return each scalar log as a
    vector of one element; the reduction then averages the replicas' values.
    Keras sums metric variables over all replicas when it updates them, so
    every replica holds the global value and the average is exact. Other
    strategies and backends are left as they are.

    Args:
        model: a compiled `keras.Model`.
        strategy: what `get_strategy` returned.

    Returns:
        `model`.

    Example:
    ```python
    with distribute.scope(strategy):
        model.compile(optimizer="adamw")
    distribute.configure_model(model, strategy)
    ```
    """
    if keras.backend.backend() != "tensorflow" or strategy is None:
        return model
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        for name in ("train_step", "test_step"):
            setattr(model, name, _with_vector_logs(getattr(model, name)))
    return model


def _with_vector_logs(step):
    """`step` returning its scalar logs as `(1,)` tensors."""

    def as_vector(value):
        value = keras.ops.convert_to_tensor(value)
        return keras.ops.reshape(value, (1,)) if len(value.shape) == 0 else value

    def vector_logs_step(data):
        return keras.tree.map_structure(as_vector, step(data))

    return vector_logs_step


def input_dataset(strategy, build, global_batch_size):
    """The input of `model.fit` under `strategy`, each process reading only its share.

    `build(num_shards, shard_index)` must return a `tf.data.Dataset` of the
    shard's part of every global batch (`global_batch_size // num_shards`
    images), as `keras_mae.data.pretrain_dataset` does with those arguments.
    Under a multi-worker TensorFlow strategy each worker builds its own shard
    (`distribute_datasets_from_function`), and under a multi-process JAX
    distribution each process does; otherwise the one global pipeline is
    built, and the strategy splits its batches among local devices.

    Args:
        strategy: what `get_strategy` returned.
        build: function `(num_shards, shard_index) -> tf.data.Dataset`.
        global_batch_size: int, the global batch.

    Returns:
        A `tf.data.Dataset` or a `tf.distribute.DistributedDataset`.

    Example:
    ```python
    dataset = distribute.input_dataset(strategy, lambda n, i: data.pretrain_dataset(
        "photos", 224, 256, num_shards=n, shard_index=i), 256)
    model.fit(dataset, epochs=1)
    ```
    """
    backend = keras.backend.backend()
    if backend == "jax" and strategy is not None:
        import jax

        if jax.process_count() > 1:
            return build(jax.process_count(), jax.process_index())
    if backend == "tensorflow" and strategy is not None:
        import tensorflow as tf

        cluster = _tf_config().get("cluster") or {}
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and workers > 1:
            def per_worker(context):
                dataset = build(context.num_input_pipelines, context.input_pipeline_id)
                per_replica = context.get_per_replica_batch_size(global_batch_size)
                if per_replica * context.num_input_pipelines != global_batch_size:
                    dataset = dataset.rebatch(per_replica)  # several devices per worker
                return dataset

            return strategy.distribute_datasets_from_function(per_worker)
    return build(1, 0)


def num_replicas(strategy=None):
    """How many replicas share each global batch under `strategy`.

    Args:
        strategy: what `get_strategy` returned.

    Returns:
        int: `num_replicas_in_sync` on TensorFlow, the number of devices of a
        JAX distribution, 1 otherwise.

    Example:
    ```python
    per_replica_batch = global_batch // distribute.num_replicas(strategy)
    ```
    """
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return int(strategy.num_replicas_in_sync)
    mesh = getattr(strategy, "device_mesh", None)
    if mesh is not None:
        return int(len(mesh.devices.reshape(-1)))
    return 1


def is_chief():
    """Whether this process writes checkpoints, logs and exports.

    TensorFlow: True unless `TF_CONFIG` names this task as another than the
    chief (task `chief`, or `worker` 0 when the cluster has no chief). JAX:
    `jax.process_index() == 0`. PyTorch: True.

    Returns:
        bool.

    Example:
    ```python
    output_dir = args.output_dir if distribute.is_chief() else tempfile.mkdtemp()
    ```
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.process_index() == 0
    if backend == "tensorflow":
        config = _tf_config()
        task_type, index = _tf_task(config)
        if not task_type:
            return True
        if task_type == "chief":
            return True
        has_chief = bool((config.get("cluster") or {}).get("chief"))
        return task_type == "worker" and index == 0 and not has_chief
    return True


def barrier(strategy=None):
    """Waits until every worker of a TensorFlow multi-worker strategy gets here.

    Runs one all-reduce of the value 1 over all replicas. Before a worker
    exits, call `leave_together` instead: a barrier alone still lets one
    worker leave while another waits for its last answer. With other
    strategies, and on JAX and PyTorch, it returns at once.

    Args:
        strategy: what `get_strategy` returned.

    Returns:
        int: the number of replicas that reached the barrier (1 when there
        was nothing to wait for).

    Example:
    ```python
    distribute.barrier(strategy)  # every worker has finished its epoch
    ```
    """
    if keras.backend.backend() != "tensorflow" or strategy is None:
        return 1
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    ones = strategy.run(lambda: tf.constant(1, tf.int32))
    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy())


_LEAVE_KEY = "keras_mae/leave_together/{}"
_leave_calls = itertools.count(1)  # the same sequence on every worker


def leave_together(strategy=None, timeout=120.0):
    """The last collective call of a TensorFlow worker: returns once it may exit.

    A barrier is not enough before an exit. An all-reduce completes on one
    worker while its last answer to another is still on the way; a worker
    that exits then makes the other fail with "Collective ops is aborted by:
    Socket closed". So after `barrier`:

    - every worker but the chief waits until the chief says (through TF's
      coordination service, which the chief hosts) that it is through the
      barrier: from then on nobody waits for this worker's data, and it may
      leave;
    - the chief waits until every other worker's server port refuses
      connections, that is, until their processes are gone, and leaves last.

    With other strategies, a single worker, on JAX and on PyTorch, it returns
    at once.

    Args:
        strategy: what `get_strategy` returned.
        timeout: float, seconds the chief waits for the others, and the
            others for the chief. Past it the chief writes a warning naming
            the workers still there and returns; another worker raises.

    Returns:
        int: what `barrier` returned.

    Example:
    ```python
    _export(model, write_dir)
    distribute.leave_together(strategy)  # then return from main
    ```
    """
    arrived = barrier(strategy)
    peers = _other_workers()
    if arrived <= 1 or not peers:
        return arrived
    from tensorflow.python.eager import context  # the coordination service's key-value store

    key = _LEAVE_KEY.format(next(_leave_calls))
    if not is_chief():
        context.context().get_config_key_value(key, timeout_in_ms=int(timeout * 1000))
        return arrived
    context.context().set_config_key_value(key, "through")
    deadline = time.monotonic() + timeout
    remaining = [address for address in peers if not wait_until_closed(address, deadline)]
    if remaining:
        print(f"keras_mae.distribute.leave_together: after {timeout:g} s, workers still "
              f"running: {remaining}; the chief leaves anyway.", file=sys.stderr, flush=True)
    return arrived


def _other_workers():
    """The `host:port` of every chief and worker task in `TF_CONFIG` but this one."""
    config = _tf_config()
    me = _tf_task(config)
    cluster = config.get("cluster") or {}
    return [address for job in ("chief", "worker") for index, address in enumerate(cluster.get(job) or [])
            if (job, index) != me]


def wait_until_closed(address, deadline):
    """Polls `host:port` until it refuses connections; False if `deadline` (monotonic s) passes first.

    A refused or unreachable address counts as closed; a connection that is
    accepted, or times out, as still open.

    Example:
    ```python
    wait_until_closed("127.0.0.1:2222", time.monotonic() + 60)
    ```
    """
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                pass
        except socket.timeout:
            pass
        except OSError:  # refused, or no route to the host: nothing listens there
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
