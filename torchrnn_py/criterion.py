"""The loss value torch-rnn prints: its CrossEntropyCriterion's float arithmetic.

The gradients come from :meth:`LanguageModel.loss` (torchrnn_py/model.py); the printed
losses and histories of train and eval come from :func:`torch7_loss_value`.
"""
import numpy as np
import torch

from . import distributed
from .ids import to_index


def torch7_loss_value(scores, targets, context=None):
    """The loss value torch-rnn prints: its CrossEntropyCriterion's float arithmetic.

    THNN's LogSoftMax works in double per row; ClassNLLCriterion then sums the N*T
    negative log-probabilities one by one in float32 and divides by N*T. The running
    float32 sum moves the printed value by ~1e-6 against an exact mean, so the printed
    losses and histories are computed this way (the gradients do not depend on it).
    With a distributed ``context`` the rows of every process are gathered first, so the
    value is the whole batch's, computed as one process would.
    """
    return PendingLoss(scores, targets, context).value()


class PendingLoss:
    """:func:`torch7_loss_value` in two halves: made, it queues the log-probabilities'
    copy to the host; :meth:`value` waits for that copy alone and sums. On a GPU the next
    step can be launched in between, so the host never waits for a whole step."""

    def __init__(self, scores, targets, context=None):
        with torch.no_grad():
            logp = (scores.detach().double().log_softmax(-1)
                    .gather(2, to_index(targets).unsqueeze(2)).float())  # (N, T, 1)
            if context is not None:
                logp = distributed.gather_rows(context, logp)
            self._ready = None
            if logp.device.type == "cuda":
                host = torch.empty(logp.shape, dtype=logp.dtype, pin_memory=True)
                host.copy_(logp, non_blocking=True)
                self._ready = torch.cuda.Event()
                self._ready.record(torch.cuda.current_stream(logp.device))  # the copy's
                logp = host
            self._logp = logp                                              # on the host

    def value(self):
        """The loss as a float (waits for the copy on a GPU)."""
        if self._ready is not None:
            self._ready.synchronize()
        logp = self._logp.numpy().reshape(-1)                            # (N*T,)
        total = np.cumsum(-logp, dtype=np.float32)[-1]
        return float(total / np.float32(logp.shape[0]))
