"""One training run from file to report: ``run_training(spec, progress)``.

Read top to bottom: check data → split → labels → tokenise → (distillation: fine-tune or load the
teacher) → load and prune → fine-tune or distil → evaluate on the test split → baseline → save
everything to a temporary directory → export to ONNX, quantise and choose what to serve → measure
the saved model → rename into place. A failure at any step leaves no output directory behind.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from transformers import set_seed

from core.files import atomic_directory
from core.spec import TrainSpec

from . import data as data_mod
from .augment import augment
from .batching import TEXT, count_texts, encode, first_windows, text_labels
from .check import check_file
from .classifier import load_classifier, load_model_dir
from .device import pick_device, set_threads
from .errors import TrainerError
from .evaluate import advice, evaluate, plot_confusion, plot_training, tfidf_baseline
from .export import build_serving
from .hidden import HiddenTest, score_hidden
from .losses import IGNORE, TinyBertLoss
from .models import count_parameters, load_tokenizer, resolve_base
from .predict import Predictor
from .probe import embeddings, probe_model, start_head_from
from .progress import Progress, ProgressFn, ignore
from .provenance import content_hash, file_hash, package_versions
from .pruning import num_layers, prune_layers, select_layers
from .train import History, fine_tune, finish_method, predict_proba, prepare_method

CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "training_curve.png"


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict  # what metrics.json holds
    hidden: dict | None = None  # aggregates on an assignment's hidden test set; never written to the model directory

    @property
    def confusion_png(self) -> Path:
        return self.model_dir / CONFUSION_PNG

    @property
    def curve_png(self) -> Path:
        return self.model_dir / CURVE_PNG

    def summary(self) -> dict:
        """The fields ``tinytutor train --json`` prints (a contract for scripts)."""
        keys = ("accuracy", "macro_f1", "baseline_macro_f1", "baseline_accuracy", "labels", "layers_kept",
                "layers_base", "params", "params_base", "train_seconds", "ms_per_message", "size_bytes",
                "best_epoch", "method", "base_model", "model_dir", "confusion_matrix_png", "training_curve_png",
                "engine", "torch_ms_per_message", "probe_macro_f1")
        out = {k: self.metrics[k] for k in keys}
        if "teacher" in self.metrics:  # distillation
            out |= {k: self.metrics[k] for k in ("teacher_macro_f1", "teacher_params", "retained")}
        return out


def default_out_dir(data_path: str, runs_dir: str | Path = "runs") -> Path:
    """``runs/<file stem>-<UTC time>``: where a run goes when the caller names no directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(runs_dir) / f"{Path(data_path).stem}-{stamp}"


def run_training(spec: TrainSpec, progress: ProgressFn = ignore, registry: dict[str, str] | None = None,
                 hidden: HiddenTest | None = None) -> TrainResult:
    """``hidden``: an assignment's hidden test set, scored after everything else (see trainer.hidden)."""
    out_dir = Path(spec.out_dir) if spec.out_dir else default_out_dir(spec.data_path)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainerError(f"The output directory {out_dir} already has files in it; choose another --out")
    # the whole run's training budget (a job's time limit, less time to evaluate and export): the teacher
    # and the student of a distillation share it
    deadline = time.perf_counter() + spec.time_budget_seconds if spec.time_budget_seconds else None
    threads = set_threads(spec.threads)
    set_seed(spec.seed)  # before the new classifier head is initialised
    device = pick_device(spec.device)

    progress(Progress("checking", message=f"reading {Path(spec.data_path).name}"))
    base = resolve_base(spec.base, registry)
    tokenizer = load_tokenizer(base)
    ds, info = check_file(spec, registry, base, tokenizer)
    validation = None
    if spec.validation_path:
        validation = data_mod.load_dataset(spec.validation_path, spec.limits, ds.text_column, ds.label_column,
                                           for_training=False)
    splits = data_mod.split_dataset(ds, spec.limits, spec.seed, validation)
    labels = sorted(set(ds.labels))
    given_teacher = None
    if spec.method == "distill" and spec.teacher:
        given_teacher = load_teacher(spec.teacher, labels)
        labels = [given_teacher.config.id2label[i] for i in range(given_teacher.config.num_labels)]
    label2id = {lab: i for i, lab in enumerate(labels)}

    def feats(part):
        return encode(tokenizer, part.texts, spec.max_length, [label2id[y] for y in part.labels])

    train_f, val_f, test_f = feats(splits.train), feats(splits.validation), feats(splits.test)
    y_test = [label2id[y] for y in splits.test.labels]
    progress(Progress("loading", message=f"base model {base.name}, {len(labels)} labels, "
                                        f"{len(splits.train)}/{len(splits.validation)}/{len(splits.test)} train/val/test"))
    teacher_report = None
    if spec.method == "distill":
        teacher, teacher_report, frozen = _teacher(spec, base, given_teacher, labels, tokenizer, train_f, val_f,
                                                   test_f, y_test, splits, device, progress, deadline)
        model = copy.deepcopy(teacher)
        base_name = teacher_report["base_model"]
    else:
        model = load_classifier(base, dict(enumerate(labels)))
        base_name = base.name
        frozen, _ = frozen_probe(model, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed, progress)
    params_base = count_parameters(model)
    total_layers = num_layers(model.config)
    keep = select_layers(total_layers, spec.layers, spec.strategy, spec.layer_list)
    prune_layers(model, keep, base_name, "explicit" if spec.layer_list else spec.strategy)
    params = count_parameters(model)
    probe = None
    if spec.method != "distill" and hasattr(model, "embed"):
        # LP-FT: the head starts from a probe on the cut encoder's own embeddings (for the probe method,
        # that probe is the whole model)
        progress(Progress("loading", message=f"fitting a linear probe on {len(keep)} frozen layers"))
        # fitted on what the model will be trained on (each text's first window) to start its head, on
        # every window when the probe is the model (it is served reading them all)
        probe = probe_model(model, tokenizer, train_f if spec.method == "probe" else first_windows(train_f), val_f,
                            device, spec.seed)
        start_head_from(model, probe)
    model = prepare_method(model, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    if spec.method == "distill":
        history = distill(model, teacher, tokenizer, splits.train.texts, train_f, val_f, keep, spec, device, progress,
                          deadline)
        teacher_report["ms_per_message"] = round(torch_latency_ms(teacher, tokenizer, splits.test.texts,
                                                                  spec.max_length), 2)
        del teacher
    elif spec.method == "probe":
        history = History(epoch_val_f1=[probe.val_macro_f1], best_epoch=0)
    else:
        history = fine_tune(model, tokenizer, train_f, val_f, spec, device, progress, deadline=deadline)
    model = finish_method(model, spec)

    progress(Progress("evaluating", message="test split and TF-IDF baseline"))
    proba = predict_proba(model, test_f, tokenizer, device).numpy()
    ev = evaluate(y_test, proba, labels, splits.test.texts, splits.test.rows)
    baseline = tfidf_baseline(splits.train.texts, splits.train.labels, splits.test.texts, splits.test.labels, spec.seed)
    tips = advice(ev, baseline, ds.label_counts, ds.warnings, history, (len(keep), total_layers), teacher_report,
                  frozen, spec.method)
    torch_ms = torch_latency_ms(model, tokenizer, splits.test.texts, spec.max_length)

    progress(Progress("saving", message=str(out_dir)))
    with atomic_directory(out_dir) as tmp:  # out_dir, if it exists, is empty (checked above)
        model.config.tinytutor_max_length = spec.max_length
        model.config.tinytutor_method = spec.method
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        progress(Progress("exporting", message="ONNX export and int8 quantisation, checked on the test split"))
        serving = build_serving(model, tokenizer, tmp, splits.test.texts, y_test, spec.max_length,
                                splits.train.texts + splits.validation.texts, spec.seed)
        model.config.tinytutor_serving = serving["file"]  # which file Predictor serves
        model.config.save_pretrained(tmp)
        plot_confusion(ev, tmp / CONFUSION_PNG)
        plot_training(history.step_loss, history.epoch_val_f1, history.best_epoch, tmp / CURVE_PNG,
                      "distillation loss" if spec.method == "distill" else "cross-entropy",
                      no_training="probe: the encoder is frozen, only its linear head was fitted"
                      if spec.method == "probe" else None)
        ms_per_message = measure_latency(tmp, splits.test.texts)
        hidden_scores = None
        if hidden is not None:
            progress(Progress("evaluating", message="the assignment's hidden test set"))
            hidden_scores = score_hidden(Predictor(tmp), hidden, spec.limits, splits.train.texts,
                                         splits.train.labels, spec.seed)
        size_bytes = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
        metrics = {
            "accuracy": ev.accuracy, "macro_f1": ev.macro_f1,
            "baseline_accuracy": baseline["accuracy"], "baseline_macro_f1": baseline["macro_f1"],
            "baseline_model": baseline["model"],
            "probe": frozen, "probe_macro_f1": frozen["macro_f1"] if frozen else None,
            "labels": labels, "label_counts": ds.label_counts,
            "layers_kept": keep, "layers_base": total_layers, "params": params, "params_base": params_base,
            "params_trained": trainable,
            "train_seconds": round(history.train_seconds + (teacher_report or {}).get("train_seconds", 0), 2),
            "tokens_per_second": round(history.train_tokens / max(history.train_seconds, 1e-9), 1),
            "padding_share": round(1 - history.train_tokens / max(1, history.padded_tokens), 4),
            "ms_per_message": round(ms_per_message, 2), "torch_ms_per_message": round(torch_ms, 2),
            "size_bytes": size_bytes, "served_size_bytes": (tmp / serving["file"]).stat().st_size,
            "serving": serving, "engine": serving["engine"],
            "best_epoch": history.best_epoch, "epochs_run": len(history.epoch_val_f1),
            "stopped_early": history.stopped_early, "stopped_for_time": history.stopped_for_time,
            "epoch_ceiling": history.epoch_ceiling,
            "validation_macro_f1": history.epoch_val_f1,
            "method": spec.method, "base_model": base_name, "strategy": spec.strategy,
            "pooling": getattr(model, "pooling", None),  # None: a [CLS]-and-pooler transformers classifier
            "split": {"source": splits.source, "train": len(splits.train), "validation": len(splits.validation),
                      "test": len(splits.test)},
            "data": {k: info[k] for k in ("rows", "encoding", "format", "text_column", "label_column", "tokenizer")},
            "report": ev.report, "report_text": ev.report_text, "confusion_matrix": ev.confusion,
            "mistakes": ev.mistakes, "advice": tips, "warnings": [w.to_dict() for w in ds.warnings],
            "device": device.type, "threads": threads,
            "spec": spec.to_dict(),
            "provenance": provenance(spec, base),
            "model_dir": str(out_dir.resolve()),
            "confusion_matrix_png": str((out_dir / CONFUSION_PNG).resolve()),
            "training_curve_png": str((out_dir / CURVE_PNG).resolve()),
        }
        if teacher_report is not None:
            metrics |= {"teacher": teacher_report, "teacher_macro_f1": teacher_report["macro_f1"],
                        "teacher_params": teacher_report["params"],
                        "retained": round(ev.macro_f1 / teacher_report["macro_f1"], 4)
                        if teacher_report["macro_f1"] > 0 else None}
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(metrics), encoding="utf-8")
    progress(Progress("done", message=f"macro-F1 {ev.macro_f1:.3f} (baseline {baseline['macro_f1']:.3f})"))
    return TrainResult(out_dir, metrics, hidden_scores)


def provenance(spec: TrainSpec, base) -> dict:
    """What reproducing this run takes beyond its spec: the exact inputs' hashes and the package versions."""
    out = {"seed": spec.seed, "data_sha256": file_hash(spec.data_path),
           "base_model": base.name, "base_sha256": content_hash(base.source) if base.local else None,
           "versions": package_versions()}
    if spec.teacher:
        out["teacher_sha256"] = content_hash(spec.teacher)
    return out


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


def frozen_probe(model, tokenizer, train_f, val_f, test_f, y_test, device, seed, progress):
    """What the base knew before any fine-tuning: a linear probe on all of its layers, frozen, scored on
    the test split (the report's "frozen base" row), and the probe. (None, None) for a classifier that is
    not a :class:`PooledClassifier` (a teacher saved before pooling was read as the base was trained)."""
    if not hasattr(model, "embed"):
        return None, None
    progress(Progress("loading", message="the frozen base and a linear probe (what it knows before training)"))
    started = time.perf_counter()
    probe = probe_model(model, tokenizer, train_f, val_f, device, seed)
    pred = probe.logits(embeddings(model, test_f, tokenizer, device)).argmax(1)
    n = model.classifier.out_features
    return {"macro_f1": float(f1_score(y_test, pred, labels=list(range(n)), average="macro", zero_division=0)),
            "accuracy": float((pred == np.array(y_test)).mean()), "val_macro_f1": probe.val_macro_f1,
            "layers": num_layers(model.config), "C": probe.C, "seconds": round(time.perf_counter() - started, 2),
            "model": "the frozen base's sentence embeddings + logistic regression"}, probe


def _teacher(spec, base, given, labels, tokenizer, train_f, val_f, test_f, y_test, splits, device, progress,
             deadline=None):
    """The fine-tuned teacher (given, or the base with all its layers fine-tuned here, its head started from
    the frozen probe), its test scores, and the frozen probe's row. A teacher fine-tuned here is checked
    against the probe and the TF-IDF baseline on validation: ``worth_copying`` says whether it beat both."""
    frozen = None
    if given is None:
        teacher = load_classifier(base, dict(enumerate(labels)))
        frozen, probe = frozen_probe(teacher, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed,
                                     progress)
        if probe is not None:
            start_head_from(teacher, probe)
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
        frozen, _ = frozen_probe(frozen_base, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed,
                                 progress)
        del frozen_base
    teacher.to(device).eval()
    proba = predict_proba(teacher, test_f, tokenizer, device).numpy()
    f1 = float(f1_score(y_test, proba.argmax(1), labels=list(range(len(labels))), average="macro", zero_division=0))
    tfidf_val = tfidf_baseline(splits.train.texts, splits.train.labels, splits.validation.texts,
                               splits.validation.labels, spec.seed)["macro_f1"]
    references = {"TF-IDF": tfidf_val} | ({"the frozen probe": frozen["val_macro_f1"]} if frozen else {})
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


def torch_latency_ms(model, tokenizer, texts: list[str], max_length: int, n: int = 30) -> float:
    """Median milliseconds for PyTorch (fp32, on the CPU) to tokenise and classify one message."""
    import torch

    model = model.to("cpu").eval()
    sample = (texts * (n // max(1, len(texts)) + 1))[:n]
    times = []
    with torch.inference_mode():
        for i, t in enumerate(sample + sample[:3]):
            start = time.perf_counter()
            model(**tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt"))
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def message_latencies_ms(predictor: Predictor, texts: list[str], warmup: int = 3) -> list[float]:
    """Milliseconds to classify each text alone, after a few warm-up calls."""
    for t in texts[:warmup]:
        predictor.predict([t])
    times = []
    for t in texts:
        start = time.perf_counter()
        predictor.predict([t])
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure_latency(model_dir: Path, texts: list[str], n: int = 40) -> float:
    """Median milliseconds to classify one message through the same path ``tinytutor predict`` uses."""
    sample = (texts * (n // max(1, len(texts)) + 1))[:n]
    return statistics.median(message_latencies_ms(Predictor(model_dir), sample))


def comparison_rows(m: dict) -> list[tuple[str, float]]:
    """The report's three rows: the TF-IDF baseline, the frozen base read by a linear probe, this model."""
    rows = [("TF-IDF + logistic regression (same split)", m["baseline_macro_f1"])]
    if m.get("probe"):
        rows.append((f"frozen base, {m['probe']['layers']} layers + linear probe", m["probe"]["macro_f1"]))
    trained = "linear probe on the frozen cut" if m["method"] == "probe" else m["method"]
    rows.append((f"this model ({len(m['layers_kept'])} layers, {trained})", m["macro_f1"]))
    return rows


def comparison_table(m: dict) -> str:
    lines = ["| model | test macro-F1 |", "|---|---|"]
    lines += [f"| {name} | {f1:.3f} |" for name, f1 in comparison_rows(m)]
    return "\n".join(lines)


def model_card(m: dict) -> str:
    per_class = "\n".join(
        f"| {lab} | {m['report'][lab]['precision']:.3f} | {m['report'][lab]['recall']:.3f} | "
        f"{m['report'][lab]['f1-score']:.3f} | {int(m['report'][lab]['support'])} |" for lab in m["labels"])
    tips = "\n".join(f"- {t}" for t in m["advice"])
    teacher = ""
    if m.get("teacher"):
        t = m["teacher"]
        teacher = f"""
## Distillation

Distilled (TinyBERT task distillation) from a {t['layers']}-layer teacher ({t['source']}).

| model | layers | parameters | weights MB | test macro-F1 | ms/message (PyTorch) |
|---|---|---|---|---|---|
| teacher | {t['layers']} | {t['params']:,} | {t['size_bytes'] / 1e6:.1f} | {t['macro_f1']:.3f} | {t['ms_per_message']:.1f} |
| student | {len(m['layers_kept'])} | {m['params']:,} | {m['size_bytes'] / 1e6:.1f} | {m['macro_f1']:.3f} | {m['torch_ms_per_message']:.1f} |

The student keeps {m['retained']:.1%} of the teacher's macro-F1.
"""
    serving = m["serving"]
    prov = m["provenance"]
    if m.get("pooling"):
        usage = f"""It reads the encoder by {m['pooling']} pooling, as the base was trained, in the sentence-transformers
layout; any sentence-transformers install loads it (no `trust_remote_code`), and its embeddings are the logits:

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{m['model_dir']}")
logits = model.encode(["a message to classify"])
label = model[0].auto_model.config.id2label[int(logits[0].argmax())]
```"""
    else:
        usage = f"""```python
from transformers import pipeline
clf = pipeline("text-classification", model="{m['model_dir']}")
```"""
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    return f"""# TinyTutor model

A text classifier for {len(m['labels'])} labels, fine-tuned ({m['method']}) from `{m['base_model']}` with
{len(m['layers_kept'])} of its {m['layers_base']} encoder layers kept (layers {m['layers_kept']}, strategy
`{m['strategy']}`): {m['params']:,} parameters instead of {m['params_base']:,}.

{usage}

## Test split ({m['split']['test']} examples, never seen in training)

{comparison_table(m)}

accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}.

| label | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

Trained on {m['split']['train']} examples ({m['split']['source']} split), validated on
{m['split']['validation']}; best epoch {m['best_epoch']} of {m['epochs_run']}, {m['train_seconds']:.0f} s on
{m['device']}. Weights are {m['size_bytes'] / 1e6:.1f} MB.
{teacher}
## Serving

Served with {serving['engine']} (`{serving['file']}`, {m['served_size_bytes'] / 1e6:.1f} MB): {serving['why']}.
One message takes {m['ms_per_message']:.2f} ms this way, {m['torch_ms_per_message']:.1f} ms with PyTorch fp32.

## Advice

{tips}

## Reproducing it

Seed {prov['seed']}; base model `{prov['base_model']}` (content SHA-256 `{prov['base_sha256'] or 'hub id, not hashed'}`);
data SHA-256 `{prov['data_sha256']}`; {versions}. The full training spec is in `metrics.json` (`spec`).
"""
