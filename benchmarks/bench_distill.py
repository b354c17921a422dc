"""Distillation benchmark: a 3-layer student distilled from its 6-layer teacher vs plain pruning, side by side.

For each dataset and seed, one run of the real pipeline per row, all with the defaults of config.toml
except what the row names:

- teacher: all 6 layers of MiniLM fine-tuned (``--layers 6``);
- pruned: 3 layers kept (TinyBERT's alternate map) and fine-tuned (``--layers 3``);
- distilled: 3 layers cut from that teacher and trained with TinyBERT's task distillation
  (``--method distill --teacher <the teacher>``).

Datasets, both built from packages on disk: the chatterbot example (5 topics, 792 lines) and every
English chatterbot-corpus topic (21 topics, 1,857 lines, unbalanced). Prints markdown tables.

    .venv/bin/python benchmarks/bench_distill.py                  # about 20 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_distill.py --seeds 1 --only chat
    .venv/bin/python benchmarks/bench_distill.py --sweep          # how the defaults were chosen (~15 min)

``--sweep`` distils the chat example from each seed's teacher with one setting changed at a time
(hard labels off, temperature 2, two augmented copies per text) beside the defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from bot.settings import load_settings  # noqa: E402
from trainer.examples import english_topics, write_chatterbot_csv  # noqa: E402
from trainer.pipeline import run_training  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

SEEDS = (42, 7, 1234)
VARIANTS = {"defaults": {}, "hard_weight = 0": {"hard_weight": 0.0}, "temperature = 2": {"temperature": 2.0},
            "augment = 2": {"augment": 2}}


def sweep(settings, path: Path, work: Path, seeds) -> None:
    """Distillation settings, one changed at a time, mean macro-F1 over seeds against the teacher's."""
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for seed in seeds:
        teacher = run_training(settings.train_spec(str(path), out_dir=str(work / f"sweep-t{seed}"), layers=6,
                                                   seed=seed, method="full"), registry=settings.base_models)
        for i, (name, change) in enumerate(VARIANTS.items()):
            r = run_training(settings.train_spec(str(path), out_dir=str(work / f"sweep-{seed}-{i}"), layers=3,
                                                 seed=seed, method="distill", teacher=str(teacher.model_dir),
                                                 **change), registry=settings.base_models)
            scores[name].append((r.metrics["macro_f1"], r.metrics["train_seconds"]))
            print(f"  seed {seed} {name}: {r.metrics['macro_f1']:.3f} (teacher {teacher.metrics['macro_f1']:.3f})",
                  flush=True)
        scores.setdefault("teacher", []).append((teacher.metrics["macro_f1"], teacher.metrics["train_seconds"]))
    t_mean = statistics.mean(f for f, _ in scores["teacher"])
    print(f"\n### Distillation settings on the chatterbot example, mean over {len(seeds)} seed(s)\n")
    print("| student (3 layers) | macro-F1 per seed | mean | kept of teacher | train s |")
    print("|---|---|---:|---:|---:|")
    for name in VARIANTS:
        f1s = [f for f, _ in scores[name]]
        per_seed = ", ".join(f"{f:.3f}" for f in f1s)
        print(f"| {name} | {per_seed} | {statistics.mean(f1s):.3f} | {statistics.mean(f1s) / t_mean:.1%} | "
              f"{statistics.mean(s for _, s in scores[name]):.0f} |")
    print(f"| (teacher, 6 layers) | {', '.join(f'{f:.3f}' for f, _ in scores['teacher'])} | {t_mean:.3f} | | |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3, help="how many of the seeds 42, 7, 1234 to run")
    parser.add_argument("--only", choices=("chat", "all-topics"), help="run one dataset")
    parser.add_argument("--sweep", action="store_true", help="compare distillation settings instead (chat only)")
    parser.add_argument("--teacher-epochs", type=int, help="epochs for the teacher row (default: [training].epochs)")
    args = parser.parse_args()
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-distill-"))
    datasets = {"chat": ("chatterbot example, 5 topics", write_chatterbot_csv(work / "chat.csv")),
                "all-topics": ("chatterbot-corpus, all 21 English topics",
                               write_chatterbot_csv(work / "all-topics.csv", english_topics()))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; defaults from config.toml "
          f"(epochs {settings.training.get('epochs')}, teacher epochs {args.teacher_epochs or settings.training.get('epochs')}, "
          f"augment {settings.training.get('augment', 0)}); "
          f"seeds {list(SEEDS[:args.seeds])}\n")
    if args.sweep:
        sweep(settings, datasets["chat"][1], work, SEEDS[:args.seeds])
        return 0
    summary = []
    for key, (title, path) in datasets.items():
        if args.only and args.only != key:
            continue
        rows = {"teacher": [], "pruned": [], "distilled": []}
        for seed in SEEDS[:args.seeds]:
            out = work / f"{key}-{seed}"
            teacher = run_training(settings.train_spec(str(path), out_dir=str(out / "teacher"), layers=6, seed=seed,
                                                       method="full", epochs=args.teacher_epochs),
                                   registry=settings.base_models)
            pruned = run_training(settings.train_spec(str(path), out_dir=str(out / "pruned"), layers=3, seed=seed,
                                                      method="full"), registry=settings.base_models)
            distilled = run_training(settings.train_spec(str(path), out_dir=str(out / "distilled"), layers=3,
                                                         seed=seed, method="distill", teacher=str(teacher.model_dir)),
                                     registry=settings.base_models)
            for name, r in (("teacher", teacher), ("pruned", pruned), ("distilled", distilled)):
                rows[name].append(r.metrics)
            print(f"  {key} seed {seed}: teacher {teacher.metrics['macro_f1']:.3f}, pruned "
                  f"{pruned.metrics['macro_f1']:.3f}, distilled {distilled.metrics['macro_f1']:.3f}", flush=True)
        n = len(rows["teacher"][0]["labels"])
        rows_count = rows["teacher"][0]["data"]["rows"]
        print(f"\n### {title} ({rows_count} lines, {n} labels), mean over {len(rows['teacher'])} seed(s)\n")
        print("| model | layers | params | test macro-F1 (mean) | per seed | kept of teacher | train s | "
              "ms/message served | engine |")
        print("|---|---:|---:|---:|---|---:|---:|---:|---|")
        t_mean = statistics.mean(m["macro_f1"] for m in rows["teacher"])
        for name in ("teacher", "pruned", "distilled"):
            ms = rows[name]
            f1 = statistics.mean(m["macro_f1"] for m in ms)
            seconds = statistics.mean(m["train_seconds"] for m in ms)
            per_seed = ", ".join(f"{m['macro_f1']:.3f}" for m in ms)
            print(f"| {name} | {len(ms[0]['layers_kept'])} | {ms[0]['params']:,} | {f1:.3f} | "
                  f"{per_seed} | {f1 / t_mean:.1%} | {seconds:.0f} | "
                  f"{statistics.mean(m['ms_per_message'] for m in ms):.2f} | {ms[0]['engine']} |")
        baseline = statistics.mean(m["baseline_macro_f1"] for m in rows["teacher"])
        print(f"| TF-IDF + logistic regression | – | – | {baseline:.3f} | | {baseline / t_mean:.1%} | | | |")
        agreements = [m["serving"]["int8_agreement"] for name in rows for m in rows[name]]
        agreement = min(agreements)
        kept = statistics.mean(m["macro_f1"] for m in rows["distilled"]) / t_mean
        summary.append((title, kept, agreement))
        print(f"\ndistilled student keeps {kept:.1%} of the teacher's macro-F1 (target >= 99%; TinyBERT: 96.8%); "
              f"plain pruning keeps {statistics.mean(m['macro_f1'] for m in rows['pruned']) / t_mean:.1%}; "
              f"int8/fp32 label agreement on the test split: mean {statistics.mean(agreements):.1%}, lowest "
              f"{agreement:.1%} of {len(agreements)} models (target >= 99%)\n", flush=True)
    for title, kept, agreement in summary:
        print(f"- {title}: retained {kept:.1%}, int8 agreement >= {agreement:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
