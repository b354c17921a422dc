"""Training losses as pure functions of (batch, student outputs, teacher outputs).

Fine-tuning uses :func:`cross_entropy`; distillation (coming later) plugs in a function of the same
shape that also reads the teacher's logits and hidden states.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class LossFn(Protocol):
    def __call__(self, batch: dict[str, torch.Tensor], student, teacher=None) -> torch.Tensor: ...


def cross_entropy(batch: dict[str, torch.Tensor], student, teacher=None) -> torch.Tensor:
    """Mean cross-entropy of ``student.logits`` [batch, labels] against ``batch["labels"]`` [batch]."""
    return F.cross_entropy(student.logits.float(), batch["labels"])
