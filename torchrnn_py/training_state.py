"""The state of one training run: what a checkpoint's resume state saves and puts back.

Model, Adam, the data cursors, Torch7's generator and the on-device dropout generator,
the learning rate, the histories, the iteration and the seconds trained; ``state_dict`` is
the :class:`~torchrnn_py.checkpoint.ResumeState` written (torchrnn_py/checkpoint/
resume_state.py), ``load_state_dict`` continues from one.
"""
import dataclasses
import time
from typing import Optional

from . import checkpoint as ckpt


@dataclasses.dataclass
class TrainingState:
    """Everything a run changes as it trains; histories are its list attributes, named as
    in the checkpoint (``ckpt.HISTORY_KEYS``)."""
    model: object
    optimizer: object
    loader: object
    generator: object                  # Torch7's: initial weights, seeded dropout masks
    native: Optional[object]           # PyTorch's dropout generator (unseeded GPU), or None
    learning_rate: float
    i: int = 0                         # the last iteration trained
    elapsed: float = 0.0               # seconds trained before this process started
    started: float = 0.0               # time.perf_counter() at which the run's clock was 0
    train_loss_history: list = dataclasses.field(default_factory=list)
    val_loss_history: list = dataclasses.field(default_factory=list)
    val_loss_history_it: list = dataclasses.field(default_factory=list)
    forward_backward_times: list = dataclasses.field(default_factory=list)
    memory_usage: list = dataclasses.field(default_factory=list)

    def histories(self):
        """The histories as the checkpoint's fields (in ``ckpt.HISTORY_KEYS`` order)."""
        return {key: getattr(self, key) for key in ckpt.HISTORY_KEYS}

    def load_histories(self, histories):
        for key in ckpt.HISTORY_KEYS:
            setattr(self, key, histories[key])

    def start_clock(self):
        """The run's clock continues from the seconds trained before."""
        self.started = time.perf_counter() - self.elapsed

    def seconds(self):
        return time.perf_counter() - self.started

    def set_learning_rate(self, learning_rate):
        self.learning_rate = learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

    def state_dict(self, native_states, layer_states):
        """The resume state now; ``native_states``: every process's dropout generator
        state (or None), ``layer_states``: every layer's full (all processes') state."""
        return ckpt.ResumeState.capture(self.model, self.optimizer, self.loader,
                                        self.learning_rate, self.generator, native_states,
                                        layer_states, self.seconds())

    def load_state_dict(self, resume, source, rows, context, device, warn):
        """Continue from ``resume`` (read from ``source``): Adam, data cursors, generators,
        learning rate, this process's rows of the recurrent states and the seconds."""
        restored = resume.restore(source, self.model, self.optimizer, self.loader,
                                  self.generator)
        self.set_learning_rate(restored.learning_rate)
        self.model.set_states(None if state is None else tuple(
            t[rows].to(device) if rows is not None else t.to(device) for t in state)
            for state in restored.layer_states)
        restore_native(self.native, restored.native_states, context, self.model.dropout > 0,
                       warn)
        self.elapsed = restored.elapsed


def restore_native(native, natives, context, dropout, warn):
    """Continue the on-device dropout masks of an unseeded GPU run, or say in one line why
    they restart (saved on the CPU, by another number of processes, or not needed now)."""
    saved = natives[context.rank] if len(natives) == context.world_size else None
    if native is not None and saved is not None:
        try:
            native.set_state(saved)
            return
        except RuntimeError:      # saved on another kind of device
            pass
    if dropout and (native is not None or any(n is not None for n in natives)):
        warn("the dropout masks restart from a new seed: this unseeded run was saved on "
             "another kind of device or by another number of processes (use -seed for "
             "runs that move)")
