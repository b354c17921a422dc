"""The served form of a model: ONNX, quantised to int8 with ONNX Runtime, checked before it is used.

After training, the classifier is exported to ONNX (``torch.onnx``, dynamic batch and sequence
axes) and quantised with ONNX Runtime's dynamic quantisation (int8 weights, activations quantised
on the fly). int8 is served when it gives fp32's label on nearly every text the run has (training,
validation and test: agreement needs no labels) and is not significantly worse on the test split
(:func:`build_serving`), else fp32 ONNX is. The int8 file is always kept under
``onnx/`` beside ``model.safetensors`` (as sentence-transformers lays out its ONNX backend), the fp32
one only when it is the one served; ``config.json`` records which file to serve
(``tinytutor_serving``), so ``transformers.pipeline`` still loads the directory and
:class:`trainer.predict.Predictor` serves the right ONNX file.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from .batching import mean_by_text, tokenize_windows

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_qint8.onnx"
MIN_INT8_AGREEMENT = 0.995  # share of texts on which int8 must give fp32's label to be served
INT8_WORSE_P = 0.05  # ...and int8 must not be worse than fp32 on the test split at this significance
AGREEMENT_SAMPLE = 5000  # texts compared at most (the test split always, then a sample of the rest)
PARITY_TOLERANCE = 1e-3  # largest |logit| difference between fp32 ONNX and PyTorch before ONNX is distrusted
OPSET = 17

log = logging.getLogger("tinytutor.export")


class _Logits(torch.nn.Module):
    """The classifier with positional inputs and the logits alone as output, for the exporter."""

    def __init__(self, model, input_names: list[str]):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).logits


def input_names(tokenizer) -> list[str]:
    """The inputs the tokenizer produces, in a fixed order (RoBERTa and DistilBERT have no token_type_ids)."""
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]


def export_onnx(model, tokenizer, path: Path) -> Path:
    """Write ``model`` (a sequence classifier, on the CPU) as fp32 ONNX with dynamic batch and length."""
    names = input_names(tokenizer)
    sample = tokenizer(["a short example", "and a somewhat longer example text"], padding=True, return_tensors="pt")
    model = model.to("cpu").eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch", 1: "length"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes; parity is checked
        # The TorchScript exporter writes one self-contained file; the dynamo exporter needs onnxscript
        # and splits weights into a side file, which the quantiser then has to find.
        # The exporter puts the module back in the mode it found it in, recursively: a wrapper left in
        # training mode would switch the model's dropout on for whoever uses it next.
        torch.onnx.export(_Logits(model, names).eval(), tuple(sample[n] for n in names), str(path),
                          input_names=names, output_names=["logits"], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    return path


def quantize_int8(fp32: Path, int8: Path, weight_type: str = "int8", per_channel: bool = True,
                  reduce_range: bool = False, embeddings: bool = False) -> Path:
    """ONNX Runtime's dynamic quantisation: int8 weights for MatMul/Gemm, activations quantised per call.

    Weights get one scale per output channel: with one scale per tensor, 1 of 158 test labels flipped on
    the chatterbot example (0.5 points of macro-F1); per channel, none did, at the same size and speed.
    The embedding tables (Gather) stay fp32 unless ``embeddings``: a lookup costs the same in either, and
    int8 embeddings were the largest source of flipped labels (a 3-layer model on the 21 chat topics: 16
    of 1,857 lines differed from fp32 with them, 10 without). ``benchmarks/bench_serving.py`` (part 3)
    compares the options on this CPU (AVX2, no VNNI): reduce_range and uint8 weights changed a line or two.
    """
    import logging as std_logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = std_logging.getLogger()  # the quantiser logs a pre-processing hint at WARNING on the root logger
    level = quiet.level
    quiet.setLevel(std_logging.ERROR)
    try:
        quantize_dynamic(str(fp32), str(int8), per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                         op_types_to_quantize=["MatMul", "Gemm"] + (["Gather"] if embeddings else []))
    finally:
        quiet.setLevel(level)
    return int8


def session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session with its thread count set, not left to the machine's core count:
    a process serving beside training workers must not take every core."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting beside training
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _batched_logits(forward, tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """``forward(encoding) -> logits`` over length-sorted batches of every window of ``texts``
    (:func:`trainer.batching.tokenize_windows`), each text's the mean of its windows', in text order."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    inputs, owner = tokenize_windows(tokenizer, texts, max_length)
    order = sorted(range(len(owner)), key=lambda i: len(inputs["input_ids"][i]))
    parts = {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer.pad({k: [v[i] for i in idx] for k, v in inputs.items()}, return_tensors="np")
        for i, row in zip(idx, forward(enc), strict=True):
            parts[i] = row
    return mean_by_text(np.stack([parts[i] for i in range(len(owner))]), owner, len(texts))


def onnx_logits(sess, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Logits [n, labels] from an ONNX session, in the order of ``texts``."""
    names = [i.name for i in sess.get_inputs()]
    return _batched_logits(lambda enc: sess.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0],
                           tokenizer, texts, max_length, batch_size)


@torch.inference_mode()
def torch_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """The same from PyTorch, fp32 on the CPU: the reference the export must match (training may have
    run on a GPU in bf16)."""
    model = model.to("cpu").eval()
    names = input_names(tokenizer)
    return _batched_logits(lambda enc: model(**{n: torch.from_numpy(enc[n]) for n in names}).logits.float().numpy(),
                           tokenizer, texts, max_length, batch_size)


def int8_worse_p(y_true: list[int], fp32_pred: np.ndarray, int8_pred: np.ndarray) -> float:
    """One-sided exact McNemar test on the labelled texts: the chance of int8 losing at least this many
    more texts than it wins against fp32 if the two were equally good (1.0 when they never disagree).
    A difference of one or two lines on a test split of a hundred is noise; this says when it is not."""
    from scipy.stats import binomtest

    y = np.asarray(y_true)
    lost = int(((fp32_pred == y) & (int8_pred != y)).sum())
    won = int(((fp32_pred != y) & (int8_pred == y)).sum())
    if lost + won == 0:
        return 1.0
    return float(binomtest(lost, lost + won, 0.5, alternative="greater").pvalue)


def build_serving(model, tokenizer, out_dir: Path, texts: list[str], y_true: list[int], max_length: int,
                  unlabelled: list[str] = (), seed: int = 0) -> dict:
    """Export, quantise, compare both and keep the file to serve. Returns what metrics.json records.

    fp32 ONNX must match PyTorch's fp32 logits on ``texts`` within ``PARITY_TOLERANCE``, or no ONNX
    file is kept and the model is served by PyTorch. int8 is served when its labels agree with fp32's
    on at least ``MIN_INT8_AGREEMENT`` of every text there is (the labelled ``texts``, the test split,
    and ``unlabelled``, the training and validation texts: agreement needs no labels; at most
    ``AGREEMENT_SAMPLE`` of them, drawn with ``seed``), and it is not significantly worse than fp32 on
    the labelled ones (:func:`int8_worse_p` at least ``INT8_WORSE_P``).
    """
    onnx_dir = out_dir / ONNX_DIR
    fp32, int8 = onnx_dir / FP32_FILE, onnx_dir / INT8_FILE
    export_onnx(model, tokenizer, fp32)
    quantize_int8(fp32, int8)
    extra = list(unlabelled)
    if len(texts) + len(extra) > AGREEMENT_SAMPLE:
        keep = np.random.default_rng(seed).permutation(len(extra))[:max(0, AGREEMENT_SAMPLE - len(texts))]
        extra = [extra[i] for i in sorted(keep)]
    every = list(texts) + extra
    fp32_logits = onnx_logits(session(fp32), tokenizer, every, max_length)
    int8_logits = onnx_logits(session(int8), tokenizer, every, max_length)
    reference = torch_logits(model, tokenizer, texts, max_length)
    parity = float(np.abs(fp32_logits[:len(texts)] - reference).max()) if len(texts) else 0.0
    fp32_pred, int8_pred = fp32_logits.argmax(1), int8_logits.argmax(1)
    n = len(texts)
    labels = sorted(set(y_true)) if y_true else None
    f1_fp32 = float(f1_score(y_true, fp32_pred[:n], average="macro", labels=labels, zero_division=0))
    f1_int8 = float(f1_score(y_true, int8_pred[:n], average="macro", labels=labels, zero_division=0))
    agreement = float((fp32_pred == int8_pred).mean()) if len(every) else 1.0
    p_worse = int8_worse_p(y_true, fp32_pred[:n], int8_pred[:n]) if n else 1.0
    info = {"fp32_macro_f1": round(f1_fp32, 4), "int8_macro_f1": round(f1_int8, 4),
            "int8_agreement": round(agreement, 4), "int8_worse_p": round(p_worse, 4),
            "onnx_max_logit_diff": parity, "checked_on": len(every), "labelled": n}
    if parity > PARITY_TOLERANCE:
        log.warning("ONNX export differs from PyTorch by %.2g; serving PyTorch", parity)
        fp32.unlink()
        int8.unlink()
        onnx_dir.rmdir()  # no ONNX file: nothing can serve a wrong one
        return info | {"engine": "torch", "file": "model.safetensors",
                       "why": f"the ONNX export differed from PyTorch by {parity:.2g} (tolerance {PARITY_TOLERANCE})"}
    flips = int((fp32_pred != int8_pred).sum())
    agree = f"int8 and fp32 give the same label on {agreement:.1%} of {len(every):,} texts ({flips} differ)"
    if agreement >= MIN_INT8_AGREEMENT and p_worse >= INT8_WORSE_P:
        fp32.unlink()
        return info | {"engine": "onnxruntime-int8", "file": f"{ONNX_DIR}/{INT8_FILE}",
                       "why": f"{agree}; on the test split macro-F1 {f1_int8:.3f} vs {f1_fp32:.3f}, a difference "
                              f"within its noise (p = {p_worse:.2f})"}
    reason = (f"below the {MIN_INT8_AGREEMENT:.1%} needed" if agreement < MIN_INT8_AGREEMENT else
              f"and int8 is worse on the test split beyond noise (macro-F1 {f1_int8:.3f} vs {f1_fp32:.3f}, "
              f"p = {p_worse:.3f})")
    return info | {"engine": "onnxruntime-fp32", "file": f"{ONNX_DIR}/{FP32_FILE}", "why": f"{agree}, {reason}"}
