"""Model quality benchmark: what a student gets with the defaults, beside the strongest cheap references.

For each dataset and seed, three jobs of the real pipeline with config.toml's defaults except what the
row names, each timed wall to wall (what a student waits for after the queue):

- default: the default method (config.toml's [training]; 3 of MiniLM's 6 layers, fine-tuned from a
  probe-started head);
- probe: the same 3 layers frozen, with a linear probe (``--method probe``);
- distill: a 6-layer teacher fine-tuned in the job, then a 3-layer student cut from it and trained with
  TinyBERT's task distillation (``--method distill``).

Every report also carries the TF-IDF baseline and the frozen 6-layer base read by a probe on the same
split, so the table has, per dataset: TF-IDF, frozen 6-layer probe, frozen 3-layer probe, the default
method, the teacher and the student, then the issue's targets, met or missed by how much, and how often
int8 was served and how closely it agreed with fp32.

Datasets, both built from packages on disk: the chatterbot example (5 topics, 792 lines) and every
English chatterbot-corpus topic (21 topics, 1,857 lines, unbalanced).

    .venv/bin/python benchmarks/bench_quality.py                  # about 45 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_quality.py --seeds 1 --only all-topics
    .venv/bin/python benchmarks/bench_quality.py --sweep          # distillation settings, one at a time

``--sweep`` distils the chat example from each seed's teacher with one setting changed at a time
(hard labels off, temperature 2, two augmented copies per text) beside the defaults.
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
from transformers.utils import logging as hf_logging  # noqa: E402

from core.settings import load_settings  # noqa: E402
from trainer.examples import english_topics, write_chatterbot_csv  # noqa: E402
from trainer.export import MIN_INT8_AGREEMENT  # noqa: E402
from trainer.pipeline import run_training  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

SEEDS = (42, 7, 1234)
VARIANTS = {"defaults": {}, "hard_weight = 0": {"hard_weight": 0.0}, "temperature = 2": {"temperature": 2.0},
            "augment = 2": {"augment": 2}}
JOBS = {"default": {}, "probe": {"method": "probe"}, "distill": {"method": "distill"}}


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


def _timed(settings, path: Path, out: Path, **change):
    started = time.perf_counter()
    r = run_training(settings.train_spec(str(path), out_dir=str(out), **change), registry=settings.base_models)
    return r.metrics | {"wall_seconds": time.perf_counter() - started}


def _mean(values) -> float:
    return statistics.mean(values)


def _cell(values) -> str:
    """mean (lowest–highest) over seeds"""
    return f"{_mean(values):.3f}" + (f" ({min(values):.3f}–{max(values):.3f})" if len(values) > 1 else "")


def dataset_table(title: str, runs: dict[str, list[dict]]) -> dict:
    d, p, x = runs["default"], runs["probe"], runs["distill"]
    n_labels, n_rows = len(d[0]["labels"]), d[0]["data"]["rows"]
    print(f"\n### {title} ({n_rows} lines, {n_labels} labels), mean over {len(d)} seed(s)\n")
    print("| model | layers | test macro-F1, mean (range) | wall s per job | served |")
    print("|---|---:|---|---:|---|")
    rows = [
        ("TF-IDF + logistic regression", "–", [m["baseline_macro_f1"] for m in d], None, ""),
        ("frozen base + linear probe", 6, [m["probe_macro_f1"] for m in d], None, ""),
        ("frozen 3 layers + linear probe (`--method probe`)", 3, [m["macro_f1"] for m in p], p, ""),
        (f"default: `{d[0]['method']}` (pruned, probe-started head)", 3, [m["macro_f1"] for m in d], d, ""),
        ("teacher: all layers fine-tuned (inside the distill job)", 6, [m["teacher_macro_f1"] for m in x], None, ""),
        ("student: distilled from it (`--method distill`)", 3, [m["macro_f1"] for m in x], x, ""),
    ]
    for name, layers, f1s, ms, _ in rows:
        wall = f"{_mean(m['wall_seconds'] for m in ms):.0f}" if ms else ""
        served = ""
        if ms:
            engines = [m["engine"].replace("onnxruntime-", "") for m in ms]
            served = ", ".join(f"{e} ×{engines.count(e)}" for e in sorted(set(engines)))
        print(f"| {name} | {layers} | {_cell(f1s)} | {wall} | {served} |")
    all_runs = d + p + x
    agreements = [m["serving"]["int8_agreement"] for m in all_runs]
    int8 = [m for m in all_runs if m["engine"] == "onnxruntime-int8"]
    print(f"\nint8 served for {len(int8)} of {len(all_runs)} models; int8/fp32 label agreement over every text of "
          f"the run: mean {_mean(agreements):.2%}, lowest {min(agreements):.2%}; teachers worth copying (beat the "
          f"probe and TF-IDF on validation): {sum(m['teacher']['worth_copying'] for m in x)} of {len(x)}; "
          f"epochs run (default): {', '.join(str(m['epochs_run']) for m in d)} of ceilings "
          f"{', '.join(str(m['epoch_ceiling']) for m in d)}", flush=True)
    return {"default": _mean(m["macro_f1"] for m in d), "probe3": _mean(m["macro_f1"] for m in p),
            "student": _mean(m["macro_f1"] for m in x), "teacher": _mean(m["teacher_macro_f1"] for m in x),
            "default_wall": _mean(m["wall_seconds"] for m in d), "distill_wall": _mean(m["wall_seconds"] for m in x),
            "int8": (len(int8), len(all_runs)), "int8_min": min((m["serving"]["int8_agreement"] for m in int8),
                                                                default=None),
            "teacher_ok": all(m["teacher_macro_f1"] >= m["macro_f1"] for m in x)}


def targets_table(results: dict[str, dict]) -> None:
    """The issue's targets against the measurements, met or missed by how much."""
    lines = []

    def target(name: str, value: float, goal: float, unit: str = "", higher: bool = True) -> None:
        met = value >= goal if higher else value <= goal
        gap = "" if met else f" (missed by {abs(value - goal):.3f}{unit})" if unit != " s" else \
            f" (missed by {abs(value - goal):.0f} s)"
        shown = f"{value:.0f} s" if unit == " s" else f"{value:.3f}"
        lines.append(f"| {name} | {'≥' if higher else '≤'} {goal:g}{unit if unit == ' s' else ''} | {shown} | "
                     f"{'met' if met else 'missed'}{gap} |")

    if "all-topics" in results:
        r = results["all-topics"]
        target("21 topics: distilled 3-layer student", r["student"], 0.72)
        target("21 topics: student / its teacher", r["student"] / r["teacher"], 0.99)
        target("21 topics: the teacher", r["teacher"], 0.72)
        target("21 topics: the default method", r["default"], 0.70)
        target("21 topics: default job, wall", r["default_wall"], 180, " s", higher=False)
        target("21 topics: distillation job, wall", r["distill_wall"], 360, " s", higher=False)
    if "chat" in results:
        target("5 topics: the default method", results["chat"]["default"], 0.90)
    for key, r in results.items():
        target(f"{key}: pruned (default) at or above the frozen 3-layer probe", r["default"] - r["probe3"], 0.0)
        lines.append(f"| {key}: teacher at or above its student, every seed | yes | "
                     f"{'yes' if r['teacher_ok'] else 'no'} | {'met' if r['teacher_ok'] else 'missed'} |")
    served = sum(r["int8"][0] for r in results.values())
    total = sum(r["int8"][1] for r in results.values())
    target("int8 served (share of models)", served / total, 0.90)
    lows = [r["int8_min"] for r in results.values() if r["int8_min"] is not None]
    if lows:
        target("int8 served: lowest agreement with fp32", min(lows), MIN_INT8_AGREEMENT)
    print("\n### Targets\n")
    print("| target | goal | measured | |")
    print("|---|---|---|---|")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3, help="how many of the seeds 42, 7, 1234 to run")
    parser.add_argument("--only", choices=("chat", "all-topics"), help="run one dataset")
    parser.add_argument("--sweep", action="store_true", help="compare distillation settings instead (chat only)")
    args = parser.parse_args()
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-quality-"))
    datasets = {"all-topics": ("chatterbot-corpus, all 21 English topics",
                               write_chatterbot_csv(work / "all-topics.csv", english_topics())),
                "chat": ("chatterbot example, 5 topics", write_chatterbot_csv(work / "chat.csv"))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; defaults from config.toml "
          f"({', '.join(f'{k} {v}' for k, v in settings.training.model_dump(exclude_unset=True).items())}); seeds {list(SEEDS[:args.seeds])}")
    if args.sweep:
        sweep(settings, datasets["chat"][1], work, SEEDS[:args.seeds])
        return 0
    results = {}
    for key, (title, path) in datasets.items():
        if args.only and args.only != key:
            continue
        runs: dict[str, list[dict]] = {name: [] for name in JOBS}
        for seed in SEEDS[:args.seeds]:
            for name, change in JOBS.items():
                runs[name].append(_timed(settings, path, work / f"{key}-{seed}-{name}", seed=seed, **change))
            print(f"  {key} seed {seed}: " + ", ".join(f"{name} {runs[name][-1]['macro_f1']:.3f} "
                                                        f"({runs[name][-1]['wall_seconds']:.0f} s)" for name in JOBS)
                  + f", teacher {runs['distill'][-1]['teacher_macro_f1']:.3f}", flush=True)
        results[key] = dataset_table(title, runs)
    targets_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
