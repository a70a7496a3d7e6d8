"""The recipes' epoch loop: one pipeline per epoch, checkpoints, resume, and a clean stop on SIGTERM.

`fit_epochs` trains a compiled model from a global step to the end, building
each epoch's data from `(epoch, step in epoch)`, saving a checkpoint every N
steps and at each epoch end (`keras_mae.checkpoint`). On SIGTERM (how
preemptible machines, TPU maintenance and batch schedulers stop a job) the
step in progress finishes, a checkpoint is written and `Preempted` is raised;
the same command then continues from that step. `history_logger`,
`tensorboard` and `after_progress_bar` keep the outputs in step with Keras'
progress bar: epochs numbered as it shows them ("Epoch 1/20" is epoch 1),
lines logged below its epoch line. The recipes import from here and never
from each other.
"""

import contextlib
import csv
import io
import os
import signal
import sys
import threading

# the exit status of a run stopped by SIGTERM after saving (128 + SIGTERM, as a shell reports it)
PREEMPTED_EXIT = 128 + signal.SIGTERM


class Preempted(Exception):
    """Raised after a SIGTERM stopped training and a checkpoint was written."""

    def __init__(self, step, total, folder):
        super().__init__(f"stopped by SIGTERM at step {step} of {total}; checkpoint {folder}; "
                         "run the same command to continue")
        self.step, self.total, self.folder = step, total, folder


@contextlib.contextmanager
def sigterm_flag():
    """Within the block, SIGTERM sets `flag["received"]` instead of ending the process."""
    flag = {"received": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["received"] = True
        print("SIGTERM received: finishing the step and writing a checkpoint", file=sys.stderr,
              flush=True)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_callback(flag, saver):
    """On the first step end after SIGTERM: a checkpoint of that step, and training stops."""
    import keras

    class StopOnSigterm(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if flag["received"]:
                saver.save()
                self.model.stop_training = True

    return StopOnSigterm()


def _epoch_gate(callbacks, saver):
    """`callbacks` as one, whose `on_epoch_end` runs only when the epoch ran to its end.

    Keras calls `on_epoch_end` also when training stops mid-epoch; a CSV row or
    an evaluation of a part of an epoch would then be written twice, once now
    and once when the resumed run completes the epoch. `saver` (the
    `StepCheckpoint` of the same `fit`) counts the steps.
    """
    import keras

    class EpochGate(keras.callbacks.CallbackList):
        def on_epoch_end(self, epoch, logs=None):
            if saver.global_step == (epoch + 1) * saver.steps_per_epoch:
                super().on_epoch_end(epoch, logs)

    return EpochGate(callbacks)


def fit_epochs(model, epoch_dataset, *, epochs, steps_per_epoch, start_step, checkpoint_dir,
               every_steps, callbacks=(), verbose=2):
    """Trains `model` from global step `start_step` to `epochs * steps_per_epoch`.

    Args:
        model: a compiled model, restored to `start_step` already.
        epoch_dataset: function `(epoch, step_in_epoch) -> dataset` of the
            remaining batches of that epoch.
        epochs, steps_per_epoch: ints.
        start_step: int, the global step to start at.
        checkpoint_dir: where checkpoints go (`keras_mae.checkpoint`).
        every_steps: int, a checkpoint every this many steps (and at each
            epoch end).
        callbacks: Keras callbacks; their `on_epoch_end` runs before that
            epoch's checkpoint is written (an evaluation logged there is on
            disk before the run can resume past it).
        verbose: Keras' `verbose` of `fit`.

    Raises:
        Preempted: after SIGTERM, once the checkpoint is written.
    """
    import keras

    from keras_mae import checkpoint

    total = epochs * steps_per_epoch
    with sigterm_flag() as flag:
        while start_step < total:
            epoch, step_in_epoch = divmod(start_step, steps_per_epoch)
            saver = checkpoint.StepCheckpoint(checkpoint_dir, every_steps, start_step,
                                              steps_per_epoch)
            stop_after_epoch = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: setattr(model, "stop_training", True))
            model.fit(epoch_dataset(epoch, step_in_epoch), initial_epoch=epoch, epochs=epochs,
                      steps_per_epoch=steps_per_epoch - step_in_epoch, shuffle=False,
                      callbacks=[_epoch_gate(list(callbacks), saver), saver,
                                 _stop_callback(flag, saver), stop_after_epoch],
                      verbose=verbose)
            if flag["received"]:  # also when it came during an epoch's end
                raise Preempted(saver.global_step, total, saver.save())
            start_step = (epoch + 1) * steps_per_epoch


def write_history_row(path, epoch, values):
    """Puts the row of `epoch` into the CSV file `path` (a run's `history.csv`), through a rename.

    Epochs are numbered as Keras' progress bar shows them: "Epoch 1/20" is
    row 1, and row 0 holds what is measured before training. The columns are
    `epoch` and every name any row has, sorted; a cell is empty where its row
    has no value (a kNN accuracy on the epochs it does not run). A row of the
    same epoch is replaced (an epoch finished again after a resume).

    Args:
        path: the CSV file; created when missing.
        epoch: int, the row's epoch (0: before training).
        values: dict name -> number.
    """
    from keras_mae import files

    rows = {}
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                number = int(row.pop("epoch"))
                rows[number] = {k: v for k, v in row.items() if v not in ("", None)}
    rows[epoch] = {name: _cell(value) for name, value in values.items()}
    text = io.StringIO()
    writer = csv.DictWriter(text, ["epoch", *sorted({k for row in rows.values() for k in row})],
                            lineterminator="\n")
    writer.writeheader()
    for number in sorted(rows):
        writer.writerow({"epoch": number, **rows[number]})
    files.write_text(path, text.getvalue())


def _cell(value):
    try:
        return str(float(value))
    except (TypeError, ValueError):
        return str(value)


def history_logger(path):
    """A callback writing each epoch's logs as its row of `path` (`write_history_row`)."""
    import keras

    class HistoryLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            write_history_row(path, epoch + 1, logs or {})

    return HistoryLogger()


def tensorboard(log_dir):
    """Keras' `TensorBoard` callback with epochs numbered from 1, as the progress bar and `history.csv`."""
    import keras

    class TensorBoard(keras.callbacks.TensorBoard):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch + 1, logs)

    return TensorBoard(log_dir)


def after_progress_bar(log):
    """A callback that logs the lines it is called with once Keras' progress bar has ended its line.

    A line logged while an epoch ends (an evaluation) would land inside the
    progress bar on a terminal, or before the epoch's summary line in a log
    file. Called with a line, the callback holds it until the next epoch
    begins or training ends, then passes it to `log`.
    """
    import keras

    class AfterProgressBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def __call__(self, line):
            self.lines.append(line)

        def flush(self):
            while self.lines:
                log(self.lines.pop(0))

        def on_epoch_begin(self, epoch, logs=None):
            self.flush()

        def on_train_end(self, logs=None):
            self.flush()

    return AfterProgressBar()
