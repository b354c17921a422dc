"""Which labels look wrong and would more data help (trainer.insight): on data whose answer is known, and in
a whole run, where the rows named are the spreadsheet's."""

from __future__ import annotations

import csv
import json

import numpy as np
from helpers import synthetic_rows, write_csv

from trainer.insight import Examples, curve_advice, learning_curve, suspect_rows

LABELS = ["food", "sports", "weather"]


def clusters(n_per_class=60, flips=6, seed=0):
    """Three well-separated clusters; ``flips`` examples given another cluster's label."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16) * 6  # far apart: a flipped label is unmistakable
    x = np.vstack([rng.normal(centres[c], 1.0, size=(n_per_class, 16)) for c in range(3)])
    truth = np.repeat(np.arange(3), n_per_class)
    y = truth.copy()
    flipped = rng.choice(len(y), size=flips, replace=False)
    y[flipped] = (y[flipped] + 1) % 3
    return x, y, truth, flipped


def test_flipped_labels_are_found_and_named_with_the_label_expected():
    x, y, truth, flipped = clusters()
    rows = [i + 2 for i in range(len(y))]  # as a spreadsheet numbers them: the header is row 1
    found = suspect_rows(Examples(x, y, rows, [f"text {i}" for i in range(len(y))]), LABELS, C=1.0, seed=0)
    top = found[:len(flipped)]
    assert {r["row"] for r in top} == {int(i) + 2 for i in flipped}
    for r in top:
        i = r["row"] - 2
        assert (r["text"], r["label"], r["expected"]) == (f"text {i}", LABELS[y[i]], LABELS[truth[i]])
        assert r["expected_probability"] > 0.5 > r["label_probability"]


def test_a_clean_labelling_has_few_suspects():
    x, y, _, _ = clusters(flips=0)
    found = suspect_rows(Examples(x, y, list(range(len(y))), [""] * len(y)), LABELS, C=1.0, seed=0)
    assert len(found) <= 2


def test_the_learning_curve_keeps_every_label_and_grows():
    x, y, _, _ = clusters(n_per_class=40, flips=0)
    x_test, y_test, _, _ = clusters(n_per_class=20, flips=0, seed=1)
    pts = learning_curve(x, y, x_test, y_test, LABELS, C=1.0, seed=0)
    assert [p["fraction"] for p in pts] == [0.1, 0.25, 0.5, 1.0]
    assert [p["examples"] for p in pts] == [12, 30, 60, 120]  # a stratified share of 40 per label
    assert set(pts[0]["per_class_f1"]) == set(LABELS) and pts[-1]["macro_f1"] > 0.95


def test_the_advice_says_rising_and_which_label_or_flat():
    def point(fraction, f1, per_class):
        return {"fraction": fraction, "examples": 0, "macro_f1": f1, "per_class_f1": per_class}

    rising = [point(0.5, 0.70, {"a": 0.9, "b": 0.5}), point(1.0, 0.80, {"a": 0.9, "b": 0.7})]
    assert curve_advice(rising) == ("Still rising: macro-F1 0.70 with half the training data, 0.80 with all of it. "
                                    "More examples will help, most of 'b' (its F1 rose most).")
    flat = [point(0.5, 0.79, {"a": 0.8}), point(1.0, 0.80, {"a": 0.8})]
    assert curve_advice(flat).startswith("Flat since 50 % of the training data (macro-F1 0.79 -> 0.80)")


def test_a_run_names_the_rows_of_the_file_and_writes_them_to_fix(tmp_path, tiny_base):
    from core.spec import TrainSpec
    from trainer.pipeline import run_training

    rows = synthetic_rows(40)
    for i in (3, 17, 50):  # a few labels wrong on purpose
        rows[i] = (rows[i][0], "sports" if rows[i][1] != "sports" else "food")
    path = write_csv(tmp_path / "data.csv", rows, header=("message", "topic"))
    r = run_training(TrainSpec(data_path=str(path), base=str(tiny_base), out_dir=str(tmp_path / "m"), layers=2,
                               epochs=1, batch_size=16, seed=3))
    m = r.metrics
    assert m["suspect_rows"], "no suspects"
    for s in m["suspect_rows"]:  # the row a student's spreadsheet shows: header row 1, first example row 2
        assert rows[s["row"] - 2] == (s["text"], s["label"]) and s["expected"] != s["label"]
    with open(r.model_dir / "suspect_rows.csv", newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["row", "message", "topic", "expected_label", "label_probability",
                                "expected_probability"]
    assert [int(w["row"]) for w in written] == [s["row"] for s in m["suspect_rows"]]
    assert [p["fraction"] for p in m["learning_curve"]] == [0.1, 0.25, 0.5, 1.0]
    assert m["learning_curve_advice"] in m["advice"]
    assert 0 < m["insight_seconds"] < m["wall_seconds"]  # what it added to the run, measured in the run
    assert (r.model_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((r.model_dir / "metrics.json").read_text())["suspect_rows"] == m["suspect_rows"]
