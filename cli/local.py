"""Commands that work on files in this process, without the queue: train, check, predict, speed, example-data."""

from __future__ import annotations

import argparse
import json
import sys

from core.spec import METHODS, STRATEGIES

from .common import EXIT_DATA, EXIT_FAIL, EXIT_OK


def _layers(value: str):
    """``--layers 3`` keeps three layers; ``--layers 0,2,4`` keeps exactly those."""
    try:
        if "," in value:
            return [int(v) for v in value.split(",") if v.strip()]
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of layers or a list like 0,2,4, not {value!r}") from None


def add_train_flags(p: argparse.ArgumentParser, queued: bool = False) -> None:
    if queued:
        p.add_argument("file", nargs="?", help="CSV, TSV, JSONL, JSON or XLSX with a text and a label column "
                                               "(optional with --assignment or --like: their file is used)")
    else:
        p.add_argument("file", help="CSV, TSV, JSONL, JSON or XLSX with a text and a label column")
    p.add_argument("--text-column", help="the column holding the texts (found by name when not given)")
    p.add_argument("--label-column", help="the column holding the labels (found by name when not given)")
    p.add_argument("--validation", metavar="FILE", help="a separate validation file (same columns)")
    p.add_argument("--base", help="base model: minilm-l6 (embedded), a [base_models] name, or a directory")
    p.add_argument("--layers", type=_layers, help="encoder layers to keep: a count (3) or a list (0,2,4)")
    p.add_argument("--strategy", choices=STRATEGIES, help="which layers a count keeps")
    p.add_argument("--method", choices=METHODS,
                   help="what to train: full, lora, head, distill (TinyBERT distillation from a fine-tuned teacher), "
                        "or probe (the frozen encoder and a linear head: seconds)")
    p.add_argument("--epochs", type=int,
                   help="passes over the training data (default: until validation macro-F1 stops improving)")
    p.add_argument("--lr", type=float, help="learning rate (default depends on --method)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="tokens per window; longer texts are read in overlapping windows")
    p.add_argument("--seed", type=int)
    p.add_argument("--train-share", type=int, metavar="PERCENT",
                   help="train on this percent of the training split (stratified; the same test split): "
                        "with queue submit --sweep train_share=10,25,50,100, the learning curve of the whole recipe")
    p.add_argument("--augment", type=int, metavar="K",
                   help="distill: K perturbed copies of each training text, labelled by the teacher")
    if not queued:
        p.add_argument("--teacher", metavar="DIR",
                       help="distill: a fine-tuned model directory with the same labels (default: fine-tune the base first)")
        p.add_argument("--out", help="output directory for the model and report (must be new or empty)")


def add_commands(sub) -> None:
    """train, check, predict, speed and example-data."""
    p = sub.add_parser("train", help="train a classifier on a labelled file, in this process")
    add_train_flags(p)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("check", help="validate and lint a labelled file without training")
    p.add_argument("file")
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--base", help="base model whose tokenizer to check coverage against")
    p.add_argument("--max-length", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("predict", help="classify texts with a trained model directory")
    p.add_argument("model_dir")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--explain", action="store_true",
                   help="say which words drove each label (each word left out in turn, through the served model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("speed", help="one-message latency and batched throughput: PyTorch fp32 vs the served path")
    p.add_argument("model_dir")
    p.add_argument("--under-load", action="store_true",
                   help="measure while a training process loads every core, as a queue worker does beside the bot")
    p.add_argument("--messages", type=int, default=200, help="single messages timed per engine")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the served path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_speed)

    p = sub.add_parser("example-data", help="write an example dataset (chat lines by topic, from chatterbot-corpus)")
    p.add_argument("out", help="CSV file to write")
    p.add_argument("--topics", help="comma-separated chatterbot-corpus topics (default: ai,coding,emotion,psychology,literature)")
    p.set_defaults(run=cmd_example_data)


def cmd_train(args, settings) -> int:
    from trainer.pipeline import default_out_dir, run_training
    from trainer.progress import TerminalBar, Throttle

    layers = args.layers if isinstance(args.layers, int) else None
    layer_list = args.layers if isinstance(args.layers, list) else None
    out = args.out or str(default_out_dir(args.file, settings.paths.runs_dir))
    spec = settings.train_spec(
        args.file, out_dir=out, text_column=args.text_column, label_column=args.label_column,
        validation_path=args.validation, base=args.base, layers=layers, layer_list=layer_list,
        strategy=args.strategy, method=args.method, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.seed, teacher=args.teacher, augment=args.augment,
        train_share=args.train_share)
    result = run_training(spec, Throttle(TerminalBar(), seconds=0.2), settings.base_models)
    m = result.metrics
    if not args.json:
        print(m["report_text"])
        probe = f"   frozen base + probe {m['probe']['macro_f1']:.3f}" if m.get("probe") else ""
        print(f"accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
              f"TF-IDF baseline macro-F1 {m['baseline_macro_f1']:.3f}{probe}")
        print(f"layers {len(m['layers_kept'])}/{m['layers_base']} {m['layers_kept']}   params {m['params']:,} "
              f"(base {m['params_base']:,})   {m['ms_per_message']:.2f} ms/message ({m['engine']})   "
              f"trained in {m['train_seconds']:.0f} s")
        if "teacher" in m:
            t = m["teacher"]
            print(f"teacher: {t['layers']} layers, params {t['params']:,}, macro-F1 {t['macro_f1']:.3f}, "
                  f"{t['ms_per_message']:.1f} ms/message (PyTorch); the student keeps {m['retained']:.1%}")
        if m["mistakes"]:
            print("\nMost confident mistakes:")
            for x in m["mistakes"][:5]:
                why = f"  [{x['explanation']['reading']}]" if x.get("explanation") else ""
                print(f"  row {x['row']}: {x['label']} -> {x['predicted']} ({x['confidence']:.0%}): {x['text'][:80]}{why}")
        if m.get("suspect_rows"):
            print(f"\nLabels that look wrong ({len(m['suspect_rows'])}, all in {m['suspect_rows_csv']}):")
            for s in m["suspect_rows"][:5]:
                print(f"  row {s['row']}: labelled {s['label']}, looks like {s['expected']} "
                      f"({s['expected_probability']:.0%}): {s['text'][:80]}")
        print("\nAdvice:")
        for tip in m["advice"]:
            print(f"  - {tip}")
        print(f"\nmodel and report: {result.model_dir}")
        print(f"plots: {result.confusion_png}  {result.curve_png}")
    else:
        print(json.dumps(result.summary(), ensure_ascii=False))
    return EXIT_OK


def cmd_check(args, settings) -> int:
    from trainer.check import check_upload
    from trainer.errors import DataError, Problem
    from trainer.sandbox import Limits, run_sync

    spec = settings.train_spec(args.file, text_column=args.text_column, label_column=args.label_column,
                               base=args.base, max_length=args.max_length)
    try:  # read in the sandbox, as the bot reads uploads: a hostile file is stopped at [sandbox]'s limits
        info = run_sync(check_upload, spec.to_dict(), settings.base_models, limits=Limits.of(settings.sandbox))["info"]
    except DataError as exc:
        if not args.json:
            raise
        print(json.dumps({"rows": None, "labels": {}, "encoding": None, "text_column": None, "label_column": None,
                          "warnings": [], "errors": [p.to_dict() for p in exc.problems]}, ensure_ascii=False))
        return EXIT_DATA
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return EXIT_OK
    print(f"{info['rows']} examples, {len(info['labels'])} labels, {info['format']} in {info['encoding']}; "
          f"text column '{info['text_column']}', label column '{info['label_column']}'")
    for label, n in info["labels"].items():
        print(f"  {label:<24} {n}")
    if info["warnings"]:
        print("Warnings:")
        for w in info["warnings"]:
            print(f"  - {Problem(**w)}")
    print("The file can be trained on.")
    return EXIT_OK


def cmd_predict(args, settings) -> int:
    from trainer.predict import Predictor

    predictor = Predictor(args.model_dir)
    preds = predictor.predict(args.texts, top_k=args.top_k, explain=args.explain)
    if args.json:
        print(json.dumps([{"text": t, **p.to_dict()} for t, p in zip(args.texts, preds, strict=True)], ensure_ascii=False))
        return EXIT_OK
    for text, p in zip(args.texts, preds, strict=True):
        others = ", ".join(f"{lab} {s:.0%}" for lab, s in p.top[1:])
        shown = p.explanation.marked(lambda w: f"[{w}]") if p.explanation else text
        print(f"{p.label:<16} {p.score:6.1%}  {shown}" + (f"   ({others})" if others else ""))
        if p.explanation:
            print(f"{'':<24}{p.explanation.reading}")
    return EXIT_OK


def cmd_speed(args, settings) -> int:
    from trainer.speed import measure

    result = measure(args.model_dir, under_load=args.under_load, messages=args.messages, threads=args.threads,
                     load_nice=settings.queue.worker_nice)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return EXIT_OK
    load = (f"while a training process at nice {result['load_nice']} ([queue].worker_nice) loads every core"
            if args.under_load else "on an otherwise idle CPU")
    print(f"{args.model_dir}: {result['messages']} single messages and batches of {result['batch_size']}, {load}")
    print(f"{'path':<28} {'p50 ms':>8} {'p90 ms':>8} {'msgs/s':>8}")
    for key, name in (("fp32", "PyTorch fp32"), ("served", f"served ({result['engine']})")):
        r = result[key]
        print(f"{name:<28} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['msgs_per_s']:>8.0f}")
    print(f"one message {result['speedup_p50']:.1f}x faster; batched {result['speedup_batch']:.1f}x")
    return EXIT_OK


def cmd_example_data(args, settings) -> int:
    from trainer.examples import DEFAULT_TOPICS, chatterbot_rows, write_chatterbot_csv

    topics = tuple(t.strip() for t in args.topics.split(",")) if args.topics else DEFAULT_TOPICS
    try:
        path = write_chatterbot_csv(args.out, topics)
    except FileNotFoundError as exc:
        print(f"error: no such chatterbot-corpus topic ({exc.filename})", file=sys.stderr)
        return EXIT_FAIL
    rows = chatterbot_rows(topics)
    print(f"wrote {len(rows)} examples of {len(topics)} topics to {path}")
    return EXIT_OK
