"""Distillation, TinyBERT's way: the teacher (given, or fine-tuned here from the whole base, its head
started from the frozen probe) and the student's training against it with ``losses.TinyBertLoss``.
``run_training`` calls these in its distillation steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from .augment import augment
from .batching import TEXT, count_texts, encode, text_labels
from .classifier import load_classifier, load_model_dir
from .errors import TrainerError
from .evaluate import tfidf_baseline
from .losses import IGNORE, TinyBertLoss
from .models import count_parameters
from .probe import frozen_probe, start_head_from
from .progress import Progress
from .pruning import num_layers
from .train import fine_tune, predict_proba


def load_teacher(path: str, labels: list[str]):
    """A fine-tuned classifier directory to distil from; its labels must be this file's labels."""
    root = Path(path)
    if not (root / "config.json").is_file() or not any(root.glob("*.safetensors")):
        raise TrainerError(f"The teacher {path} is not a trained model directory (config.json and .safetensors weights)")
    teacher = load_model_dir(root)
    mismatch = teacher_label_mismatch([teacher.config.id2label[i] for i in range(teacher.config.num_labels)], labels)
    if mismatch:
        raise TrainerError(mismatch)
    return teacher


def teacher_label_mismatch(teacher_labels: list[str], data_labels: list[str]) -> str | None:
    """What a student must hear when a teacher was trained on other labels than the file has; None if they match."""
    missing = sorted(set(data_labels) - set(teacher_labels))
    extra = sorted(set(teacher_labels) - set(data_labels))
    if not missing and not extra:
        return None
    parts = ([f"labels the teacher never learned: {', '.join(missing)}"] if missing else []) + \
            ([f"teacher labels missing from this file: {', '.join(extra)}"] if extra else [])
    return ("The teacher was trained on other labels than this file has (" + "; ".join(parts) + "). Pick a "
            "teacher trained on the same labels, or leave the teacher out to fine-tune one on this file first.")


def teacher_for(spec, base, given, labels, tokenizer, train_f, val_f, test_f, y_test, splits, device, progress,
             deadline=None):
    """The fine-tuned teacher (given, or the base with all its layers fine-tuned here, its head started from
    the frozen probe), its test scores, and the frozen base (``probe.FrozenBase``). A teacher fine-tuned here is checked
    against the probe and the TF-IDF baseline on validation: ``worth_copying`` says whether it beat both."""
    frozen = None
    if given is None:
        teacher = load_classifier(base, dict(enumerate(labels)))
        frozen = frozen_probe(teacher, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed, progress)
        if frozen is not None:
            start_head_from(teacher, frozen.probe)
        teacher_spec = replace(spec, method="full", lr=spec.lr, epochs=spec.teacher_epochs or spec.epochs)
        hist = fine_tune(teacher, tokenizer, train_f, val_f, teacher_spec, device, progress, stage="teacher",
                         deadline=deadline)
        source, base_name, seconds = f"{base.name}, all layers fine-tuned on this file", base.name, hist.train_seconds
        val_f1 = hist.epoch_val_f1[hist.best_epoch - 1] if hist.best_epoch else 0.0  # the epoch kept
    else:
        teacher, source, seconds = given, str(spec.teacher), 0.0
        base_name = (getattr(teacher.config, "tinytutor_pruning", None) or {}).get("base_model", str(spec.teacher))
        val_proba = predict_proba(teacher.to(device), val_f, tokenizer, device).numpy()
        val_f1 = float(f1_score(text_labels(val_f), val_proba.argmax(1), average="macro", zero_division=0))
        frozen_base = load_classifier(base, dict(enumerate(labels)))
        frozen = frozen_probe(frozen_base, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed, progress)
        del frozen_base
    teacher.to(device).eval()
    proba = predict_proba(teacher, test_f, tokenizer, device).numpy()
    f1 = float(f1_score(y_test, proba.argmax(1), labels=list(range(len(labels))), average="macro", zero_division=0))
    tfidf_val = tfidf_baseline(splits.train.texts, splits.train.labels, splits.validation.texts,
                               splits.validation.labels, spec.seed)["macro_f1"]
    references = {"TF-IDF": tfidf_val} | ({"the frozen probe": frozen.row["val_macro_f1"]} if frozen else {})
    below = {name: v for name, v in references.items() if val_f1 <= v}
    if below:
        progress(Progress("loading", message="the teacher is no better than " + " and ".join(
            f"{name} ({v:.3f})" for name, v in below.items()) + f" on validation ({val_f1:.3f})"))
    params = count_parameters(teacher)
    return teacher, {
        "source": source, "base_model": base_name, "macro_f1": f1,
        "accuracy": float((proba.argmax(1) == np.array(y_test)).mean()),
        "val_macro_f1": val_f1, "val_references": references, "worth_copying": not below,
        "layers": num_layers(teacher.config), "params": params,
        "size_bytes": sum(p.numel() * p.element_size() for p in teacher.parameters()),
        "train_seconds": round(seconds, 2),
    }, frozen


def distill(student, teacher, tokenizer, train_texts, train_f, val_f, keep, spec, device, progress,
            deadline: float | None = None):
    """TinyBERT task distillation of ``student`` (cut from ``teacher``), with optional augmentation."""
    loss = TinyBertLoss(tuple(keep), spec.temperature, spec.soft_weight, spec.hard_weight, spec.hidden_weight,
                        spec.attention_weight)
    features = list(train_f)
    if spec.augment:
        extra = augment(train_texts, spec.augment, spec.seed, tokenizer.mask_token or "[MASK]")
        offset = count_texts(features)  # the copies are texts of their own, after the originals
        features += [f | {TEXT: f[TEXT] + offset} for f in encode(tokenizer, extra, spec.max_length,
                                                                     [IGNORE] * len(extra))]
    eager = loss.needs_internals and spec.attention_weight > 0  # SDPA attention returns no attention maps
    if eager:
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
    try:
        return fine_tune(student, tokenizer, features, val_f, spec, device, progress, loss_fn=loss, teacher=teacher,
                         deadline=deadline)
    finally:
        if eager:
            student.set_attn_implementation("sdpa")
