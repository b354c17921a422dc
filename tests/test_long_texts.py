"""A text longer than max_length is read in overlapping windows, in training, evaluation and serving."""

import numpy as np
import pytest
import torch
from helpers import make_tiny_base, synthetic_rows, write_csv

from core.spec import TrainSpec
from trainer.batching import MAX_WINDOWS, encode, text_labels, tokenize_windows
from trainer.classifier import load_model_dir
from trainer.pipeline import run_training
from trainer.predict import Predictor
from trainer.train import predict_proba

WEATHER = "rain snow cloud storm wind forecast sky cold "
FOOD = "pizza bread cheese soup salad dinner lunch spicy "


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small model for the module, trained on short texts (food, sports, weather) with max_length 32."""
    root = tmp_path_factory.mktemp("long")
    base = make_tiny_base(root / "base")
    data = write_csv(root / "topics.csv", synthetic_rows(80))
    result = run_training(TrainSpec(data_path=str(data), base=str(base), out_dir=str(root / "model"), layers=2,
                                    epochs=12, lr=1e-3, batch_size=8, seed=7, max_length=32))
    return result.model_dir


def test_a_short_text_is_one_window_and_a_long_one_is_covered_by_overlapping_windows(trained):
    tok = Predictor(trained).tokenizer
    short = "rain snow cloud"
    inputs, owner = tokenize_windows(tok, [short, WEATHER * 20, short], 32)
    assert owner[0] == 0 and owner[-1] == 2 and owner.count(0) == 1 and owner.count(2) == 1
    assert inputs["input_ids"][0] == tok(short, truncation=True, max_length=32)["input_ids"]  # read as before
    windows = [ids for ids, t in zip(inputs["input_ids"], owner, strict=True) if t == 1]
    assert len(windows) > 2 and all(len(w) <= 32 for w in windows)
    body = tok(WEATHER * 20, add_special_tokens=False)["input_ids"]
    inner = [w[1:-1] for w in windows]  # without [CLS] and [SEP]
    assert inner[0] == body[:30] and inner[-1] == body[-len(inner[-1]):]  # from the first token to the last
    assert inner[1][:15] == inner[0][15:]  # each window reads half of the one before again
    # a text of thousands of tokens is read in at most MAX_WINDOWS windows, its first and last among them
    _, owner = tokenize_windows(tok, [WEATHER * 400], 32)
    assert len(owner) == MAX_WINDOWS


def test_serving_gives_a_long_text_the_mean_of_its_windows_logits(trained):
    served, torch_served = Predictor(trained), Predictor(trained, engine="torch")
    text = WEATHER * 6 + FOOD * 12
    model = load_model_dir(trained).eval()
    inputs, _ = tokenize_windows(served.tokenizer, [text], served.max_length)
    with torch.inference_mode():
        per_window = np.stack([model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in inputs["input_ids"]])
    assert len(per_window) > 3
    np.testing.assert_allclose(torch_served.logits([text])[0], per_window.mean(0), atol=1e-4)
    assert served.predict([text])[0].label == torch_served.predict([text])[0].label  # the ONNX file served


def test_a_long_text_is_classified_by_all_of_it_not_by_its_first_tokens(trained):
    p = Predictor(trained)
    # its first 32 tokens speak of the weather, the 300 after them of food: reading the head alone says weather
    text = WEATHER * 4 + FOOD * 40
    head = p.tokenizer.decode(p.tokenizer(text, truncation=True, max_length=32)["input_ids"][1:-1])
    assert p.predict([head])[0].label == "weather"
    assert p.predict([text])[0].label == "food"
    assert [x.label for x in p.predict(["rain snow cloud", text, "pizza bread"])] == ["weather", "food", "food"]


def test_evaluation_scores_each_long_text_once_by_its_windows(trained):
    p = Predictor(trained, engine="torch")
    texts, labels = [WEATHER * 4 + FOOD * 40, "rain snow", FOOD * 30], [1, 2, 1]
    features = encode(p.tokenizer, texts, 32, labels)
    assert len(features) > len(texts) and text_labels(features) == labels  # one label a text, not a window
    proba = predict_proba(p.model, features, p.tokenizer, torch.device("cpu")).numpy()
    assert proba.shape == (3, len(p.labels))
    np.testing.assert_allclose(proba, torch.softmax(torch.from_numpy(p.logits(texts)), -1).numpy(), atol=1e-5)


def test_a_file_of_long_documents_trains_and_is_scored_once_a_document(tmp_path):
    import json
    import random

    rng = random.Random(0)
    words = {"weather": WEATHER.split(), "food": FOOD.split()}
    # documents of 40 to 70 words (up to four windows at max_length 24), each mostly its topic's words
    rows = [(" ".join(rng.choice(words[t]) for _ in range(rng.randint(40, 70))), t) for t in ("weather", "food")
            for _ in range(30)]
    data = write_csv(tmp_path / "long.csv", rows)
    base = make_tiny_base(tmp_path / "base", layers=2)
    result = run_training(TrainSpec(data_path=str(data), base=str(base), out_dir=str(tmp_path / "model"), layers=2,
                                    epochs=6, lr=1e-3, batch_size=8, seed=3, max_length=24))
    m = result.metrics
    assert "long_texts" in [w["code"] for w in m["warnings"]]  # the student is told how they are read
    n_test = m["split"]["test"]
    assert sum(m["report"][lab]["support"] for lab in m["labels"]) == n_test  # one prediction a document
    assert m["serving"]["labelled"] == n_test
    assert m["macro_f1"] == 1.0  # read whole, every test document is plainly one topic or the other
    assert json.loads((result.model_dir / "metrics.json").read_text())["split"]["test"] == n_test
