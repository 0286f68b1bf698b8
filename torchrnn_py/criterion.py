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
    with torch.no_grad():
        logp = (scores.detach().double().log_softmax(-1)
                .gather(2, to_index(targets).unsqueeze(2)).float())      # (N, T, 1)
        if context is not None:
            logp = distributed.gather_rows(context, logp)
        logp = logp.cpu().numpy().reshape(-1)
    total = np.cumsum(-logp, dtype=np.float32)[-1]
    return float(total / np.float32(logp.shape[0]))
