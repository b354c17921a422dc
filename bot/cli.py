"""The ``tinytutor`` command line. Names and flags here are a contract scripts rely on (DESIGN.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAIL, EXIT_DATA = 0, 1, 2


def _layers(value: str):
    """``--layers 3`` keeps three layers; ``--layers 0,2,4`` keeps exactly those."""
    try:
        if "," in value:
            return [int(v) for v in value.split(",") if v.strip()]
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of layers or a list like 0,2,4, not {value!r}") from None


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSV, TSV, JSONL, JSON or XLSX with a text and a label column")
    p.add_argument("--text-column", help="the column holding the texts (found by name when not given)")
    p.add_argument("--label-column", help="the column holding the labels (found by name when not given)")
    p.add_argument("--validation", metavar="FILE", help="a separate validation file (same columns)")
    p.add_argument("--base", help="base model: minilm-l6 (embedded), a [base_models] name, or a directory")
    p.add_argument("--layers", type=_layers, help="encoder layers to keep: a count (3) or a list (0,2,4)")
    p.add_argument("--strategy", choices=("alternate", "bottom", "top"), help="which layers a count keeps")
    p.add_argument("--method", choices=("full", "lora", "head"), help="what to train")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="learning rate (default depends on --method)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="tokens per text; longer texts are cut")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output directory for the model and report (must be new or empty)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinytutor", description="Prune, fine-tune and evaluate small BERT classifiers.")
    parser.add_argument("--config", help="config.toml to use (default: $TINYTUTOR_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a classifier on a labelled file, in this process")
    _add_train_flags(p)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")

    p = sub.add_parser("check", help="validate and lint a labelled file without training")
    p.add_argument("file")
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--base", help="base model whose tokenizer to check coverage against")
    p.add_argument("--max-length", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("predict", help="classify texts with a trained model directory")
    p.add_argument("model_dir")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("example-data", help="write an example dataset (chat lines by topic, from chatterbot-corpus)")
    p.add_argument("out", help="CSV file to write")
    p.add_argument("--topics", help="comma-separated chatterbot-corpus topics (default: ai,coding,emotion,psychology,literature)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .settings import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if not settings.hub.allow_downloads:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from trainer.errors import DataError, TrainerError

    hf_logging.set_verbosity_error()  # our own progress and messages say what matters
    hf_logging.disable_progress_bar()

    try:
        return {"train": cmd_train, "check": cmd_check, "predict": cmd_predict,
                "example-data": cmd_example_data}[args.command](args, settings)
    except DataError as exc:
        _print_problems(exc.problems)
        return EXIT_DATA
    except (TrainerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:  # a damaged model directory, a full disk, a file that vanished
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _print_problems(problems, stream=None) -> None:
    stream = stream or sys.stderr
    print(f"The file cannot be trained on ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", file=stream)
    for p in problems:
        print(f"  - {p}", file=stream)


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
        max_length=args.max_length, seed=args.seed)
    result = run_training(spec, Throttle(TerminalBar(), seconds=0.2), settings.base_models)
    m = result.metrics
    if not args.json:
        print(m["report_text"])
        print(f"accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
              f"TF-IDF baseline macro-F1 {m['baseline_macro_f1']:.3f}")
        print(f"layers {len(m['layers_kept'])}/{m['layers_base']} {m['layers_kept']}   params {m['params']:,} "
              f"(base {m['params_base']:,})   {m['ms_per_message']:.1f} ms/message   "
              f"trained in {m['train_seconds']:.0f} s")
        if m["mistakes"]:
            print("\nMost confident mistakes:")
            for x in m["mistakes"][:5]:
                print(f"  row {x['row']}: {x['label']} -> {x['predicted']} ({x['confidence']:.0%}): {x['text'][:80]}")
        print("\nAdvice:")
        for tip in m["advice"]:
            print(f"  - {tip}")
        print(f"\nmodel and report: {result.model_dir}")
        print(f"plots: {result.confusion_png}  {result.curve_png}")
    else:
        print(json.dumps(result.summary(), ensure_ascii=False))
    return EXIT_OK


def cmd_check(args, settings) -> int:
    from trainer.errors import DataError
    from trainer.pipeline import check_file

    spec = settings.train_spec(args.file, text_column=args.text_column, label_column=args.label_column,
                               base=args.base, max_length=args.max_length)
    try:
        ds, info = check_file(spec, settings.base_models)
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
    if ds.warnings:
        print("Warnings:")
        for w in ds.warnings:
            print(f"  - {w}")
    print("The file can be trained on.")
    return EXIT_OK


def cmd_predict(args, settings) -> int:
    from trainer.predict import Predictor

    predictor = Predictor(args.model_dir)
    preds = predictor.predict(args.texts, top_k=args.top_k)
    if args.json:
        print(json.dumps([{"text": t, **p.to_dict()} for t, p in zip(args.texts, preds, strict=True)], ensure_ascii=False))
        return EXIT_OK
    for text, p in zip(args.texts, preds, strict=True):
        others = ", ".join(f"{lab} {s:.0%}" for lab, s in p.top[1:])
        print(f"{p.label:<16} {p.score:6.1%}  {text}" + (f"   ({others})" if others else ""))
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


if __name__ == "__main__":
    sys.exit(main())
