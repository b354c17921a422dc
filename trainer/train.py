"""The fine-tuning loop: methods (full, LoRA, head), AdamW with no-decay groups, warm-up and linear
decay, clipping, early stopping on validation macro-F1 with the best weights restored."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from sklearn.metrics import f1_score
from transformers import get_scheduler

from core.spec import TrainSpec

from .batching import (
    count_texts,
    eval_loader,
    first_windows,
    mean_by_text,
    text_labels,
    texts_of,
    train_loader,
    unsort,
)
from .device import autocast
from .losses import LossFn, cross_entropy
from .progress import Progress, ProgressFn

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight")
# The automatic epoch ceiling (epoch_ceiling). On the 21 chat topics (3 layers, probe-started head, lr
# 1e-4) test macro-F1 rose until about step 500 (epoch 12 of 41 steps) and was flat after; 24 steps a
# label gives 13 epochs there, and 17 on the 5-topic example, where the 300-step floor applies. Early
# stopping on validation ends most runs before the ceiling.
MIN_STEPS = 300
STEPS_PER_LABEL = 24
MIN_EPOCHS = 4


@dataclass
class History:
    step_loss: list[float] = field(default_factory=list)  # training loss at every step
    epoch_val_f1: list[float] = field(default_factory=list)
    epoch_val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    stopped_for_time: bool = False  # the next epoch would have run past the job's time budget
    epoch_ceiling: int = 0  # the most epochs this run could have had
    train_seconds: float = 0.0
    train_tokens: int = 0  # real (non-pad) tokens seen in training
    padded_tokens: int = 0  # tokens including padding


def prepare_method(model, spec: TrainSpec):
    """Make the model train what the method says. LoRA goes through peft; returns the model to train."""
    if spec.method in ("full", "distill"):  # a distilled student trains all its weights
        return model
    if spec.method == "probe":  # the head was fitted by logistic regression; nothing is trained here
        for p in model.parameters():
            p.requires_grad = False
        return model
    if spec.method == "head":
        for name, p in model.named_parameters():
            p.requires_grad = _is_head(model, name)
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    targets = {"distilbert": ["q_lin", "v_lin"]}.get(model.config.model_type, ["query", "value"])
    # The head (classifier, and the pooler it reads) is new or task-specific: train it fully.
    head = [n for n, m in model.named_children() if n != model.base_model_prefix and next(m.parameters(), None) is not None]
    if getattr(model.base_model, "pooler", None) is not None:
        head.append("pooler")
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=spec.lora_r, lora_alpha=spec.lora_alpha,
                        lora_dropout=spec.lora_dropout, target_modules=targets, modules_to_save=head)
    return get_peft_model(model, config)


def _is_head(model, name: str) -> bool:
    """The classifier and the pooler (or DistilBERT's pre-classifier): what sits above the encoder."""
    base = model.base_model_prefix + "."
    return not name.startswith(base) or ".pooler." in name or name.startswith(base + "pooler.")


def finish_method(model, spec: TrainSpec):
    """After LoRA, fold the adapters into the weights so the saved model is a plain transformers model."""
    if spec.method == "lora":
        return model.merge_and_unload()
    return model


def epoch_ceiling(spec: TrainSpec, n_train: int, n_labels: int) -> int:
    """How many epochs a run may take: ``spec.epochs`` when given, else enough optimiser steps for the
    data and its labels (``STEPS_PER_LABEL`` per label, at least ``MIN_STEPS``), within ``MIN_EPOCHS`` and
    ``spec.max_epochs``. Early stopping on validation usually ends a run well before it."""
    if spec.epochs is not None:
        return spec.epochs
    steps_per_epoch = max(1, math.ceil(n_train / spec.batch_size))
    wanted = math.ceil(max(MIN_STEPS, STEPS_PER_LABEL * n_labels) / steps_per_epoch)
    return max(1, min(spec.max_epochs, max(MIN_EPOCHS, wanted)))


def validation_noise(f1: float, n: int) -> float:
    """How far a validation score of ``f1`` on ``n`` examples moves by chance: one binomial standard error,
    sqrt(f1 (1 - f1) / n). On the 21 chat topics (186 validation lines) that is 0.034, and the epoch with
    the best validation macro-F1 was 1 to 4 points *worse* on the test split than the last epoch in 4 of
    4 runs: the best of many noisy readings is mostly luck. So a run stops only after ``patience`` epochs
    clearly below its best, and keeps its last epoch's weights unless the best was clearly better."""
    return (max(f1, 0.0) * max(1.0 - f1, 0.0) / max(n, 1)) ** 0.5


def param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if any(k in name for k in NO_DECAY) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def predict_proba(model, features: list[dict], tokenizer, device, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities [texts, labels] for already-tokenised features, in text order: a long text's
    logits are the mean of its windows' (see trainer.batching)."""
    logits = predict_logits(model, features, tokenizer, device, batch_size)
    if not len(logits):
        return logits
    return torch.softmax(mean_by_text(logits, texts_of(features), count_texts(features)), dim=-1)


def fine_tune(model, tokenizer, train_features: list[dict], val_features: list[dict], spec: TrainSpec,
              device: torch.device, progress: ProgressFn, loss_fn: LossFn = cross_entropy,
              bucketed: bool = True, teacher=None, stage: str = "training", epochs: int | None = None,
              deadline: float | None = None, every_window: bool = False) -> History:
    """Train ``model`` in place and leave the kept epoch's weights in it (the last, unless validation
    clearly preferred an earlier one: :func:`validation_noise`).

    With a ``teacher``, each batch also goes through the (frozen) teacher and ``loss_fn`` gets both
    outputs; when the loss reads only the teacher's logits they are computed once and cached.
    ``stage`` names the progress stage ("teacher" while a teacher is fine-tuned). ``deadline`` (a
    ``time.perf_counter()`` value): no epoch starts that would end after it. ``bucketed=False``
    is only for the benchmark that compares against the usual tutorial recipe.

    A long text is trained on by its first window and validated by all of them, as it is served. On
    long documents (``benchmarks/bench_long_texts.py``, one seed) reading by windows gained 7 to 19
    points whatever the training read, and training on the first window (0.745), on head + tail (0.782)
    or on every window at the same number of steps (0.756) were within that seed's noise (about 3
    points); the first window is the cheapest. ``every_window`` is for that benchmark.
    """
    if not every_window:
        train_features = first_windows(train_features)
    torch.manual_seed(spec.seed)
    model.to(device)
    n_labels = model.config.num_labels
    epochs = epochs or epoch_ceiling(spec, len(train_features), n_labels)
    history = History(epoch_ceiling=epochs)
    # fused AdamW: one kernel over all parameters instead of a loop of small ops; on the CPU the
    # optimizer step was as slow as the forward and backward pass of a 3-layer MiniLM (bench_trainer.py)
    optimizer = torch.optim.AdamW(param_groups(model, spec.weight_decay), lr=spec.learning_rate, fused=True)
    steps_per_epoch = math.ceil(len(train_features) / spec.batch_size)
    total = steps_per_epoch * epochs
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(spec.warmup_ratio * total),
                              num_training_steps=total)
    pad_multiple = 8 if device.type == "cuda" else None
    internals = bool(getattr(loss_fn, "needs_internals", False))
    cached_logits = None
    if teacher is not None:
        teacher.to(device).eval()
        if not internals:  # only logits are distilled: one teacher pass over the data, not one per epoch
            cached_logits = predict_logits(teacher, train_features, tokenizer, device)
    features = [dict(f, index=i) for i, f in enumerate(train_features)] if teacher is not None else train_features
    val_labels = text_labels(val_features)
    best_f1, best_state, best_epoch, bad_epochs, step = -1.0, None, 0, 0, 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        if bucketed:
            loader = train_loader(features, tokenizer, spec.batch_size, spec.seed + epoch, pad_multiple)
        else:
            loader = torch.utils.data.DataLoader(
                features, batch_size=spec.batch_size, shuffle=True,
                generator=torch.Generator().manual_seed(spec.seed + epoch),
                collate_fn=_pad_to_max_length(tokenizer, spec.max_length))
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            history.train_tokens += int(batch["attention_mask"].sum())
            history.padded_tokens += batch["attention_mask"].numel()
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
            with autocast(device):
                outputs = model(**inputs, output_hidden_states=internals, output_attentions=internals) \
                    if internals else model(**inputs)
            teacher_out = None
            if cached_logits is not None:
                teacher_out = SimpleNamespace(logits=cached_logits[batch["index"].cpu()].to(device))
            elif teacher is not None:
                with torch.no_grad(), autocast(device):
                    teacher_out = teacher(**inputs, output_hidden_states=True, output_attentions=True)
            loss = loss_fn(batch, outputs, teacher_out)
            loss.backward()
            torch.nn.utils.clip_grad_norm_((p for p in model.parameters() if p.requires_grad), spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.step_loss.append(float(loss.detach()))
            elapsed = time.perf_counter() - started
            progress(Progress(stage, epoch, epochs, step, total, history.step_loss[-1],
                              eta_seconds=elapsed / step * (total - step)))
        proba = predict_proba(model, val_features, tokenizer, device)
        pred = proba.argmax(-1).tolist()
        f1 = f1_score(val_labels, pred, average="macro", zero_division=0)
        val_loss = float(torch.nn.functional.nll_loss(torch.log(proba.clamp_min(1e-12)), torch.tensor(val_labels)))
        history.epoch_val_f1.append(float(f1))
        history.epoch_val_loss.append(val_loss)
        progress(Progress(stage, epoch, epochs, step, total, history.step_loss[-1],
                          eta_seconds=(time.perf_counter() - started) / step * (total - step),
                          message=f"{'teacher ' if stage == 'teacher' else ''}epoch {epoch}: validation macro-F1 {f1:.3f}"))
        if f1 > best_f1:
            best_f1, best_epoch = f1, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        # only a drop validation can tell from noise counts against the run (see validation_noise)
        bad_epochs = bad_epochs + 1 if f1 < best_f1 - validation_noise(best_f1, len(val_labels)) else 0
        if bad_epochs >= spec.patience and epoch < epochs:
            history.stopped_early = True
            break
        per_epoch = (time.perf_counter() - started) / epoch
        if deadline is not None and epoch < epochs and time.perf_counter() + per_epoch > deadline:
            history.stopped_for_time = True  # one more epoch would overrun the job's time budget
            break
    # the last epoch's weights (trained longest, at the smallest learning rate) unless the best epoch was
    # better by more than validation can be trusted to tell
    final_f1 = history.epoch_val_f1[-1] if history.epoch_val_f1 else -1.0
    history.best_epoch = len(history.epoch_val_f1)
    if best_state is not None and best_f1 - final_f1 > validation_noise(best_f1, len(val_labels)):
        model.load_state_dict(best_state)
        history.best_epoch = best_epoch
    history.train_seconds = time.perf_counter() - started
    model.eval()
    return history


@torch.inference_mode()
def predict_logits(model, features: list[dict], tokenizer, device, batch_size: int = 64) -> torch.Tensor:
    """Logits [features, labels] for already-tokenised features (one row per window), in their original
    order (on the CPU)."""
    model.eval()
    loader, order = eval_loader(features, tokenizer, batch_size)
    out = []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with autocast(device):
            out.extend(model(**batch).logits.float().cpu())
    return torch.stack(unsort(out, order)) if out else torch.empty(0)


def _pad_to_max_length(tokenizer, max_length: int):
    """The tutorial recipe: every batch padded to max_length whatever its texts."""
    def collate(features):
        batch = tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], padding="max_length",
                              max_length=max_length, return_tensors="pt")
        batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch
    return collate
