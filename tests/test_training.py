"""The whole pipeline on a tiny random BERT: artefacts, methods, early stopping, failures leave nothing."""

import json

import pytest
import torch

from core.spec import TrainSpec
from trainer.errors import DataError, TrainerError
from trainer.pipeline import run_training
from trainer.progress import Progress, Throttle


def _spec(data, base, out, **kw) -> TrainSpec:
    values = dict(data_path=str(data), base=str(base), out_dir=str(out), layers=2, epochs=12, lr=1e-3,
                  batch_size=8, seed=7, patience=8)
    values.update(kw)
    return TrainSpec(**values)


def test_full_run_writes_a_model_sentence_transformers_can_load(learnable_csv, tiny_base, tmp_path):
    events: list[Progress] = []
    result = run_training(_spec(learnable_csv, tiny_base, tmp_path / "m", patience=12), events.append)  # all epochs
    m = result.metrics
    # the keywords decide the label: even a tiny random model learns it
    assert m["macro_f1"] >= 0.8, m["report_text"]
    assert m["layers_kept"] == [1, 3] and m["layers_base"] == 4
    assert m["params"] < m["params_base"]
    assert m["baseline_macro_f1"] > 0.5 and m["ms_per_message"] > 0 and m["size_bytes"] > 0
    assert m["split"] == {"source": "stratified", "train": 168, "validation": 24, "test": 48}
    assert set(m["report"]) >= {"food", "sports", "weather", "macro avg", "accuracy"}

    d = result.model_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md",
                 "confusion_matrix.png", "training_curve.png"):
        assert (d / name).is_file(), name
    assert (d / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((d / "metrics.json").read_text())["macro_f1"] == m["macro_f1"]
    assert "macro-F1" in (d / "README.md").read_text()

    # the base is read as it was trained (mean pooling), and the directory is a sentence-transformers model
    # whose embeddings are the logits: loaded outside TinyTutor, it gives the labels TinyTutor gives
    from sentence_transformers import SentenceTransformer

    from trainer.predict import Predictor

    assert m["pooling"] == "mean" and m["probe_macro_f1"] is not None
    texts = ["goal team match score player coach", "pizza bread cheese", "rain snow cloud wind",
             "i think the coach was very spicy today"]
    outside = SentenceTransformer(str(d), device="cpu")
    config = outside[0].auto_model.config
    theirs = [config.id2label[int(i)] for i in outside.encode(texts).argmax(1)]
    assert theirs == [p.label for p in Predictor(d).predict(texts)]
    assert theirs[:3] == ["sports", "food", "weather"]
    assert config.tinytutor_pruning["layers_kept"] == [1, 3]
    assert config.label2id == {"food": 0, "sports": 1, "weather": 2}

    stages = [e.stage for e in events]
    assert stages[0] == "checking" and stages[-1] == "done" and "training" in stages
    train_events = [e for e in events if e.stage == "training"]
    assert train_events[-1].step == train_events[-1].steps and train_events[-1].eta_seconds == 0
    assert all(e.loss is not None for e in train_events)


def test_same_seed_same_result(synthetic_csv, tiny_base, tmp_path):
    a = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "a", epochs=2))
    b = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "b", epochs=2))
    assert a.metrics["validation_macro_f1"] == b.metrics["validation_macro_f1"]
    assert a.metrics["mistakes"] == b.metrics["mistakes"]


@pytest.mark.parametrize("method", ["lora", "head"])
def test_lora_and_head_change_only_their_weights(synthetic_csv, tiny_base, tmp_path, method):
    from safetensors.torch import load_file

    result = run_training(_spec(synthetic_csv, tiny_base, tmp_path / method, method=method, lr=2e-2, epochs=2))
    m = result.metrics
    assert m["params_trained"] < m["params"] / 2
    # the saved model is a plain encoder (LoRA merged in), with the pruned layer count, and its head
    from trainer.classifier import load_model_dir

    model = load_model_dir(result.model_dir)
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert model.config.num_hidden_layers == 2
    base = load_file(tiny_base / "model.safetensors")
    tuned = load_file(result.model_dir / "model.safetensors")
    kept_layer0 = 1  # saved layer 0 is base layer 1 (alternate, 2 of 4)
    q = "encoder.layer.{}.attention.self.query.weight"
    k = "encoder.layer.{}.attention.self.key.weight"
    assert torch.equal(tuned[k.format(0)], base[k.format(kept_layer0)])  # never trained
    query_changed = not torch.equal(tuned[q.format(0)], base[q.format(kept_layer0)])
    assert query_changed == (method == "lora")  # LoRA adapts query/value; head freezes the encoder
    assert set(load_file(result.model_dir / "3_Dense" / "model.safetensors")) == {"linear.weight", "linear.bias"}


@pytest.mark.parametrize("scores, epochs_run, kept, stopped", [
    ([0.9, 0.5, 0.5, 0.5, 0.5, 0.5], 3, 1, True),  # clearly worse twice (patience 2): stop, restore epoch 1
    ([0.80, 0.84, 0.81, 0.80, 0.82, 0.79], 6, 6, False),  # within validation's noise: run on, keep the last
    ([0.5, 0.9, 0.85, 0.6, 0.88, 0.55], 6, 2, False),  # never twice in a row clearly worse; the last clearly is
])
def test_early_stopping_acts_only_on_drops_validation_can_tell_from_noise(synthetic_csv, tiny_base, tmp_path,
                                                                          monkeypatch, scores, epochs_run, kept,
                                                                          stopped):
    import trainer.train as train_mod

    readings = iter(scores)
    monkeypatch.setattr(train_mod, "f1_score", lambda *a, **k: next(readings))  # 24 validation examples
    m = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "m", epochs=6, patience=2)).metrics
    assert m["epochs_run"] == epochs_run and m["best_epoch"] == kept and m["stopped_early"] == stopped


def test_bad_file_leaves_no_output_directory(tmp_path, tiny_base):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,a\n,b\n")
    with pytest.raises(DataError):
        run_training(_spec(bad, tiny_base, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_failure_mid_run_removes_the_temporary_directory(synthetic_csv, tiny_base, tmp_path, monkeypatch):
    import trainer.pipeline as pipeline_mod

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline_mod, "plot_training", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_training(_spec(synthetic_csv, tiny_base, tmp_path / "out" / "m", epochs=1))
    assert list((tmp_path / "out").iterdir()) == []


def test_refuses_an_output_directory_with_files(synthetic_csv, tiny_base, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(TrainerError, match="already has files"):
        run_training(_spec(synthetic_csv, tiny_base, out))
    assert (out / "keep.txt").read_text() == "mine"


def test_refuses_pickled_weights(synthetic_csv, tiny_base, tmp_path):
    (tiny_base / "model.safetensors").rename(tmp_path / "away.safetensors")
    try:
        torch.save({}, tiny_base / "pytorch_model.bin")
        with pytest.raises(TrainerError, match="safetensors only"):
            run_training(_spec(synthetic_csv, tiny_base, tmp_path / "m"))
    finally:
        (tmp_path / "away.safetensors").rename(tiny_base / "model.safetensors")


def test_throttle_passes_stage_changes_and_the_last_step():
    seen, now = [], [0.0]
    throttle = Throttle(seen.append, seconds=5, clock=lambda: now[0])
    for step in range(1, 11):
        now[0] += 1
        throttle(Progress("training", step=step, steps=10))
    throttle(Progress("evaluating"))
    assert [p.step for p in seen if p.stage == "training"] == [1, 6, 10]
    assert seen[-1].stage == "evaluating"


def test_separate_validation_file_is_used_for_early_stopping(tiny_base, tmp_path):
    from helpers import synthetic_rows, write_csv

    train = write_csv(tmp_path / "train.csv", synthetic_rows(30))
    val_rows = [r for r in synthetic_rows(4, seed=5) if r[1] != "weather"]  # two classes only is fine here
    val = write_csv(tmp_path / "val.csv", val_rows)
    result = run_training(_spec(train, tiny_base, tmp_path / "m", validation_path=str(val), epochs=2))
    assert result.metrics["split"] == {"source": "validation file", "train": 72, "validation": 8, "test": 18}


def test_predictor_cache_reuses_and_evicts_loaded_models(synthetic_csv, tiny_base, tmp_path):
    from trainer.predict import Predictor, PredictorCache

    a = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "a", epochs=1)).model_dir
    b = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "b", epochs=1)).model_dir
    cache = PredictorCache(size=1)
    first = cache.get(a)
    assert cache.get(str(a) + "/") is first  # the same directory however it is spelled
    assert cache.get(b) is not first  # loads b and, with room for one, drops a
    assert cache.get(a) is not first
    cache.forget(a)
    again, fresh = cache.get(a), Predictor(a)  # forgotten, then loaded again: the same model answers
    texts = ["rain snow cloud", "pizza bread", "goal team"]
    assert again is not first and [p.label for p in again.predict(texts)] == [p.label for p in fresh.predict(texts)]


def test_length_batches_cover_every_example_once_with_little_padding():
    import random

    from trainer.batching import length_batches

    rng = random.Random(0)
    lengths = [rng.choice([3, 4, 5, 8, 12, 20, 40, 90]) for _ in range(1000)]
    batches = length_batches(lengths, 32, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)

    def padded(bs):
        return sum(max(lengths[i] for i in b) * len(b) for b in bs)

    plain = [list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)]  # the order they came in
    assert padded(batches) < 0.6 * padded(plain)
    assert length_batches(lengths, 32, seed=1) == batches  # seeded
    assert length_batches(lengths, 32, seed=2) != batches  # a new mix every epoch
