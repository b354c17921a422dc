"""Why a model gave its label: each word's part in it, by occlusion through the served model.

The message is classified again with each word left out, all variants in one call of the predictor
(``n + 1`` texts for ``n`` words, so the served ONNX model answers, int8 as the student is served: the
model explained is the one that answered). A word's weight is how far the margin between the predicted
label and the runner-up falls without it: positive, it pushed the text towards its label and away from
the runner-up; negative, the other way. No gradients, no sampling: exact for that model, and the same
on ONNX Runtime and PyTorch. (Integrated gradients, Captum's method, needs the fp32 PyTorch weights
and a path of 20 to 50 forward passes; ``benchmarks/bench_explain.py`` measures occlusion's
faithfulness and its milliseconds beside a training worker.)

A text of more than ``MAX_PARTS`` words is explained in ``MAX_PARTS`` runs of neighbouring words, so a
long document costs a bounded number of forward passes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np

MAX_PARTS = 48  # occlusions per text at most: longer texts are explained in runs of words
WORD = re.compile(r"\S+")
EDGE_PUNCTUATION = "\"'“”‘’.,;:!?()[]{}«»"


@dataclass(frozen=True)
class Part:
    """A word (or a run of words) of the text, where it is, and its weight."""

    text: str
    start: int  # character offsets in the explained text
    end: int
    weight: float  # how far the margin (label minus runner-up) falls without it

    def to_dict(self) -> dict:
        return {"word": self.text, "weight": round(self.weight, 4), "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Explanation:
    text: str
    label: str
    runner_up: str | None  # None for a model with one label
    score: float  # the label's probability
    parts: list[Part]  # in the order of the text

    def top(self, k: int = 3) -> list[Part]:
        """The parts that pushed most towards the label (positive weight only), strongest first."""
        pushing = sorted((p for p in self.parts if p.weight > 0), key=lambda p: -p.weight)
        if not pushing:
            return []
        floor = pushing[0].weight * 0.25  # a word a quarter as strong as the strongest does not "drive" it
        return [p for p in pushing[:k] if p.weight >= floor]

    @property
    def reading(self) -> str:
        """One line: "mostly 'refund' and 'broken'"."""
        words = [f"'{p.text.strip(EDGE_PUNCTUATION) or p.text}'" for p in self.top(2)]
        against = f" (against {self.runner_up})" if self.runner_up else ""
        if not words:
            return f"no single word decides it{against}: the whole message does"
        return f"mostly {' and '.join(words)}{against}"

    def marked(self, mark, plain=lambda s: s, k: int = 3) -> str:
        """The text with its top ``k`` parts passed through ``mark`` and the rest through ``plain`` (a
        renderer's escaping): ``marked(lambda w: f"**{w}**")``."""
        chosen = {(p.start, p.end) for p in self.top(k)}
        out, at = [], 0
        for p in self.parts:
            out.append(plain(self.text[at:p.start]))
            piece = self.text[p.start:p.end]
            out.append(mark(plain(piece)) if (p.start, p.end) in chosen else plain(piece))
            at = p.end
        out.append(plain(self.text[at:]))
        return "".join(out)

    def to_dict(self) -> dict:
        return {"label": self.label, "runner_up": self.runner_up, "score": round(self.score, 4),
                "reading": self.reading, "top": [p.text for p in self.top()],
                "top_spans": [[p.start, p.end] for p in self.top()], "words": [p.to_dict() for p in self.parts]}


def spans(text: str, max_parts: int = MAX_PARTS) -> list[tuple[int, int]]:
    """The text's words as character spans; more than ``max_parts`` words are grouped into that many runs."""
    words = [(m.start(), m.end()) for m in WORD.finditer(text)]
    if len(words) <= max_parts:
        return words
    edges = np.linspace(0, len(words), max_parts + 1).round().astype(int)
    return [(words[a][0], words[b - 1][1]) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def without(text: str, span: tuple[int, int]) -> str:
    return (text[:span[0]].rstrip() + " " + text[span[1]:].lstrip()).strip()


def _proba(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def _margin(p: np.ndarray, label: int, runner: int | None) -> np.ndarray:
    """The label's probability less the runner-up's (the label's alone for a one-label model)."""
    return p[..., label] - (p[..., runner] if runner is not None else 0.0)


def explain_many(predictor, texts: list[str], max_parts: int = MAX_PARTS) -> list[Explanation]:
    """One explanation per text, every variant of every text classified in one call of ``predictor.logits``."""
    cuts = [spans(t, max_parts) for t in texts]
    batch = list(texts) + [without(t, s) for t, ss in zip(texts, cuts, strict=True) for s in ss]
    proba = _proba(predictor.logits(batch)) if batch else np.zeros((0, len(predictor.labels)))
    out, at = [], len(texts)
    for i, (text, ss) in enumerate(zip(texts, cuts, strict=True)):
        full = proba[i]
        order = np.argsort(-full, kind="stable")
        label = int(order[0])
        runner = int(order[1]) if len(order) > 1 else None
        variants = proba[at:at + len(ss)]
        at += len(ss)

        weights = (_margin(full, label, runner) - _margin(variants, label, runner)) if len(ss) else np.zeros(0)
        parts = [Part(text[a:b], a, b, float(w)) for (a, b), w in zip(ss, weights, strict=True)]
        out.append(Explanation(text, predictor.labels[label],
                               predictor.labels[runner] if runner is not None else None, float(full[label]), parts))
    return out


def explain(predictor, text: str, max_parts: int = MAX_PARTS) -> Explanation:
    return explain_many(predictor, [text], max_parts)[0]


def explain_examples(predictor, examples: list[dict], seconds: float, first: set | frozenset = frozenset()) -> int:
    """Add an ``explanation`` to a test split's examples (``Evaluation.examples``) for the confusion matrix's
    cells, for about ``seconds``: the rows in ``first`` always (the report's most confident mistakes), then
    the other mistakes (the most confident first), then the correct ones, each correct cell's in turn, so
    every cell shows why a few were so labelled. Explaining costs a forward pass per word of each text, and
    a split of long texts would cost minutes; the rest are listed without. Returns how many were explained."""
    def order(x):
        return (x["row"] not in first, x["label"] == x["predicted"], -x["confidence"])

    wrong = sorted((x for x in examples if x["label"] != x["predicted"] or x["row"] in first), key=order)
    cells: dict[str, list[dict]] = {}
    for x in examples:
        if x["label"] == x["predicted"] and x["row"] not in first:
            cells.setdefault(x["label"], []).append(x)
    right = [x for turn in zip_longest(*cells.values()) for x in turn if x is not None]
    started, done = time.perf_counter(), 0
    for x in wrong + right:  # one at a time: a long text alone costs up to MAX_PARTS + 1 passes
        if x["row"] not in first and time.perf_counter() - started > seconds:
            break
        x["explanation"] = explain(predictor, x["text"]).to_dict()
        done += 1
    return done
