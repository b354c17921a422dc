"""The classifier TinyTutor trains: an encoder read as it was trained, then one linear layer.

See :mod:`trainer.models` for how a base declares its pooling. This module imports torch; the
registry in ``trainer.models`` does not (the data check stays light).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import BaseModelError
from .models import (
    HEAD_DIR,
    NORMALIZE_DIR,
    POOLING_DIR,
    POOLINGS,
    SUPPORTED_TYPES,
    WITH_POOLER,
    BaseModel,
    check_weights,
    declared_pooling,
    load_hint,
)


def pool(hidden, mask, pooling: str):
    """The sentence embedding: the mean of the real tokens' vectors (``mask`` [batch, length] of 0/1;
    padding never counts) or the first token's, L2-normalised. hidden: [batch, length, width] ->
    [batch, width]."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        embedding = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    else:
        embedding = hidden[:, 0]
    return F.normalize(embedding, p=2, dim=-1)


class PooledClassifier(torch.nn.Module):
    """An encoder read as it was trained, then a linear head: ``logits = W · normalise(pool(encoder(x))) + b``.

    It answers like a transformers sequence classifier where the trainer needs it to (``config``,
    ``base_model``, ``forward(...)`` returning ``logits``, ``hidden_states`` and ``attentions``,
    ``save_pretrained``), so pruning, LoRA, head-only training, distillation and the ONNX export treat
    both alike. ``save_pretrained`` writes the sentence-transformers layout (module docstring).
    """

    base_model_prefix = "encoder"  # parameters under it are the encoder's; the rest is the head

    def __init__(self, encoder, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise BaseModelError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.encoder, self.pooling, self.config = encoder, pooling, encoder.config
        self.config.tinytutor_pooling = pooling
        width = getattr(self.config, "hidden_size", None) or self.config.dim  # DistilBERT calls it dim
        p = getattr(self.config, "hidden_dropout_prob", None)
        self.dropout = torch.nn.Dropout(0.1 if p is None else p)
        self.classifier = torch.nn.Linear(width, self.config.num_labels)

    @property
    def base_model(self):
        return self.encoder

    def embed(self, input_ids, attention_mask=None, token_type_ids=None, **encoder_kwargs):
        """(sentence embeddings [batch, width], the encoder's outputs)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        out = self.encoder(**inputs, **encoder_kwargs)
        return pool(out.last_hidden_state, attention_mask, self.pooling), out

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False, **_ignored):
        from transformers.modeling_outputs import SequenceClassifierOutput

        embedding, out = self.embed(input_ids, attention_mask, token_type_ids,
                                    output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(embedding)),
                                        hidden_states=out.hidden_states, attentions=out.attentions)

    def set_attn_implementation(self, implementation: str) -> None:
        self.encoder.set_attn_implementation(implementation)

    def save_pretrained(self, path) -> None:
        """The encoder as a transformers model at the root (config.json with the labels, model.safetensors),
        and the modules sentence-transformers reads it with: mean or [CLS] pooling, normalisation, the head."""
        from safetensors.torch import save_file

        path = Path(path)
        self.encoder.save_pretrained(path)
        width = self.classifier.in_features
        modules = [("sentence_transformers.models.Transformer", ""),
                   ("sentence_transformers.models.Pooling", POOLING_DIR),
                   ("sentence_transformers.models.Normalize", NORMALIZE_DIR),
                   ("sentence_transformers.models.Dense", HEAD_DIR)]
        _write_json(path / "modules.json", [{"idx": i, "name": str(i), "path": p, "type": t}
                                            for i, (t, p) in enumerate(modules)])
        _write_json(path / "sentence_bert_config.json",
                    {"max_seq_length": getattr(self.config, "tinytutor_max_length", None) or 128,
                     "do_lower_case": False})
        _write_json(path / POOLING_DIR / "config.json", {
            "word_embedding_dimension": width, "pooling_mode_cls_token": self.pooling == "cls",
            "pooling_mode_mean_tokens": self.pooling == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False})
        (path / NORMALIZE_DIR).mkdir(exist_ok=True)
        _write_json(path / HEAD_DIR / "config.json", {
            "in_features": width, "out_features": self.classifier.out_features, "bias": True,
            "activation_function": "torch.nn.modules.linear.Identity"})
        save_file({"linear.weight": self.classifier.weight.detach().cpu().contiguous(),
                   "linear.bias": self.classifier.bias.detach().cpu().contiguous()},
                  str(path / HEAD_DIR / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path) -> PooledClassifier:
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel

        path = Path(path)
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        extra = {"add_pooling_layer": False} if config.model_type in WITH_POOLER else {}
        encoder = AutoModel.from_pretrained(path, config=config, local_files_only=True, use_safetensors=True,
                                            trust_remote_code=False, **extra)
        model = cls(encoder, getattr(encoder.config, "tinytutor_pooling", None) or declared_pooling(path))
        head = load_file(str(path / HEAD_DIR / "model.safetensors"))
        model.classifier.weight.data.copy_(head["linear.weight"])
        model.classifier.bias.data.copy_(head["linear.bias"])
        return model.eval()


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def is_pooled_dir(model_dir: Path) -> bool:
    """A directory :class:`PooledClassifier` wrote (rather than a transformers sequence classifier)."""
    return (Path(model_dir) / HEAD_DIR / "model.safetensors").is_file() and (Path(model_dir) / "modules.json").is_file()


def load_model_dir(model_dir: str | Path):
    """A trained model directory as a PyTorch classifier: a :class:`PooledClassifier`, or a transformers
    sequence classifier for directories written before pooling was read as the base was trained."""
    model_dir = Path(model_dir)
    check_weights(model_dir)
    if is_pooled_dir(model_dir):
        check_weights(model_dir / HEAD_DIR, f"the head of {model_dir}")  # damaged: a plain refusal, no traceback
        return PooledClassifier.from_pretrained(model_dir)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False).eval()


def load_classifier(base: BaseModel, id2label: dict[int, str]):
    """The base encoder, read as it was trained (see :attr:`BaseModel.reads`), under a fresh linear head
    sized for these labels."""
    from transformers import AutoConfig, AutoModel

    if base.local:
        check_weights(base.source, base.name)
    try:
        config = AutoConfig.from_pretrained(base.source, local_files_only=base.local, trust_remote_code=False)
    except OSError as exc:
        raise BaseModelError(load_hint(base, exc)) from None
    if config.model_type not in SUPPORTED_TYPES:
        raise BaseModelError(f"{base.name} is a {config.model_type} model; TinyTutor prunes {', '.join(SUPPORTED_TYPES)} encoders")
    _set_labels(config, id2label)
    config.tinytutor_pooling = base.reads
    # The encoder alone: a base saved as a classifier or with a pooler loads without them (its [CLS] pooler
    # was trained for next-sentence prediction, which a sentence encoder never used); that they were left
    # out is expected, so transformers' load report is not shown.
    from transformers.utils import logging as hf_logging

    extra = {"add_pooling_layer": False} if config.model_type in WITH_POOLER else {}
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder = AutoModel.from_pretrained(base.source, config=config, local_files_only=base.local,
                                            use_safetensors=True, trust_remote_code=False, **extra)
    finally:
        hf_logging.set_verbosity(level)
    return PooledClassifier(encoder, base.reads)


def _set_labels(config, id2label: dict[int, str]) -> None:
    config.num_labels = len(id2label)
    config.id2label = dict(id2label)
    config.label2id = {v: k for k, v in id2label.items()}
    config.problem_type = "single_label_classification"
