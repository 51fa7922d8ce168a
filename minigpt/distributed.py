"""The processes: a `torchrun` job's ranks (`Dist`, DistributedDataParallel) and Ctrl-C (`SigintGuard`).

Run alone, `Dist()` is rank 0 of 1 and every method is the identity, so the loop is the same code either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import _short


@dataclass
class Dist:
    """This process's place in a `torchrun` job (DistributedDataParallel); rank 0 of 1 when run alone.

    torchrun starts one process per GPU and tells each its RANK (global), LOCAL_RANK (on its node) and
    WORLD_SIZE in the environment. Each piece exists for one reason:

    - `setup`/`close`: one process group per job, NCCL between GPUs (each process on the GPU its LOCAL_RANK
      names) and gloo on the CPU; destroyed on the way out even when training fails.
    - `shard`: every rank draws the *global* batch from the same seeded generator and keeps slice `rank` of
      it, so the ranks see different examples that together are exactly one process's batch of
      batch_size x world_size: global batch = batch_size x grad_accum x world_size sequences per step, and
      a single-process run is the same code with world_size 1.
    - `sum`/`mean`/`any`: what decides the control flow (the NaN guard, Ctrl-C) is all-reduced first, so
      every rank takes the same branch; a rank that stopped alone would leave the others blocked forever.
      The val loss is the mean of the ranks' losses on their slices of the same global val batches.
    - `check_in_sync`: at the end, every rank's weights must equal rank 0's bit for bit (DDP averages the
      gradients, and nGPT's `after_optimizer_step` runs on every rank on identical weights); a mismatch
      would mean rank 0's checkpoint is not the model the job trained, so it is an error.
    - `is_main`: only rank 0 writes files and shows the progress bar.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: torch.device) -> Dist:
        """Join the torchrun job this process belongs to (WORLD_SIZE > 1), else rank 0 of 1 on `device`. A
        process group the caller already created is used as it is, and left to the caller to destroy."""
        import torch.distributed as td

        owns = not (td.is_available() and td.is_initialized())
        world = int(os.environ.get("WORLD_SIZE", "1")) if owns else td.get_world_size()
        if world == 1:
            return cls(device=device)
        rank = int(os.environ["RANK"]) if owns else td.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if owns:
            if device.type == "cuda":
                td.init_process_group("nccl", device_id=device)
            else:
                td.init_process_group("gloo")
        return cls(rank, local_rank, world, device, owns)

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as td

            td.destroy_process_group()
            self.owns_group = False

    def shard(self, batch: Tensor) -> Tensor:
        """Rows [rank * n, (rank + 1) * n) of a global batch of world_size * n rows."""
        if not self.enabled:
            return batch
        n = batch.size(0) // self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]

    def sum(self, value: float) -> float:
        """`value` summed over the ranks (gloo has no AVG reduction, hence sum, then divide)."""
        if not self.enabled:
            return value
        import torch.distributed as td

        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        td.all_reduce(t)
        return t.item()

    def mean(self, value: float) -> float:
        return self.sum(value) / self.world_size if self.enabled else value

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag)) > 0 if self.enabled else flag

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Local rank 0 of each node runs the body first (e.g. fills the token cache), then the others."""
        import torch.distributed as td

        if self.enabled and self.local_rank != 0:
            td.barrier()
        try:
            yield
        finally:  # also on an error: the others then fail on their own, rather than wait forever
            if self.enabled and self.local_rank == 0:
                td.barrier()

    def check_in_sync(self, model: nn.Module) -> None:
        """Compare every tensor of the state dict with rank 0's (broadcast), bitwise; raise on all ranks if
        any rank differs. One broadcast of the model, once per run."""
        if not self.enabled:
            return
        import torch.distributed as td

        differ = []
        for name, tensor in model.state_dict().items():
            reference = tensor.detach().clone()
            td.broadcast(reference, src=0)
            if not torch.equal(reference, tensor):
                differ.append(name)
        if self.any(bool(differ)):
            raise RuntimeError(
                f"DDP ranks ended with different weights (rank {self.rank} differs from rank 0 in "
                f"{_short(differ) or 'nothing; another rank does'}): every rank must apply the same update"
            )


class SigintGuard:
    """While training, the first Ctrl-C only sets a flag: the current step finishes, the loop saves a
    checkpoint at a consistent point and raises TrainingInterrupted. A second Ctrl-C interrupts at once.
    Signal handlers can only be installed from the main thread; elsewhere this is a no-op."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigintGuard:
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except (ValueError, OSError):
                self._installed = False
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:  # second Ctrl-C: the user wants out now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

