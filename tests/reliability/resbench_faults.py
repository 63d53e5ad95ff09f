"""Fault-injection plugin for the reliability suite, loaded through a space's ``plugins:`` list
(``plugins: [resbench_faults]``; the suite puts this folder on the workers' PYTHONPATH).

It registers residual block types that behave like ``basic`` until the second training epoch of
a trial, then inject one fault (each block counts its own training forward passes):

    fault_raise       raise RuntimeError("injected fault: ...")
    fault_nan         return NaN activations (the loss goes NaN: the trial diverges)
    fault_oom         raise torch.cuda.OutOfMemoryError (simulated; works on CPU)
    fault_kill        SIGKILL the trial's own worker process, every time
    fault_kill_once   SIGKILL the worker process once per sweep (a retry then succeeds)
    fault_ckpt_once   make the next checkpoint write (torch.save) fail once with ENOSPC
    slow              sleep ``SLOW_S`` per training step (time to kill a driver mid-trial)

"Once" is once per ``RESBENCH_FAULT_DIR`` (a marker file created with O_EXCL); the variable
must reach the Ray workers (set it before the cluster starts). ``STEPS_BEFORE`` is the number of
training steps of the first epoch (the suite's spaces use 2).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import time

import torch
from torch import nn

from bench.models.blocks import BLOCKS, register_block

FAULT_DIR_ENV = "RESBENCH_FAULT_DIR"
STEPS_BEFORE = int(os.environ.get("RESBENCH_FAULT_AFTER_STEPS", "2"))
SLOW_S = float(os.environ.get("RESBENCH_SLOW_STEP_S", "0.5"))
FAULTS = ("raise", "nan", "oom", "kill", "kill_once", "ckpt_once")


def once(tag: str) -> bool:
    """True the first time ``tag`` is seen under RESBENCH_FAULT_DIR (any process)."""
    folder = os.environ.get(FAULT_DIR_ENV)
    if not folder:
        return True
    try:
        os.close(os.open(os.path.join(folder, tag), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _fail_next_save() -> None:
    real = torch.save

    def failing_save(*args, **kwargs):
        torch.save = real  # one failure only
        raise OSError(errno.ENOSPC, "No space left on device (injected checkpoint-write fault)")

    torch.save = failing_save


class FaultyBranch(nn.Module):
    """The basic block's F(x), with a fault after ``STEPS_BEFORE`` training steps."""

    def __init__(self, inner: nn.Module, fault: str) -> None:
        super().__init__()
        self.inner = inner
        self.fault = fault
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if not (self.training and torch.is_grad_enabled()):
            return out  # cost counting and evaluation stay clean
        self.steps += 1
        if self.fault == "slow":
            time.sleep(SLOW_S)
            return out
        if self.steps <= STEPS_BEFORE:
            return out
        if self.fault == "raise":
            raise RuntimeError("injected fault: the block raised")
        if self.fault == "nan":
            return out * float("nan")
        if self.fault == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB "
                                              "(injected fault)")
        if self.fault == "kill" or (self.fault == "kill_once" and once("kill_once")):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "ckpt_once" and self.steps == STEPS_BEFORE + 1 and once("ckpt_once"):
            _fail_next_save()
        return out


def _register() -> None:
    basic = BLOCKS.get("basic")
    for fault in (*FAULTS, "slow"):
        def factory(cin, width, cout, stride, _fault=fault, **params):
            return FaultyBranch(basic.factory(cin, width, cout, stride, **params), _fault)

        name = "slow" if fault == "slow" else f"fault_{fault}"
        register_block(name, dataclasses.replace(basic, factory=factory,
                                                 description=f"basic with fault {fault}"),
                       overwrite=True)


_register()
