"""The model card (README.md beside a trained model) and the report's comparison with the cheap references."""

from __future__ import annotations


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
