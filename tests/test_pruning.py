import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)

from trainer.errors import PruningError
from trainer.pruning import encoder_layers, prune_layers, select_layers


@pytest.mark.parametrize(
    ("total", "keep", "strategy", "expected"),
    [
        (6, 3, "alternate", [1, 3, 5]),
        (12, 4, "alternate", [2, 5, 8, 11]),  # TinyBERT's g(m) = 3m
        (6, 4, "alternate", [0, 2, 3, 5]),
        (6, 2, "bottom", [0, 1]),
        (6, 2, "top", [4, 5]),
        (6, 6, "alternate", [0, 1, 2, 3, 4, 5]),
        (6, None, "top", [0, 1, 2, 3, 4, 5]),
    ],
)
def test_select_layers(total, keep, strategy, expected):
    assert select_layers(total, keep, strategy) == expected


@pytest.mark.parametrize(("keep", "explicit", "message"), [
    (7, None, "Cannot keep 7 layers"),
    (0, None, "Cannot keep 0 layers"),
    (None, [0, 6], "Layer 6 does not exist"),
    (None, [2, 1], "increasing order"),
    (None, [], "at least one"),
])
def test_select_layers_refuses(keep, explicit, message):
    with pytest.raises(PruningError, match=message):
        select_layers(6, keep, "alternate", explicit)


def _tiny_bert():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, num_labels=3, attn_implementation="eager")
    return BertForSequenceClassification(config).eval()


def test_pruned_model_equals_manual_forward_through_kept_layers(tmp_path):
    full = _tiny_bert()
    keep = [0, 2, 3]
    original_layers = list(encoder_layers(full))
    pruned = _tiny_bert()  # same seed, same weights
    prune_layers(pruned, keep, base_name="tiny", strategy="explicit")

    ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 10, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        hidden = full.bert.embeddings(input_ids=ids)
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in keep:
            hidden = original_layers[i](hidden, attention_mask=additive)
        manual = full.classifier(full.bert.pooler(hidden))
        got = pruned(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got, manual, rtol=1e-5, atol=1e-5)

    # and the pruned model differs from the full one, so the test would notice no pruning at all
    with torch.no_grad():
        assert not torch.allclose(full(input_ids=ids, attention_mask=mask).logits, got, atol=1e-4)

    pruned.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 3
    assert reloaded.config.tinytutor_pruning == {
        "base_model": "tiny", "base_num_layers": 4, "layers_kept": [0, 2, 3], "strategy": "explicit"}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, attention_mask=mask).logits, got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["roberta", "distilbert", "electra"])
def test_prune_other_layouts(kind, tmp_path):
    from transformers import AutoConfig

    kwargs = dict(vocab_size=60, num_labels=2)
    if kind == "distilbert":
        config = AutoConfig.for_model(kind, dim=32, n_layers=4, n_heads=2, hidden_dim=64, **kwargs)
    else:
        config = AutoConfig.for_model(kind, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                      intermediate_size=64, **kwargs)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    prune_layers(model, [1, 3], base_name=kind, strategy="explicit")
    assert len(encoder_layers(model)) == 2
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert len(encoder_layers(reloaded)) == 2
    assert reloaded.config.tinytutor_pruning["layers_kept"] == [1, 3]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, before)
