"""What the data says, from the frozen base's embeddings (seconds, beside the fine-tune): which labels
look wrong, and whether more data would help.

Both read the sentence embeddings the frozen-base probe already computed (``probe.FrozenFeatures``),
with that probe's regularisation, so they add a few logistic regressions to a job, not a training run.

- **Suspect labels**: every example's label is checked against out-of-fold predicted probabilities
  (k-fold logistic regression over all the file's examples: no example is judged by a model that saw
  it) with confident learning (Northcutt et al., 2021; ``cleanlab.filter.find_label_issues``), ranked
  by how little the model believes the given label. Row numbers are the spreadsheet's.
- **Learning curve**: the probe trained on 10, 25, 50 and 100 % of the training split (stratified,
  every label kept), macro-F1 on the test split, and what it means in plain words.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .data import stratified_share

CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
MAX_SUSPECTS = 200  # rows kept in metrics.json (the report shows the first few)
STILL_RISING = 0.02  # macro-F1 gained from half the training data to all of it that counts as rising


@dataclass(frozen=True)
class Examples:
    """Every checked example of the file, with its embedding: the rows a student sees, texts, label ids."""

    x: np.ndarray  # [n, width] frozen-base sentence embeddings
    y: np.ndarray  # [n] label ids
    rows: list[int]
    texts: list[str]


def suspect_rows(ex: Examples, labels: list[str], C: float, seed: int, folds: int = 5) -> list[dict]:
    """Rows whose label looks wrong, most suspicious first: the row, its text, its label, the label the
    model expected and the probabilities of both (out of fold)."""
    from cleanlab.filter import find_label_issues

    counts = np.bincount(ex.y, minlength=len(labels))
    k = int(min(folds, counts[counts > 0].min()))
    present = np.flatnonzero(counts)  # a label of the labelling with no example here (a teacher's) is left out
    if k < 2 or len(present) < 2:
        return []
    remap = {int(c): i for i, c in enumerate(present)}
    y = np.array([remap[int(v)] for v in ex.y])
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    proba = cross_val_predict(clf, ex.x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                              method="predict_proba")
    issues = find_label_issues(labels=y, pred_probs=proba, return_indices_ranked_by="self_confidence",
                               n_jobs=1)  # no process pool inside a worker
    out = []
    for i in issues[:MAX_SUSPECTS]:
        expected = int(proba[i].argmax())
        out.append({"row": ex.rows[i], "text": ex.texts[i], "label": labels[present[y[i]]],
                    "expected": labels[present[expected]],
                    "score": round(1 - float(proba[i, y[i]]), 4),  # how suspicious: 1 - P(its own label)
                    "label_probability": round(float(proba[i, y[i]]), 4),
                    "expected_probability": round(float(proba[i, expected]), 4)})
    return out


def learning_curve(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   labels: list[str], C: float, seed: int) -> list[dict]:
    """Macro-F1 on the test split of the probe trained on growing shares of the training split, each
    label's F1 beside it (``curve_advice`` says what they mean)."""
    rng = np.random.default_rng(seed)
    ids = list(range(len(labels)))
    points = []
    for fraction in CURVE_FRACTIONS:
        part = np.array(stratified_share(y_train, fraction, rng)) if fraction < 1 else np.arange(len(y_train))
        if len(np.unique(y_train[part])) < 2:
            continue
        pred = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x_train[part], y_train[part]).predict(x_test)
        per_class = f1_score(y_test, pred, labels=ids, average=None, zero_division=0)
        points.append({"fraction": fraction, "examples": int(len(part)),
                       "macro_f1": round(float(f1_score(y_test, pred, labels=ids, average="macro", zero_division=0)), 4),
                       "per_class_f1": {labels[i]: round(float(f), 4) for i, f in enumerate(per_class)}})
    return points


def curve_advice(points: list[dict]) -> str:
    """What a learning curve says: still rising (and where more examples help most), or flat (vary the data).
    ``points``: ``{fraction, macro_f1, per_class_f1}`` in growing order of ``fraction``; the probe's curve
    here, and an experiment's runs over ``train_share`` (``trainer.sweep``). Half the data is compared with
    the largest share, or the two largest shares when half was not tried."""
    if len(points) < 2:
        return "Too few examples to draw a learning curve."
    half = next((p for p in points if p["fraction"] == 0.5), points[-2])
    full = points[-1]

    def share(p) -> str:
        return {0.5: "half the training data", 1.0: "all of it"}.get(p["fraction"], f"{p['fraction'] * 100:g} % of the training data")

    gain = full["macro_f1"] - half["macro_f1"]
    if gain >= STILL_RISING:
        rises = {lab: full["per_class_f1"][lab] - half["per_class_f1"].get(lab, 0.0) for lab in full["per_class_f1"]}
        most = f", most of '{max(rises, key=lambda k: (rises[k], -full['per_class_f1'][k]))}' (its F1 rose most)" \
            if rises else ""
        return (f"Still rising: macro-F1 {half['macro_f1']:.2f} with {share(half)}, {full['macro_f1']:.2f} "
                f"with {share(full)}. More examples will help{most}.")
    return (f"Flat since {half['fraction'] * 100:g} % of the training data (macro-F1 {half['macro_f1']:.2f} -> "
            f"{full['macro_f1']:.2f}): more of the same data will not help much. Vary it (new phrasings, other "
            "sources, harder examples), or fix the labels that look wrong.")


def data_insight(frozen, splits, label2id: dict[str, int], labels: list[str], seed: int, progress) -> dict:
    """Suspect labels and the learning curve of one run, from its frozen base (``probe.FrozenBase``); {} for a
    base read without pooling (no frozen embeddings). With a separate validation file, only the training
    file's rows are checked (its row numbers are the file's own)."""
    from .progress import Progress

    if frozen is None:
        return {}
    progress(Progress("evaluating", message="which labels look wrong, and would more data help"))
    started = time.perf_counter()
    parts = [(splits.train, frozen.x_train), (splits.test, frozen.x_test)]
    if splits.source != "validation file":
        parts.insert(1, (splits.validation, frozen.x_val))
    ex = Examples(np.vstack([x for _, x in parts]), np.array([label2id[y] for p, _ in parts for y in p.labels]),
                  [r for p, _ in parts for r in p.rows], [t for p, _ in parts for t in p.texts])
    C = frozen.probe.C
    y_train = np.array([label2id[y] for y in splits.train.labels])
    y_test = np.array([label2id[y] for y in splits.test.labels])
    curve = learning_curve(frozen.x_train, y_train, frozen.x_test, y_test, labels, C, seed)
    out = {"suspect_rows": suspect_rows(ex, labels, C, seed), "learning_curve": curve,
           "learning_curve_advice": curve_advice(curve)}
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def insight_advice(insight: dict) -> list[str]:
    tips = []
    suspects = insight.get("suspect_rows")
    if suspects:  # how many, not which: advice is posted where the class reads it; the rows are the student's
        tips.append(f"{len(suspects)} label{'s look' if len(suspects) != 1 else ' looks'} wrong to a model that "
                    f"never saw {'them' if len(suspects) != 1 else 'it'}. Check the suspect rows (the row, the label "
                    "and the label it looks like), fix what is wrong and train again.")
    if insight.get("learning_curve_advice"):
        tips.append(insight["learning_curve_advice"])
    return tips


def suspects_csv(rows: list[dict], text_column: str, label_column: str) -> bytes:
    """The suspect rows as a CSV to fix in a spreadsheet (formula-safe cells, the file's own column names)."""
    import io

    from core.files import csv_cell

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", text_column, label_column, "expected_label", "label_probability", "expected_probability"])
    for r in rows:
        w.writerow([r["row"], csv_cell(r["text"]), csv_cell(r["label"]), csv_cell(r["expected"]),
                    r["label_probability"], r["expected_probability"]])
    return buf.getvalue().encode("utf-8")


def write_suspects(rows: list[dict], path: Path, text_column: str, label_column: str) -> None:
    path.write_bytes(suspects_csv(rows, text_column, label_column))


def plot_learning_curve(pts: list[dict], path) -> None:
    from .evaluate import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    ax.plot([p["examples"] for p in pts], [p["macro_f1"] for p in pts], marker="o")
    for p in pts:
        ax.annotate(f"{p['fraction']:.0%}", (p["examples"], p["macro_f1"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("training examples")
    ax.set_ylabel("test macro-F1")
    ax.set_ylim(0, 1.05)
    ax.set_title("Would more data help? (frozen base + linear probe)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
