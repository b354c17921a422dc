"""Trainer benchmarks, measured side by side in one run; prints markdown tables.

1. Our training loop (dynamic padding, batches cut from length-sorted groups) against the usual
   tutorial recipe (every batch padded to max_length=128, plain shuffling), same data, model, epochs
   and optimiser; mean of 3 seeds.
2. The model pruned to 3 of 6 layers against all 6: macro-F1 retained and inference speed-up.
   benchmarks/bench_serving.py measures the served path, idle and beside a training worker.

    .venv/bin/python benchmarks/bench_trainer.py            # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from transformers import set_seed  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from core.spec import TrainSpec  # noqa: E402
from trainer import data as data_mod  # noqa: E402
from trainer.batching import encode, text_labels  # noqa: E402
from trainer.classifier import load_classifier  # noqa: E402
from trainer.device import set_threads  # noqa: E402
from trainer.examples import write_chatterbot_csv  # noqa: E402
from trainer.latency import message_latencies_ms  # noqa: E402
from trainer.models import load_tokenizer, resolve_base  # noqa: E402
from trainer.pipeline import run_training  # noqa: E402
from trainer.predict import Predictor  # noqa: E402
from trainer.probe import probe_model, start_head_from  # noqa: E402
from trainer.pruning import num_layers, prune_layers, select_layers  # noqa: E402
from trainer.train import fine_tune, predict_proba  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

SEEDS = (42, 7, 1234)


def train_once(spec: TrainSpec, bucketed: bool) -> dict:
    """One fine-tuning run through the trainer's own functions, with the padding recipe switched."""
    set_seed(spec.seed)
    base = resolve_base(spec.base)
    tok = load_tokenizer(base)
    ds = data_mod.load_dataset(spec.data_path, spec.limits)
    splits = data_mod.split_dataset(ds, spec.limits, spec.seed)
    labels = sorted(set(ds.labels))
    l2i = {lab: i for i, lab in enumerate(labels)}
    model = load_classifier(base, dict(enumerate(labels)))
    prune_layers(model, select_layers(num_layers(model.config), spec.layers, spec.strategy), base.name, spec.strategy)

    def feats(part):
        return encode(tok, part.texts, spec.max_length, [l2i[y] for y in part.labels])

    train_f, val_f, test_f = feats(splits.train), feats(splits.validation), feats(splits.test)
    start_head_from(model, probe_model(model, tok, train_f, val_f, torch.device("cpu"), spec.seed))  # as the pipeline
    start = time.perf_counter()
    hist = fine_tune(model, tok, train_f, val_f, spec, torch.device("cpu"), lambda p: None, bucketed=bucketed)
    wall = time.perf_counter() - start
    pred = predict_proba(model, test_f, tok, torch.device("cpu")).argmax(-1).tolist()
    f1 = f1_score(text_labels(test_f), pred, average="macro")
    return {"wall": wall, "tokens": hist.train_tokens, "padded": hist.padded_tokens, "f1": f1,
            "tok_s": hist.train_tokens / wall}


def batch_throughput(predictor: Predictor, texts: list[str], repeats: int = 5) -> float:
    """Median messages per second classifying ``texts`` in batches of 32."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), 32):
            predictor.predict(texts[i:i + 32])
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", choices=("padding", "pruning"), help="run one part")
    parser.add_argument("--seeds", type=int, default=3, help="part 1: how many of the seeds 42, 7, 1234")
    args = parser.parse_args()
    threads = set_threads(0)
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-"))
    data = write_chatterbot_csv(work / "chat.csv")
    ds = data_mod.load_dataset(data, TrainSpec(data_path=str(data)).limits)
    print(f"data: chatterbot-corpus, {len(ds)} chat lines, {len(set(ds.labels))} topics; torch {torch.__version__}, "
          f"{threads} CPU threads; epochs {args.epochs}\n")

    if args.only in (None, "padding"):
        runs = {"tutorial": [], "ours": []}
        for seed in SEEDS[:args.seeds]:  # one seed's test split moves macro-F1 by a point per example
            spec = TrainSpec(data_path=str(data), epochs=args.epochs, patience=args.epochs, seed=seed)
            runs["ours"].append(train_once(spec, bucketed=True))
            runs["tutorial"].append(train_once(spec, bucketed=False))
        mean = {k: {m: statistics.mean(r[m] for r in v) for m in ("wall", "tok_s", "f1")} |
                {"padding": 1 - sum(r["tokens"] for r in v) / sum(r["padded"] for r in v),
                 "per_seed": ", ".join(f"{r['f1']:.3f}" for r in v)} for k, v in runs.items()}
        print(f"### 1. Training: dynamic padding + length-sorted batches vs padding to 128 "
              f"(mean of {len(runs['ours'])} seeds)\n")
        print("| recipe | wall s | real tokens/s | padding share | test macro-F1 (mean) | per seed |")
        print("|---|---:|---:|---:|---:|---|")
        for name, key in (("tutorial: pad to max_length=128", "tutorial"), ("TinyTutor: dynamic, length-sorted groups", "ours")):
            r = mean[key]
            print(f"| {name} | {r['wall']:.1f} | {r['tok_s']:.0f} | {r['padding']:.0%} | {r['f1']:.3f} | {r['per_seed']} |")
        tutorial, ours = mean["tutorial"], mean["ours"]
        print(f"\nspeed-up {tutorial['wall'] / ours['wall']:.2f}x (target >= 4x); macro-F1 difference "
              f"{(ours['f1'] - tutorial['f1']) * 100:+.1f} points (target: no lower)\n")

    if args.only in (None, "pruning"):
        results = {}
        for layers in (3, 6):
            spec = TrainSpec(data_path=str(data), out_dir=str(work / f"m{layers}"), layers=layers,
                             epochs=args.epochs, patience=args.epochs)
            results[layers] = run_training(spec)
        # the same engine for both (each model's served engine depends on its own int8 check)
        preds = {k: Predictor(r.model_dir, engine="torch") for k, r in results.items()}
        texts = data_mod.split_dataset(ds, TrainSpec(data_path=str(data)).limits, 42).test.texts
        # interleave the measurements so machine noise hits both models alike
        tput = {k: [] for k in preds}
        lat = {k: [] for k in preds}
        for _ in range(3):
            for k, p in preds.items():
                tput[k].append(batch_throughput(p, texts, repeats=1))
                lat[k].extend(message_latencies_ms(p, texts[:60]))
        print("### 2. Pruning: 3 of 6 layers vs all 6 (same data, epochs, seed)\n")
        print("| model | layers kept | params | test macro-F1 | PyTorch msgs/s (batch 32) | PyTorch p50 ms (1 msg) | "
              "train s | served by | served ms |")
        print("|---|---|---:|---:|---:|---:|---:|---|---:|")
        for k in (6, 3):
            m = results[k].metrics
            print(f"| {k} layers | {m['layers_kept']} | {m['params']:,} | {m['macro_f1']:.3f} | "
                  f"{statistics.median(tput[k]):.0f} | {statistics.median(lat[k]):.2f} | {m['train_seconds']:.0f} | "
                  f"{m['engine']} | {m['ms_per_message']:.2f} |")
        f3, f6 = results[3].metrics["macro_f1"], results[6].metrics["macro_f1"]
        print(f"\nretained macro-F1 {f3 / f6:.1%}; batch inference speed-up "
              f"{statistics.median(tput[3]) / statistics.median(tput[6]):.2f}x, single-message speed-up "
              f"{statistics.median(lat[6]) / statistics.median(lat[3]):.2f}x (target >= 1.7x)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
