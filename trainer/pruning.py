"""TinyBERT-style layer reduction: keep some encoder layers of a pretrained model, with their weights.

``select_layers`` is a pure choice of indices; ``prune_layers`` applies it to a model of a supported
layout and records the choice in the model's config so it survives ``save_pretrained``.
"""

from __future__ import annotations

from .errors import PruningError


def select_layers(total: int, keep: int | None = None, strategy: str = "alternate",
                  explicit: list[int] | None = None) -> list[int]:
    """Which of ``total`` layers (0-based) to keep.

    - ``alternate``: TinyBERT's uniform mapping, student layer m takes teacher layer m*total/keep,
      so the layers are spread evenly and the top layer is always kept (6 -> 3 keeps 1, 3, 5).
    - ``bottom``: the lowest ``keep`` layers (drop the top).
    - ``top``: the highest ``keep`` layers.
    - ``explicit``: exactly these indices, in order.
    """
    if explicit is not None:
        chosen = list(explicit)
        if not chosen:
            raise PruningError("An explicit layer list must name at least one layer")
        bad = [i for i in chosen if not 0 <= i < total]
        if bad:
            raise PruningError(f"Layer {bad[0]} does not exist: this model has layers 0 to {total - 1}")
        if len(set(chosen)) != len(chosen) or chosen != sorted(chosen):
            raise PruningError(f"Layers must be listed once each in increasing order, got {chosen}")
        return chosen
    if keep is None or keep == total:
        return list(range(total))
    if not 1 <= keep <= total:
        raise PruningError(f"Cannot keep {keep} layers of a model that has {total}; choose 1 to {total}")
    if strategy == "alternate":
        return [((m + 1) * total) // keep - 1 for m in range(keep)]
    if strategy == "bottom":
        return list(range(keep))
    if strategy == "top":
        return list(range(total - keep, total))
    raise PruningError(f"Unknown pruning strategy {strategy!r}; use alternate, bottom or top")


def encoder_layers(model):
    """The encoder's ModuleList for BERT, RoBERTa, ELECTRA (``encoder.layer``) and DistilBERT (``transformer.layer``)."""
    from torch import nn

    base = model.base_model
    for path in ("encoder.layer", "transformer.layer"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise PruningError(f"Don't know where the encoder layers of a {model.config.model_type} model are")


def num_layers(config) -> int:
    return getattr(config, "num_hidden_layers", None) or config.n_layers


def prune_layers(model, keep: list[int], base_name: str, strategy: str) -> None:
    """Keep only ``keep`` encoder layers, in place, and record the choice in ``model.config``."""
    from torch import nn

    layers = encoder_layers(model)
    total = len(layers)
    select_layers(total, explicit=keep)  # validates
    kept = nn.ModuleList([layers[i] for i in keep])
    for new_idx, layer in enumerate(kept):
        for module in layer.modules():  # attention caches index layers by position
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    parent = model.base_model.encoder if hasattr(model.base_model, "encoder") else model.base_model.transformer
    parent.layer = kept
    if model.config.model_type == "distilbert":
        model.config.n_layers = len(keep)
    else:
        model.config.num_hidden_layers = len(keep)
    model.config.tinytutor_pruning = {
        "base_model": base_name,
        "base_num_layers": total,
        "layers_kept": list(keep),
        "strategy": strategy,
    }
