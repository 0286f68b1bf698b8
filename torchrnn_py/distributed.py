"""Data-parallel training on torch.distributed: who we are and the few collectives train needs.

``torchrun --nproc_per_node K -m torchrnn_py.train ...`` starts K processes with RANK,
WORLD_SIZE and LOCAL_RANK in their environment; :func:`setup` joins them into one process
group (NCCL between GPUs, gloo on CPUs). Each process trains on N/K of the N streams of every
minibatch; DistributedDataParallel averages the gradients, so every process keeps identical
weights and Adam state. Rank 0 prints, validates and writes checkpoints. Without those
variables everything here is a no-op for a single process.

The collectives that wait for rank 0 (while it validates or writes a checkpoint:
:func:`any_process`, :func:`gather_objects`, :func:`barrier`) go through a second, gloo
group whose timeout is :data:`WAIT_TIMEOUT`, so that a validation longer than the main
group's (NCCL's) timeout does not abort the job; the NCCL group has nothing in flight then.
"""
import dataclasses
import datetime
import gc
import os

import torch
import torch.distributed as dist

from .errors import TorchRNNError


# the main group's (the gradients'); and how long the others may wait for rank 0
TIMEOUT = datetime.timedelta(minutes=30)
WAIT_TIMEOUT = datetime.timedelta(days=7)


@dataclasses.dataclass
class Context:
    """This process's place in the job (rank 0 of 1 when not distributed)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    wait_group: object = None      # the gloo group of the waits for rank 0

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def active(self):
        return self.world_size > 1

    def rows(self, batch_size):
        """The slice of a batch's N streams that this process trains on."""
        if batch_size % self.world_size:
            raise TorchRNNError(f"-batch_size {batch_size} is not divisible by the "
                                f"{self.world_size} processes: each must get the same number "
                                f"of streams")
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)


def setup(use_cuda):
    """Join the process group that torchrun describes in the environment, if any."""
    size = world_size()
    if size <= 1:
        return Context()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    return Context(rank, size, local_rank, wait_group)


def teardown(context):
    """Leave the process group. The DistributedDataParallel wrapper can outlive the loop in
    a reference cycle; collecting it first avoids an abort at interpreter exit."""
    if context.active and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def world_size():
    """How many processes torchrun started (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_secondary():
    """True in every process but rank 0 of a torchrun job (they stay quiet)."""
    return int(os.environ.get("RANK", "0")) != 0


def gather_rows(context, tensor):
    """Concatenate every process's ``tensor`` along dim 0, in rank order (all get it)."""
    if not context.active:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(context.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def any_process(context, flag):
    """True on every process if ``flag`` is true on any (e.g. one of them was interrupted).
    On the CPU, in the wait group: no GPU sync, and no timeout while rank 0 validates."""
    if not context.active:
        return bool(flag)
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=context.wait_group)
    return bool(value.item())


def gather_objects(context, obj):
    """A list of every process's ``obj``, in rank order (in the wait group)."""
    if not context.active:
        return [obj]
    out = [None] * context.world_size
    dist.all_gather_object(out, obj, group=context.wait_group)
    return out


def barrier(context):
    """Every process waits here for all the others (in the wait group)."""
    if context.active:
        dist.barrier(group=context.wait_group)
