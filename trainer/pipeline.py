"""One training run from file to report: ``run_training(spec, progress)``.

Read top to bottom: check data → split → labels → tokenise → (distillation: fine-tune or load the
teacher) → load and prune → fine-tune or distil → evaluate on the test split → baseline → save
everything to a temporary directory → export to ONNX, quantise and choose what to serve → measure
the saved model → rename into place. A failure at any step leaves no output directory behind.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from transformers import set_seed

from core.files import atomic_directory
from core.spec import TrainSpec

from . import data as data_mod
from .artefacts import CONFUSION_PNG, CURVE_PNG, LEARNING_CURVE_PNG, SUSPECTS_CSV, TEST_EXAMPLES
from .batching import encode, first_windows
from .card import model_card
from .check import check_file
from .classifier import load_classifier
from .device import pick_device, set_threads
from .distillation import distill, load_teacher, teacher_for
from .errors import TrainerError
from .evaluate import advice, evaluate, plot_confusion, plot_training, tfidf_baseline
from .explain import explain_examples
from .export import build_serving
from .hidden import HiddenTest, score_hidden
from .insight import data_insight, insight_advice, plot_learning_curve, write_suspects
from .latency import measure_latency, torch_latency_ms
from .models import count_parameters, load_tokenizer, resolve_base
from .predict import Predictor
from .probe import embeddings, frozen_probe, probe_model, start_head_from
from .progress import Progress, ProgressFn, ignore
from .provenance import content_hash, file_hash, package_versions
from .pruning import num_layers, prune_layers, select_layers
from .train import History, fine_tune, finish_method, predict_proba, prepare_method


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
                "engine", "torch_ms_per_message", "probe_macro_f1", "suspect_rows", "suspect_rows_csv",
                "learning_curve", "learning_curve_advice", "learning_curve_png")
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
    started = time.perf_counter()
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
    splits = data_mod.share_of_training(data_mod.split_dataset(ds, spec.limits, spec.seed, validation),
                                        spec.train_share, spec.seed)
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
        teacher, teacher_report, frozen = teacher_for(spec, base, given_teacher, labels, tokenizer, train_f, val_f,
                                                   test_f, y_test, splits, device, progress, deadline)
        model = copy.deepcopy(teacher)
        base_name = teacher_report["base_model"]
    else:
        model = load_classifier(base, dict(enumerate(labels)))
        base_name = base.name
        frozen = frozen_probe(model, tokenizer, train_f, val_f, test_f, y_test, device, spec.seed, progress)
    frozen_row = frozen.row if frozen is not None else None
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
    insight = data_insight(frozen, splits, label2id, labels, spec.seed, progress)
    tips = advice(ev, baseline, ds.label_counts, ds.warnings, history, (len(keep), total_layers), teacher_report,
                  frozen_row, spec.method) + insight_advice(insight)
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
        if insight.get("learning_curve"):
            plot_learning_curve(insight["learning_curve"], tmp / LEARNING_CURVE_PNG)
        write_suspects(insight.get("suspect_rows") or [], tmp / SUSPECTS_CSV, ds.text_column, ds.label_column)
        plot_training(history.step_loss, history.epoch_val_f1, history.best_epoch, tmp / CURVE_PNG,
                      "distillation loss" if spec.method == "distill" else "cross-entropy",
                      no_training="probe: the encoder is frozen, only its linear head was fitted"
                      if spec.method == "probe" else None)
        ms_per_message = measure_latency(tmp, splits.test.texts)
        served = Predictor(tmp)
        # why the model labelled the examples of each cell of the confusion matrix so, as the served model
        # says it: the report's most confident mistakes always, the others for 5 % of the run so far
        explain_examples(served, ev.examples, max(1.0, 0.05 * (time.perf_counter() - started)),
                         first={x["row"] for x in ev.mistakes})
        why = {x["row"]: x.get("explanation") for x in ev.examples}
        for mistake in ev.mistakes:
            mistake["explanation"] = why[mistake["row"]]
        (tmp / TEST_EXAMPLES).write_text(json.dumps(ev.examples, ensure_ascii=False), encoding="utf-8")
        hidden_scores = None
        if hidden is not None:
            progress(Progress("evaluating", message="the assignment's hidden test set"))
            hidden_scores = score_hidden(served, hidden, spec.limits, splits.train.texts, splits.train.labels,
                                         spec.seed, frozen_base_labels(frozen, base, labels, tokenizer, spec, device))
        size_bytes = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
        metrics = {
            "accuracy": ev.accuracy, "macro_f1": ev.macro_f1,
            "baseline_accuracy": baseline["accuracy"], "baseline_macro_f1": baseline["macro_f1"],
            "baseline_model": baseline["model"],
            "probe": frozen_row, "probe_macro_f1": frozen_row["macro_f1"] if frozen_row else None,
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
            "suspect_rows": insight.get("suspect_rows"), "learning_curve": insight.get("learning_curve"),
            "learning_curve_advice": insight.get("learning_curve_advice"),
            "insight_seconds": insight.get("seconds"),  # what the suspect list and the curve took
            "wall_seconds": round(time.perf_counter() - started, 2),  # the whole run until now (before saving)
            "suspect_rows_csv": str((out_dir / SUSPECTS_CSV).resolve()),
            "test_examples_json": str((out_dir / TEST_EXAMPLES).resolve()),
            "learning_curve_png": str((out_dir / LEARNING_CURVE_PNG).resolve()) if insight.get("learning_curve")
            else None,
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


def frozen_base_labels(frozen, base, labels: list[str], tokenizer, spec: TrainSpec, device):
    """The frozen base read by this run's linear probe, as a function of texts (for the hidden set: does the
    submission beat what its base knew?), or None without a probe. The base is loaded again: the run's own
    copy was pruned and fine-tuned."""
    if frozen is None:
        return None

    def predict(texts: list[str]) -> list[str]:
        encoder = load_classifier(base, dict(enumerate(labels)))
        x = embeddings(encoder, encode(tokenizer, texts, spec.max_length), tokenizer, device)
        return [labels[i] for i in frozen.probe.logits(x).argmax(1)]

    return predict
