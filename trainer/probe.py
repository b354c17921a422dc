"""The linear probe: what a frozen encoder already knows, and the head fine-tuning starts from.

The probe is scikit-learn's logistic regression on the classifier's own sentence embeddings (the
pooled, L2-normalised vectors :class:`trainer.classifier.PooledClassifier` feeds its head), fitted
on the training split in seconds. It serves three ends: the "frozen base" row of every report (what
the base knew before any fine-tuning), the ``probe`` method (the model *is* the frozen encoder and
this head), and LP-FT (Kumar et al., 2022): fine-tuning starts from the probe's head instead of a
random one, so the first steps refine the encoder rather than undo it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from .batching import count_texts, eval_loader, mean_by_text, text_labels, texts_of, unsort
from .device import autocast
from .progress import Progress
from .pruning import num_layers

C_GRID = (1.0, 10.0, 100.0)  # inverse regularisation tried on validation; features are unit vectors


@dataclass
class Probe:
    weight: np.ndarray  # [labels, width]
    bias: np.ndarray  # [labels]
    C: float
    val_macro_f1: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias


@torch.inference_mode()
def embeddings(model, features: list[dict], tokenizer, device, batch_size: int = 64) -> np.ndarray:
    """Sentence embeddings [texts, width] of a :class:`PooledClassifier` for tokenised features, in text
    order; a long text's is the mean of its windows' (the head is linear: the mean of their logits)."""
    model.to(device).eval()
    loader, order = eval_loader(features, tokenizer, batch_size)
    out = []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with autocast(device):
            emb, _ = model.embed(**batch)
        out.extend(emb.float().cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return mean_by_text(torch.stack(unsort(out, order)).numpy(), texts_of(features), count_texts(features))


def fit_probe(x_train: np.ndarray, y_train: list[int], x_val: np.ndarray, y_val: list[int], n_labels: int,
              seed: int) -> Probe:
    """Logistic regression on the training embeddings, its C chosen by validation macro-F1 (ties: the
    stronger regularisation). Every label gets a row, even one absent from the training split."""
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)
        f1 = float(f1_score(y_val, clf.predict(x_val), average="macro", zero_division=0)) if len(y_val) else 0.0
        if best is None or f1 > best[0] + 1e-9:
            best = (f1, c, clf)
    f1, c, clf = best
    weight = np.zeros((n_labels, x_train.shape[1]), dtype=np.float32)
    bias = np.full(n_labels, -1e4 if len(clf.classes_) < n_labels else 0.0, dtype=np.float32)
    if len(clf.classes_) == 2:  # one decision row w: the same probabilities as logits (-w/2, +w/2)
        rows = np.stack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
        biases = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
    else:
        rows, biases = clf.coef_, clf.intercept_
    for k, cls in enumerate(clf.classes_):
        weight[int(cls)], bias[int(cls)] = rows[k], biases[k]
    return Probe(weight, bias, c, f1)


def start_head_from(model, probe: Probe) -> None:
    """LP-FT: the classifier's linear head takes the probe's weights."""
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(probe.weight))
        model.classifier.bias.copy_(torch.from_numpy(probe.bias))


def probe_model(model, tokenizer, train_f: list[dict], val_f: list[dict], device, seed: int) -> Probe:
    """Fit a probe on ``model``'s frozen embeddings of the training split (C chosen on validation)."""
    n_labels = model.classifier.out_features
    x_train = embeddings(model, train_f, tokenizer, device)
    x_val = embeddings(model, val_f, tokenizer, device)
    return fit_probe(x_train, text_labels(train_f), x_val, text_labels(val_f), n_labels, seed)


@dataclass
class FrozenBase:
    """What the base knew before any fine-tuning: the report's "frozen base" row, its probe, and the
    embeddings it was fitted and scored on (``trainer.insight`` reads them again)."""

    row: dict
    probe: Probe
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray


def frozen_probe(model, tokenizer, train_f, val_f, test_f, y_test, device, seed, progress) -> FrozenBase | None:
    """A linear probe on all of the base's layers, frozen, scored on the test split. None for a classifier
    that is not a :class:`PooledClassifier` (a teacher saved before pooling was read as the base was trained)."""
    if not hasattr(model, "embed"):
        return None
    progress(Progress("loading", message="the frozen base and a linear probe (what it knows before training)"))
    started = time.perf_counter()
    n = model.classifier.out_features
    x_train, x_val, x_test = (embeddings(model, f, tokenizer, device) for f in (train_f, val_f, test_f))
    probe = fit_probe(x_train, text_labels(train_f), x_val, text_labels(val_f), n, seed)
    pred = probe.logits(x_test).argmax(1)
    row = {"macro_f1": float(f1_score(y_test, pred, labels=list(range(n)), average="macro", zero_division=0)),
           "accuracy": float((pred == np.array(y_test)).mean()), "val_macro_f1": probe.val_macro_f1,
           "layers": num_layers(model.config), "C": probe.C, "seconds": round(time.perf_counter() - started, 2),
           "model": "the frozen base's sentence embeddings + logistic regression"}
    return FrozenBase(row, probe, x_train, x_val, x_test)
