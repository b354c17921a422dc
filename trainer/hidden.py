"""Scoring a trained model on an assignment's hidden test set, in the worker.

The hidden file is read here and nowhere else a student's job can reach: no text, row or prediction
of it is returned, logged or written next to the model. What leaves is aggregate numbers only
(macro-F1, accuracy, per-class F1, the TF-IDF baseline's macro-F1), which is what the leaderboard
shows. It is never part of a ``TrainSpec``, so it is never trained on, early-stopped on, or
recorded in a report's spec.

The set has two parts, split once when the assignment is set (``split_public``: stratified, seeded):
each submission is scored on both, and students see the public part's numbers until the reveal, so
resubmitting against the board teaches them nothing about the part that decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.spec import DataLimits

PARTS = ("public", "private")
SPLIT_SEED = 20261203  # the public/private split's seed (stored with the split's rows, so changing it changes nothing set)


@dataclass(frozen=True)
class HiddenTest:
    """Where the hidden file is on the worker and how to read it (columns found when it was uploaded)."""

    path: str
    text_column: str
    label_column: str
    labels: list[str]  # the assignment's labels: macro-F1 averages over these
    public_rows: tuple[int, ...] | None = None  # file rows of the public part (None: the whole set is both parts)


def missing_labels(assignment_labels: list[str], student_labels) -> list[str]:
    """The assignment's labels a student's file has no example of (their model could never predict them)."""
    return sorted(set(assignment_labels) - set(student_labels))


def split_public(rows: list[int], labels: list[str], share: float, seed: int = SPLIT_SEED) -> list[int]:
    """The file rows of the public part: ``share`` of each label (at least one, and at least one left for
    the private part when a label has two or more), seeded, so the split is the same wherever it is made."""
    import numpy as np

    from .data import stratified_share

    picked = stratified_share(labels, share, np.random.default_rng(seed), leave_one=True)
    return sorted(rows[i] for i in picked)


def _parts(rows: list[int], public_rows) -> dict[str, list[int]]:
    """Positions of each part in a loaded hidden set (both parts are the whole set without a split)."""
    if public_rows is None:
        everything = list(range(len(rows)))
        return {"public": everything, "private": everything}
    public = set(public_rows)
    return {"public": [i for i, r in enumerate(rows) if r in public],
            "private": [i for i, r in enumerate(rows) if r not in public]}


def _aggregates(truth: list[str], predicted: list[str], labels: list[str]) -> dict:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    if not truth:  # a part with no examples (a tiny hidden set): nothing to score
        return {"macro_f1": 0.0, "accuracy": 0.0, "per_class_f1": dict.fromkeys(labels, 0.0), "examples": 0}
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {"macro_f1": float(np.mean(per_class)), "accuracy": float(accuracy_score(truth, predicted)),
            "per_class_f1": {lab: round(float(f), 4) for lab, f in zip(labels, per_class, strict=True)},
            "examples": len(truth)}


def score_hidden(predictor, hidden: HiddenTest, limits: DataLimits, train_texts: list[str],
                 train_labels: list[str], seed: int, frozen_base=None) -> dict:
    """Aggregates of ``predictor`` (the served model) on each part of the hidden set, and the macro-F1 of the
    two cheap references trained on the same training split: TF-IDF (``baseline_macro_f1``) and, given
    ``frozen_base`` (texts -> labels: the frozen base read by the run's linear probe), ``probe_macro_f1``
    (None without it): ``{"public": {...}, "private": {...}}``. A prediction of a label the assignment does
    not have counts as a mistake."""
    from . import data as data_mod
    from .evaluate import tfidf_fit

    ds = data_mod.load_dataset(hidden.path, limits, hidden.text_column, hidden.label_column, for_training=False)
    labels = list(hidden.labels)
    predicted = [predictor.labels[i] for i in predictor.logits(ds.texts).argmax(axis=1)]
    baseline = list(tfidf_fit(train_texts, train_labels, seed).predict(ds.texts))
    probe = list(frozen_base(ds.texts)) if frozen_base is not None else None
    out = {}
    for part, idx in _parts(ds.rows, hidden.public_rows).items():
        truth = [ds.labels[i] for i in idx]
        out[part] = _aggregates(truth, [predicted[i] for i in idx], labels) | {
            "baseline_macro_f1": _aggregates(truth, [baseline[i] for i in idx], labels)["macro_f1"],
            "probe_macro_f1": _aggregates(truth, [probe[i] for i in idx], labels)["macro_f1"] if probe else None}
    return out


def baseline_on_hidden(train_path: str | Path, train_columns: tuple[str, str], hidden: HiddenTest,
                       limits: DataLimits, seed: int = 42) -> dict:
    """The TF-IDF baseline trained on an assignment's training file and scored on each part of its hidden
    set: the boards' reference lines. Aggregates only: ``{"model", "public": {...}, "private": {...}}``."""
    from . import data as data_mod
    from .evaluate import TFIDF_MODEL, tfidf_fit

    train = data_mod.load_dataset(train_path, limits, *train_columns)
    test = data_mod.load_dataset(hidden.path, limits, hidden.text_column, hidden.label_column, for_training=False)
    predicted = list(tfidf_fit(train.texts, train.labels, seed).predict(test.texts))
    out = {"model": TFIDF_MODEL}
    for part, idx in _parts(test.rows, hidden.public_rows).items():
        scores = _aggregates([test.labels[i] for i in idx], [predicted[i] for i in idx], list(hidden.labels))
        out[part] = {k: scores[k] for k in ("macro_f1", "accuracy")}
    return out


def check_assignment_files(test_spec: dict, train_spec: dict | None, registry: dict | None = None,
                           public_share: float = 0.3) -> dict:
    """An assignment's hidden test file and optional training file, checked (runs in the sandbox): each
    file's ``check`` info, the test file's columns, the public part's rows (``split_public``), the test
    labels the training file lacks, how many test texts the training file also has, and the TF-IDF
    reference lines (trained on the training file, scored on each part). A DataError names which file."""
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
    public = split_public(test_ds.rows, test_ds.labels, public_share)
    out = {"test": test_info, "train": None, "missing": [], "shared": 0, "baseline": None, "public_rows": public,
           "parts": {"public": _label_counts(test_ds, set(public)), "private": _label_counts(test_ds, set(public), False)}}
    if train_spec is None:
        return out
    train_ds, train_info = check(train_spec, "the training file")
    out |= {"train": train_info, "missing": missing_labels(list(test_info["labels"]), train_info["labels"])}
    if out["missing"]:
        return out
    seen = {normalise_text(t) for t in train_ds.texts}
    out["shared"] = sum(normalise_text(t) in seen for t in test_ds.texts)
    hidden = HiddenTest(test_spec["data_path"], test_ds.text_column, test_ds.label_column,
                        sorted(test_info["labels"]), tuple(public))
    limits = TrainSpec.from_dict(train_spec).limits
    out["baseline"] = baseline_on_hidden(train_spec["data_path"], (train_ds.text_column, train_ds.label_column),
                                         hidden, limits)
    return out


def _label_counts(ds, public: set[int], in_public: bool = True) -> dict[str, int]:
    """How many examples of each label a part has (for the instructor: a part with few is a noisy board)."""
    from collections import Counter

    return dict(sorted(Counter(lab for r, lab in zip(ds.rows, ds.labels, strict=True)
                               if (r in public) == in_public).items()))
