"""Honest evaluation on the held-out test split: scikit-learn metrics, a TF-IDF baseline on the same
split, plots, the most confident mistakes, and advice in plain language."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    report: dict  # classification_report(output_dict=True)
    report_text: str
    confusion: list[list[int]]  # rows: true label, columns: predicted, in ``labels`` order
    labels: list[str]
    mistakes: list[dict] = field(default_factory=list)
    # every test example (row, text, label, predicted, confidence), by confusion cell (true label, then
    # predicted, in ``labels`` order) and most confident first within one: what a cell of the matrix holds
    examples: list[dict] = field(default_factory=list)


def evaluate(y_true: list[int], proba: np.ndarray, labels: list[str], texts: list[str], rows: list[int],
             n_mistakes: int = 10) -> Evaluation:
    y_pred = proba.argmax(axis=1)
    ids = list(range(len(labels)))
    report = classification_report(y_true, y_pred, labels=ids, target_names=labels, output_dict=True, zero_division=0)
    text = classification_report(y_true, y_pred, labels=ids, target_names=labels, digits=3, zero_division=0)
    wrong = [i for i in range(len(y_true)) if y_pred[i] != y_true[i]]
    wrong.sort(key=lambda i: -proba[i, y_pred[i]])
    def example(i: int) -> dict:
        return {"row": rows[i], "text": texts[i], "label": labels[y_true[i]], "predicted": labels[y_pred[i]],
                "confidence": round(float(proba[i, y_pred[i]]), 4)}

    mistakes = [example(i) for i in wrong[:n_mistakes]]
    by_cell = sorted(range(len(y_true)), key=lambda i: (y_true[i], y_pred[i], -proba[i, y_pred[i]]))
    return Evaluation(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        report=report, report_text=text,
        confusion=confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        labels=labels, mistakes=mistakes, examples=[example(i) for i in by_cell],
    )


TFIDF_MODEL = "TF-IDF (word 1-2 + char 2-4 grams) + logistic regression"


def tfidf_fit(train_texts, train_y, seed: int):
    """The TF-IDF reference (words and character n-grams, so Chinese works too) + logistic regression, fitted."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1),
    )
    clf = make_pipeline(features, LogisticRegression(max_iter=2000, C=10.0, random_state=seed))
    return clf.fit(train_texts, train_y)


def tfidf_baseline(train_texts, train_y, test_texts, test_y, seed: int, labels: list | None = None) -> dict:
    """The TF-IDF reference trained and scored on the same split. ``labels``: the labels macro-F1
    averages over (default: those in the test labels and predictions)."""
    pred = tfidf_fit(train_texts, train_y, seed).predict(test_texts)
    return {
        "accuracy": float(accuracy_score(test_y, pred)),
        "macro_f1": float(f1_score(test_y, pred, labels=labels, average="macro", zero_division=0)),
        "model": TFIDF_MODEL,
    }


# Fonts matplotlib falls back to for what DejaVu Sans lacks (Chinese, Japanese, Korean labels), in
# order; `make install` installs Debian's fonts-noto-cjk. Without one, such labels are empty boxes.
FALLBACK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans CJK TC",
                  "WenQuanYi Micro Hei", "Droid Sans Fallback")
_FALLBACK_FILES = ("NotoSansCJK", "wqy-microhei", "DroidSansFallback")
_fallbacks: list[str] | None = None


def fallback_fonts() -> list[str]:
    """The installed fallback fonts, registered with matplotlib (its font cache may predate them)."""
    global _fallbacks
    if _fallbacks is None:
        from matplotlib import font_manager as fm

        known = {f.name for f in fm.fontManager.ttflist}
        if not known.intersection(FALLBACK_FONTS):
            for path in fm.findSystemFonts():
                if any(k in Path(path).name for k in _FALLBACK_FILES):
                    fm.fontManager.addfont(path)
            known = {f.name for f in fm.fontManager.ttflist}
        _fallbacks = [f for f in FALLBACK_FONTS if f in known]
    return _fallbacks


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.family"] = ["DejaVu Sans", *fallback_fonts()]
    return plt


def plot_confusion(ev: Evaluation, path: Path) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()

    n = len(ev.labels)
    size = max(4.5, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ConfusionMatrixDisplay(np.array(ev.confusion), display_labels=ev.labels).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if n > 4 else "horizontal")
    ax.set_title(f"Test set: accuracy {ev.accuracy:.1%}, macro-F1 {ev.macro_f1:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training(step_loss: list[float], val_f1: list[float], best_epoch: int, path: Path,
                  loss_name: str = "cross-entropy", no_training: str | None = None) -> None:
    """The loss per step and validation macro-F1 per epoch; ``no_training`` says why there are none."""
    plt = pyplot()
    if no_training:
        fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
        ax.axis("off")
        ax.text(0.5, 0.55, no_training, ha="center", va="center", fontsize=12)
        if val_f1:
            ax.text(0.5, 0.35, f"validation macro-F1 {val_f1[-1]:.3f}", ha="center", va="center", fontsize=11)
        fig.savefig(path)
        plt.close(fig)
        return

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    steps = np.arange(1, len(step_loss) + 1)
    ax1.plot(steps, step_loss, color="#9ab", lw=0.8, label="per step")
    if len(step_loss) >= 5:
        k = max(2, len(step_loss) // 20)
        smooth = np.convolve(step_loss, np.ones(k) / k, mode="valid")
        ax1.plot(steps[k - 1:], smooth, color="#1f4e79", lw=1.8, label=f"mean of {k}")
    ax1.set(title="Training loss", xlabel="step", ylabel=loss_name)
    ax1.legend()
    epochs = np.arange(1, len(val_f1) + 1)
    ax2.plot(epochs, val_f1, marker="o", color="#2e7d32")
    if best_epoch:
        ax2.axvline(best_epoch, color="#999", ls="--", lw=1)
        ax2.annotate("kept", (best_epoch, val_f1[best_epoch - 1]), textcoords="offset points", xytext=(6, -12))
    ax2.set(title="Validation macro-F1", xlabel="epoch", ylim=(0, 1.02), xticks=epochs)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def advice(ev: Evaluation, baseline: dict, label_counts: dict[str, int], warnings: list, history,
           layers: tuple[int, int], teacher: dict | None = None, probe: dict | None = None,
           method: str = "full") -> list[str]:
    """A few sentences a student can act on, most useful first. ``teacher``: the distillation teacher's
    scores; ``probe``: the frozen base's (a linear probe on all its layers, before any training)."""
    tips: list[str] = []
    if teacher is not None and not teacher.get("worth_copying", True):
        refs = ", ".join(f"{name} {v:.3f}" for name, v in teacher["val_references"].items())
        tips.append(f"The {teacher['layers']}-layer teacher was no better on validation ({teacher['val_macro_f1']:.3f}) "
                    f"than the cheap references ({refs}), so the student copied a weak teacher. Give the teacher "
                    "more epochs (teacher_epochs) or a smaller learning rate, or train with method probe or full "
                    "instead of distilling.")
    if probe is not None and method == "probe":
        tips.append(f"This model is the frozen base ({layers[0]} of {layers[1]} layers) with a linear head fitted on "
                    f"its sentence embeddings: nothing in the encoder was trained. Train with method full to see "
                    f"what fine-tuning adds (the frozen base with all {layers[1]} layers scores "
                    f"{probe['macro_f1']:.3f}).")
    elif probe is not None:
        added = ev.macro_f1 - probe["macro_f1"]
        if added > 0.01:
            tips.append(f"Fine-tuning added {added:.3f} macro-F1 to what the frozen base already knew (a linear probe "
                        f"on all {probe['layers']} frozen layers: {probe['macro_f1']:.3f}; this model: "
                        f"{ev.macro_f1:.3f}).")
        else:
            tips.append(f"This model is no better than the frozen base read by a linear probe ({ev.macro_f1:.3f} vs "
                        f"{probe['macro_f1']:.3f}): fine-tuning added nothing here. Keep more layers, train longer, "
                        "or use method probe, which is as good and trains in seconds.")
    if teacher is not None and teacher["macro_f1"] > 0:
        kept = ev.macro_f1 / teacher["macro_f1"]
        tips.append(f"The {layers[0]}-layer student keeps {kept:.1%} of its {teacher['layers']}-layer teacher's "
                    f"macro-F1 ({ev.macro_f1:.3f} vs {teacher['macro_f1']:.3f})."
                    + ("" if kept >= 0.97 else " Distil with more epochs or augment (copies of each text) to close "
                                               "the gap, or keep more layers."))
    gap = ev.macro_f1 - baseline["macro_f1"]
    if gap < -0.01:
        tips.append(f"The simple TF-IDF baseline scores higher (macro-F1 {baseline['macro_f1']:.3f} vs "
                    f"{ev.macro_f1:.3f}). With this little data, try more epochs, all {layers[1]} layers "
                    f"(layers {layers[1]}), or more examples.")
    elif gap <= 0.01:
        tips.append(f"The model is level with the TF-IDF baseline (macro-F1 {ev.macro_f1:.3f} vs "
                    f"{baseline['macro_f1']:.3f}): the task may hinge on keywords; more varied examples would show "
                    "what the transformer adds.")
    else:
        tips.append(f"The model beats the TF-IDF baseline by {gap:.3f} macro-F1 ({ev.macro_f1:.3f} vs "
                    f"{baseline['macro_f1']:.3f}).")
    per_class = {lab: ev.report[lab] for lab in ev.labels if lab in ev.report}
    worst = min(per_class, key=lambda lab: per_class[lab]["f1-score"])
    if per_class[worst]["f1-score"] < 0.9:
        n = label_counts.get(worst, 0)
        tips.append(f"'{worst}' is the weakest class (F1 {per_class[worst]['f1-score']:.2f}, {n} examples): "
                    "add examples of it first, especially ones unlike those it already has.")
    cm = np.array(ev.confusion)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pair = off + off.T
    if pair.max() > 0:
        i, j = np.unravel_index(pair.argmax(), pair.shape)
        tips.append(f"'{ev.labels[i]}' and '{ev.labels[j]}' are confused most often ({int(pair[i, j])} test examples): "
                    "read those rows in the mistakes list and check the labels agree with each other.")
    if history.stopped_for_time:
        tips.append(f"Training stopped after epoch {len(history.epoch_val_f1)} because another epoch would have run "
                    f"past the job's time limit; the weights from epoch {history.best_epoch} were kept. Fewer layers "
                    "or a shorter max_length train faster.")
    elif history.stopped_early:
        tips.append(f"Training stopped early after epoch {len(history.epoch_val_f1)} because validation macro-F1 "
                    f"stayed clearly below its best; the weights from epoch {history.best_epoch} were kept.")
    elif history.best_epoch == len(history.epoch_val_f1) and len(history.epoch_val_f1) > 1 and \
            history.epoch_val_f1[-1] > history.epoch_val_f1[-2] + 0.005:
        tips.append("Validation macro-F1 was still rising in the last epoch: a few more epochs may help.")
    for w in warnings:
        if w.code in ("tokenizer_coverage", "tokenizer_fragmentation", "few_examples", "imbalance", "conflicting_labels", "duplicates"):
            tips.append(f"{w.message}. {w.hint}")
    kept, total = layers
    if kept < total and teacher is None:
        tips.append(f"This model keeps {kept} of {total} layers. Train once with layers {total} to see what "
                    "the pruning costs in macro-F1 and gains in speed.")
    return tips

