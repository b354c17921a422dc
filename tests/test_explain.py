"""Why this label: occlusion over words (trainer.explain), on a model whose answer is known exactly and on a
trained one served by ONNX Runtime."""

from __future__ import annotations

import numpy as np
from helpers import TOPIC_WORDS

from trainer.explain import MAX_PARTS, explain, explain_examples, explain_many


class CountingModel:
    """Logits are word counts: each food word adds 1 to food, each weather word 1 to weather."""

    labels = ["food", "weather"]

    def __init__(self):
        self.calls = 0

    def logits(self, texts):
        self.calls += 1
        words = [t.lower().split() for t in texts]
        return np.array([[sum(w.strip(".,!?") in TOPIC_WORDS[lab] for w in ws) for lab in self.labels]
                         for ws in words], dtype=np.float32)


def test_the_words_that_carry_the_label_are_the_ones_named():
    e = explain(CountingModel(), "Pizza and rain, then soup!")
    assert (e.label, e.runner_up) == ("food", "weather")
    weights = {p.text: p.weight for p in e.parts}
    assert weights["and"] == 0 and weights["then"] == 0  # leaving out a filler word changes nothing
    assert weights["Pizza"] > 0 and weights["soup!"] == weights["Pizza"]  # each food word pushes equally
    assert weights["rain,"] < 0  # the weather word pulls towards the runner-up
    assert [p.text for p in e.top()] == ["Pizza", "soup!"]
    assert e.reading == "mostly 'Pizza' and 'soup' (against weather)"
    assert e.marked(lambda w: f"**{w}**") == "**Pizza** and rain, then **soup!**"


def test_a_message_no_word_decides_says_so():
    e = explain(CountingModel(), "i think so")
    assert e.top() == [] and e.reading.startswith("no single word decides it")
    assert e.marked(lambda w: f"**{w}**") == "i think so"


def test_many_messages_are_explained_in_one_call_and_long_ones_in_runs_of_words():
    model = CountingModel()
    long = " ".join(["the"] * 150 + ["pizza"] + ["the"] * 49)
    short, longer = explain_many(model, ["rain and snow", long])
    assert model.calls == 1  # every variant of both texts in one call of the predictor
    assert [p.text for p in short.top()] == ["rain", "snow"]
    assert len(longer.parts) == MAX_PARTS  # 200 words, 48 runs
    assert longer.parts[0].start == 0 and longer.parts[-1].end == len(long)
    assert all(a.end < b.start for a, b in zip(longer.parts, longer.parts[1:], strict=False))
    (top,) = longer.top()
    assert "pizza" in top.text and top.weight > 0


def test_a_confusion_cell_s_examples_are_explained_mistakes_first_within_a_time_budget():
    examples = [{"row": r, "text": t, "label": y, "predicted": p, "confidence": c} for r, t, y, p, c in (
        (2, "pizza soup", "food", "food", 0.9), (3, "rain snow", "weather", "weather", 0.8),
        (4, "pizza rain soup", "weather", "food", 0.7), (5, "soup", "food", "food", 0.6),
        (6, "snow pizza rain", "food", "weather", 0.95))]
    assert explain_examples(CountingModel(), examples, seconds=60) == 5
    assert examples[2]["explanation"]["top"] == ["pizza", "soup"]  # why a weather text was called food
    # with no time at all: the rows it must explain (the report's mistakes), and nothing more
    for x in examples:
        x.pop("explanation")
    assert explain_examples(CountingModel(), examples, seconds=0, first={4}) == 1
    assert [x["row"] for x in examples if "explanation" in x] == [4]
    # with a little: every mistake before any correct example, the most confident first
    model = CountingModel()
    order = []
    model.logits = lambda texts, inner=model.logits: (order.append(texts[0]), inner(texts))[1]
    for x in examples:
        x.pop("explanation", None)
    explain_examples(model, examples, seconds=60)
    assert order == ["snow pizza rain", "pizza rain soup", "pizza soup", "rain snow", "soup"]


def test_a_served_model_s_explanation_names_a_topic_word_and_removing_it_lowers_the_label(learnable_csv,
                                                                                         tiny_base, tmp_path):
    from core.spec import TrainSpec
    from trainer.pipeline import run_training
    from trainer.predict import Predictor

    out = run_training(TrainSpec(data_path=str(learnable_csv), base=str(tiny_base), out_dir=str(tmp_path / "m"),
                                 layers=2, epochs=12, lr=1e-3, batch_size=8, seed=7)).model_dir
    served = Predictor(out)
    assert served.engine.startswith("onnxruntime")  # the model explained is the one that answers
    text = "i think the pizza was really warm today"
    e = explain(served, text)
    assert e.label == served.predict([text])[0].label
    top = e.top()[0]
    assert top.text in TOPIC_WORDS[e.label]
    before = served.predict([text])[0].score
    after = dict(served.predict([text.replace(top.text, "")], top_k=3)[0].top).get(e.label, 0.0)
    assert after < before
