"""Where to run: CUDA with bf16 autocast when there is a GPU, otherwise the CPU with sensible threads."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import TrainerError


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainerError("device = 'cuda' was asked for, but torch sees no GPU on this machine; use auto or cpu")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int = 0) -> int:
    """Use the cores this process may run on (a container's limit, not the host's count)."""
    n = threads or usable_cores()
    torch.set_num_threads(n)
    return n


def autocast(device: torch.device):
    """bf16 autocast on GPUs that support it; full precision on the CPU (bf16 is slower on most CPUs)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
