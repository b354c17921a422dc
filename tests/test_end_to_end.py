"""The real embedded MiniLM on real chat lines (chatterbot-corpus topics): about a minute on 2 cores."""

import json

import pytest
from transformers import pipeline

from trainer.examples import write_chatterbot_csv
from trainer.pipeline import run_training
from trainer.predict import Predictor
from trainer.spec import TrainSpec


@pytest.mark.slow
def test_pruned_minilm_learns_chat_topics(tmp_path):
    data = write_chatterbot_csv(tmp_path / "chat.csv")
    result = run_training(TrainSpec(data_path=str(data), out_dir=str(tmp_path / "model")))  # the defaults
    m = result.metrics
    # five topics: chance is 0.2 macro-F1; measured 0.88 with these defaults
    assert m["macro_f1"] >= 0.7, m["report_text"]
    assert m["layers_kept"] == [1, 3, 5] and m["layers_base"] == 6
    assert m["params"] < 0.8 * m["params_base"]
    assert m["baseline_macro_f1"] > 0.5 and m["advice"]
    assert result.confusion_png.stat().st_size > 10_000 and result.curve_png.stat().st_size > 10_000
    assert json.loads((result.model_dir / "metrics.json").read_text())["labels"] == m["labels"]

    # the HF pipeline and TinyTutor's own predict path agree on the saved model
    texts = ["How do I write a for loop in Python?", "I feel so sad and lonely today",
             "Who wrote the novel War and Peace?", "Are you an artificial intelligence?"]
    ours = [p.label for p in Predictor(result.model_dir).predict(texts)]
    theirs = [o["label"] for o in pipeline("text-classification", model=str(result.model_dir))(texts)]
    assert ours == theirs
    assert ours[0] == "coding"
