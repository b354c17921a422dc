"""Training losses as pure functions of tensors, and the two objectives the trainer uses.

Fine-tuning uses :func:`cross_entropy`. Distillation uses :class:`TinyBertLoss`, TinyBERT's task
distillation objective (Jiao et al., 2020, ``task_distill.py``) written after TextBrewer's
``kd_ce_loss``, ``hid_mse_loss`` and ``att_mse_loss``: soft cross-entropy on the teacher's logits,
MSE between mapped hidden states (embeddings included) and attention maps, plus the hard labels.
They are written here rather than imported because TextBrewer is unmaintained (last release 2021)
and the whole objective is these few lines; the layer map is data (``layer_map``), not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

IGNORE = -100  # label of an augmented example: it has only the teacher's soft targets


class LossFn(Protocol):
    def __call__(self, batch: dict[str, torch.Tensor], student, teacher=None) -> torch.Tensor: ...


def cross_entropy(batch: dict[str, torch.Tensor], student, teacher=None) -> torch.Tensor:
    """Mean cross-entropy of ``student.logits`` [batch, labels] against ``batch["labels"]`` [batch]."""
    return F.cross_entropy(student.logits.float(), batch["labels"], ignore_index=IGNORE)


def kd_ce_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft cross-entropy of the student's tempered distribution against the teacher's.

    student_logits, teacher_logits: [batch, labels]. Returns a scalar, the batch mean of
    ``-sum_c softmax(t/T)_c * log_softmax(s/T)_c``, scaled by T² so gradients keep their size as T
    changes (Hinton et al., 2015).
    """
    t = temperature
    p_teacher = F.softmax(teacher_logits.float() / t, dim=-1)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    return -(p_teacher * log_p_student).sum(-1).mean() * t * t


def hid_mse_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between hidden states at real (non-padding) tokens.

    student_hidden, teacher_hidden: [batch, length, hidden] (same width: the student is cut from the
    teacher, so TinyBERT's projection matrix is the identity); mask: [batch, length] of 0/1.
    Returns a scalar: the squared error summed over the hidden size, averaged over real tokens and
    divided by the hidden size (the per-element mean over unmasked positions).
    """
    m = mask.to(student_hidden.dtype).unsqueeze(-1)
    sq = (student_hidden.float() - teacher_hidden.float()).pow(2) * m
    return sq.sum() / (m.sum() * student_hidden.size(-1)).clamp_min(1.0)


def att_mse_loss(student_att: torch.Tensor, teacher_att: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between attention maps over real query and key positions.

    student_att, teacher_att: [batch, heads, length, length] attention probabilities (what eager
    attention returns); mask: [batch, length] of 0/1. Pairs that involve a padding token are left out.
    Returns the per-element mean over the kept (query, key) pairs of every head.
    """
    m = mask.to(student_att.dtype)
    pair = (m.unsqueeze(-1) * m.unsqueeze(-2)).unsqueeze(1)  # [batch, 1, length, length]
    sq = (student_att.float() - teacher_att.float()).pow(2) * pair
    return sq.sum() / (pair.sum() * student_att.size(1)).clamp_min(1.0)


@dataclass(frozen=True)
class TinyBertLoss:
    """TinyBERT's task-distillation objective, as a :class:`LossFn`.

    ``layer_map[m]`` is the teacher layer that student layer ``m`` was cut from (pruning's
    ``layers_kept``); hidden state 0 (the embeddings) maps to hidden state 0. Examples labelled
    ``IGNORE`` (augmented copies) count in every term but the hard-label one.
    """

    layer_map: tuple[int, ...]
    temperature: float = 1.0
    soft_weight: float = 1.0
    hard_weight: float = 1.0
    hidden_weight: float = 1.0
    attention_weight: float = 1.0

    @property
    def needs_internals(self) -> bool:
        """Hidden states and attention maps are needed (else the teacher's logits suffice and can be cached)."""
        return self.hidden_weight > 0 or self.attention_weight > 0

    def __call__(self, batch: dict[str, torch.Tensor], student, teacher=None) -> torch.Tensor:
        loss = self.soft_weight * kd_ce_loss(student.logits, teacher.logits, self.temperature)
        if self.hard_weight and bool((batch["labels"] != IGNORE).any()):
            loss = loss + self.hard_weight * cross_entropy(batch, student)
        mask = batch["attention_mask"]
        if self.hidden_weight:
            pairs = [(0, 0)] + [(m + 1, t + 1) for m, t in enumerate(self.layer_map)]
            loss = loss + self.hidden_weight * sum(
                hid_mse_loss(student.hidden_states[s], teacher.hidden_states[t], mask) for s, t in pairs) / len(pairs)
        if self.attention_weight:
            loss = loss + self.attention_weight * sum(
                att_mse_loss(student.attentions[m], teacher.attentions[t], mask)
                for m, t in enumerate(self.layer_map)) / len(self.layer_map)
        return loss
