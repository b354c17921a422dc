"""Serving benchmark: a chat message through each prediction path, on 2 cores, while a worker trains beside it.

1. One message (p50/p90) and batches of 64 (messages/s) for: the path before this change (PyTorch
   fp32 on its default threads), PyTorch on 1 thread, ONNX Runtime fp32 and int8 on 1 thread (int8
   is what is served where it keeps accuracy), and int8 on 2 threads, taking turns in one run. Each
   is measured idle, beside a training process at normal priority (a plain `tinytutor train`, or the
   queue's workers before this change), and beside one at nice 10 (the queue's workers now,
   `[queue].worker_nice`).
2. A burst: 64 /predict requests at once through the service's micro-batcher vs one forward pass
   each in the thread pool (the int8 model), beside the nice-10 worker.

The load is a real training run (the embedded MiniLM on the chatterbot example, every core).

    .venv/bin/python benchmarks/bench_serving.py               # about 5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_serving.py --model DIR   # an existing model directory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from core.spec import TrainSpec  # noqa: E402
from service.microbatch import MicroBatcher  # noqa: E402
from trainer.classifier import load_model_dir  # noqa: E402
from trainer.examples import chatterbot_rows, english_topics, write_chatterbot_csv  # noqa: E402
from trainer.export import export_onnx, onnx_logits, quantize_int8, session  # noqa: E402
from trainer.pipeline import run_training  # noqa: E402
from trainer.predict import Predictor  # noqa: E402
from trainer.speed import TrainingLoad, chat_messages, compare  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

BEFORE = "PyTorch fp32, {n} threads (before)"
SERVED = "ONNX Runtime int8, 1 thread (ours)"
LOADS = {"idle": None, "worker at nice 0": 0, "worker at nice 10 (ours)": 10}


async def burst(predictor: Predictor, texts: list[str], batched: bool) -> float:
    """Seconds until every one of ``texts``, sent as separate requests at once, has its answer."""
    if batched:
        batcher = MicroBatcher(lambda _key, chunk: predictor.predict(chunk), window=0.005)
        start = time.perf_counter()
        await asyncio.gather(*(batcher.predict("m", [t]) for t in texts))
    else:
        start = time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(predictor.predict, [t]) for t in texts))
    return time.perf_counter() - start


QUANT_VARIANTS = {  # ONNX Runtime's dynamic quantisation: activations are always uint8, weights as named
    "int8 weights, per channel, fp32 embeddings (ours)": {},
    "... and int8 embeddings (before)": {"embeddings": True},
    "... reduce_range (7-bit weights)": {"reduce_range": True},
    "... uint8 weights": {"weight_type": "uint8"},
    "... per tensor": {"per_channel": False},
}


def quantisation_table(model_dir: Path, fp32_file: Path, work: Path) -> None:
    """3. Which int8 recipe agrees with fp32 on the most texts, at what speed (this CPU has AVX2, no VNNI,
    where the u8s8 kernels can saturate; reduce_range uses 7-bit weights to avoid it)."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [t for t, _ in chatterbot_rows(english_topics())]  # every English chat line, 21 topics
    reference = onnx_logits(session(fp32_file), tok, texts, 128).argmax(1)
    print(f"\n### 3. int8 recipes against fp32 on {len(texts):,} chat lines (all 21 topics), one message idle\n")
    print("| recipe | label agreement with fp32 | differ | p50 / p90 ms |")
    print("|---|---:|---:|---:|")
    for i, (name, options) in enumerate(QUANT_VARIANTS.items()):
        path = quantize_int8(fp32_file, work / "onnx" / f"variant-{i}.onnx", **options)
        pred = onnx_logits(session(path), tok, texts, 128).argmax(1)
        timing = compare({name: Predictor(model_dir, threads=1, onnx_file=path)}, chat_messages(200))[name]
        print(f"| {name} | {(pred == reference).mean():.2%} | {int((pred != reference).sum())} | "
              f"{timing['p50_ms']:.2f} / {timing['p90_ms']:.2f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a trained model directory (default: train the 3-layer default on chat)")
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-serving-"))
    if args.model:
        model_dir = Path(args.model)
    else:
        data = write_chatterbot_csv(work / "chat.csv")
        model_dir = run_training(TrainSpec(data_path=str(data), out_dir=str(work / "model"))).model_dir
    # training keeps only the file it serves: export both forms again so every row exists
    fp32_file = export_onnx(load_model_dir(model_dir), AutoTokenizer.from_pretrained(model_dir),
                            work / "onnx" / "model.onnx")
    int8_file = quantize_int8(fp32_file, work / "onnx" / "model_qint8.onnx")
    before = BEFORE.format(n=torch.get_num_threads())
    paths = {
        before: Predictor(model_dir, engine="torch"),
        "ONNX Runtime fp32, 1 thread": Predictor(model_dir, threads=1, onnx_file=fp32_file),
        SERVED: Predictor(model_dir, threads=1, onnx_file=int8_file),
        "ONNX Runtime int8, 2 threads": Predictor(model_dir, threads=2, onnx_file=int8_file),
    }
    served_engine = Predictor(model_dir).engine
    texts = chat_messages(args.messages)
    print(f"model: 3-layer MiniLM trained on the chatterbot example, served by {served_engine} (its int8 check: "
          f"see metrics.json); {len(texts)} chat messages from chatterbot-corpus; torch {torch.__version__}, "
          f"{os.cpu_count()} cores\n")
    results, bursts = {}, {}
    for load, nice in LOADS.items():
        with contextlib.nullcontext() if nice is None else TrainingLoad(nice):
            results[load] = compare(paths, texts)
            if nice == 10:
                for name, batched in (("one forward pass per request", False), ("micro-batched (5 ms window)", True)):
                    bursts[name] = statistics.median(asyncio.run(burst(paths[SERVED], texts[:64], batched))
                                                     for _ in range(5))
        print(f"  measured: {load}", file=sys.stderr, flush=True)

    print("### 1. One chat message (p50 / p90 ms) and batches of 64 (msgs/s)\n")
    print("| path | " + " | ".join(LOADS) + " |")
    print("|---|" + "---:|" * len(LOADS))
    for name in paths:
        cells = [f"{r[name]['p50_ms']:.2f} / {r[name]['p90_ms']:.2f} ms · {r[name]['msgs_per_s']:,.0f}/s"
                 for r in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    was, now = results["worker at nice 0"][before], results["worker at nice 10 (ours)"][SERVED]
    same = results["worker at nice 10 (ours)"][before]
    print(f"\nbeside a training worker: before this change {was['p50_ms']:.1f} ms p50 (PyTorch, worker at nice 0); "
          f"now {now['p50_ms']:.2f} ms p50 / {now['p90_ms']:.2f} ms p90 (targets <= 1 ms / <= 3 ms), "
          f"{was['p50_ms'] / now['p50_ms']:.0f}x faster (target >= 10x); under the same nice-10 load "
          f"{same['p50_ms'] / now['p50_ms']:.1f}x faster than PyTorch; batched {now['msgs_per_s']:,.0f} msgs/s "
          f"(target >= 2,000)\n")
    print("### 2. A burst: 64 students ask at once (int8 model, beside the nice-10 worker), median of 5\n")
    print("| how | all answered in ms | msgs/s |")
    print("|---|---:|---:|")
    for name, t in bursts.items():
        print(f"| {name} | {t * 1000:.0f} | {64 / t:,.0f} |")
    quantisation_table(model_dir, fp32_file, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
