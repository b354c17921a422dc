"""Scoring a trained model on an assignment's hidden test set, in the worker.

The hidden file is read here and nowhere else a student's job can reach: no text, row or prediction
of it is returned, logged or written next to the model. What leaves is aggregate numbers only
(macro-F1, accuracy, per-class F1, the TF-IDF baseline's macro-F1), which is what the leaderboard
shows. It is never part of a ``TrainSpec``, so it is never trained on, early-stopped on, or
recorded in a report's spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.spec import DataLimits


@dataclass(frozen=True)
class HiddenTest:
    """Where the hidden file is on the worker and how to read it (columns found when it was uploaded)."""

    path: str
    text_column: str
    label_column: str
    labels: list[str]  # the assignment's labels: macro-F1 averages over these


def missing_labels(assignment_labels: list[str], student_labels) -> list[str]:
    """The assignment's labels a student's file has no example of (their model could never predict them)."""
    return sorted(set(assignment_labels) - set(student_labels))


def score_hidden(predictor, hidden: HiddenTest, limits: DataLimits, train_texts: list[str],
                 train_labels: list[str], seed: int) -> dict:
    """Aggregates of ``predictor`` (the served model) on the hidden set, and of a TF-IDF baseline trained on
    the same training split. A prediction of a label the assignment does not have counts as a mistake."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from . import data as data_mod
    from .evaluate import tfidf_baseline

    ds = data_mod.load_dataset(hidden.path, limits, hidden.text_column, hidden.label_column, for_training=False)
    labels = list(hidden.labels)
    predicted = [predictor.labels[i] for i in predictor.logits(ds.texts).argmax(axis=1)]
    per_class = f1_score(ds.labels, predicted, labels=labels, average=None, zero_division=0)
    baseline = tfidf_baseline(train_texts, train_labels, ds.texts, ds.labels, seed, labels=labels)
    return {
        "macro_f1": float(np.mean(per_class)),
        "accuracy": float(accuracy_score(ds.labels, predicted)),
        "per_class_f1": {lab: round(float(f), 4) for lab, f in zip(labels, per_class, strict=True)},
        "baseline_macro_f1": baseline["macro_f1"],
        "examples": len(ds),
    }


def baseline_on_hidden(train_path: str | Path, train_columns: tuple[str, str], hidden: HiddenTest,
                       limits: DataLimits, seed: int = 42) -> dict:
    """The TF-IDF baseline trained on an assignment's training file and scored on its hidden set: the
    leaderboard's reference line. Aggregates only."""
    from . import data as data_mod
    from .evaluate import tfidf_baseline

    train = data_mod.load_dataset(train_path, limits, *train_columns)
    test = data_mod.load_dataset(hidden.path, limits, hidden.text_column, hidden.label_column, for_training=False)
    return tfidf_baseline(train.texts, train.labels, test.texts, test.labels, seed, labels=list(hidden.labels))


def check_assignment_files(test_spec: dict, train_spec: dict | None, registry: dict | None = None) -> dict:
    """An assignment's hidden test file and optional training file, checked (runs in the sandbox): each
    file's ``check`` info, the test file's columns, the test labels the training file lacks, how many
    test texts the training file also has, and the TF-IDF reference line (trained on the training file,
    scored on the hidden set). A DataError names which file it is about."""
    from dataclasses import replace

    from core.spec import TrainSpec

    from .check import check_file
    from .data import normalise_text
    from .errors import DataError

    def check(spec: dict, what: str):
        try:
            return check_file(TrainSpec.from_dict(spec), registry)
        except DataError as exc:
            raise DataError([replace(p, message=f"{what}: {p.message}") for p in exc.problems]) from None

    test_ds, test_info = check(test_spec, "the test file")
    out = {"test": test_info, "train": None, "missing": [], "shared": 0, "baseline": None}
    if train_spec is None:
        return out
    train_ds, train_info = check(train_spec, "the training file")
    out |= {"train": train_info, "missing": missing_labels(list(test_info["labels"]), train_info["labels"])}
    if out["missing"]:
        return out
    seen = {normalise_text(t) for t in train_ds.texts}
    out["shared"] = sum(normalise_text(t) in seen for t in test_ds.texts)
    hidden = HiddenTest(test_spec["data_path"], test_ds.text_column, test_ds.label_column, sorted(test_info["labels"]))
    limits = TrainSpec.from_dict(train_spec).limits
    baseline = baseline_on_hidden(train_spec["data_path"], (train_ds.text_column, train_ds.label_column), hidden, limits)
    out["baseline"] = {k: baseline[k] for k in ("macro_f1", "accuracy", "model")}
    return out
