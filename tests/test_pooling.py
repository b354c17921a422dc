"""Reading a base as it was trained: pooling, the linear probe (a baseline, a method, the head's start),
the automatic epoch ceiling, the teacher check, and the int8 decision."""

import json
import shutil

import numpy as np
import pytest
import torch

from core.spec import TrainSpec
from trainer.classifier import PooledClassifier, load_classifier, load_model_dir, pool
from trainer.export import export_onnx, int8_worse_p, onnx_logits, session
from trainer.models import load_tokenizer, resolve_base
from trainer.pipeline import run_training
from trainer.probe import fit_probe
from trainer.train import epoch_ceiling

LABELS = {0: "food", 1: "sports", 2: "weather"}


def _spec(data, base, out, **kw) -> TrainSpec:
    values = dict(data_path=str(data), base=str(base), out_dir=str(out), layers=2, epochs=4, lr=1e-3,
                  batch_size=8, seed=7, patience=8)
    return TrainSpec(**(values | kw))


def test_the_base_declares_its_pooling_and_config_can_override_it(tiny_base, tmp_path):
    assert resolve_base(str(tiny_base)).reads == "mean"  # its 1_Pooling/config.json
    assert load_classifier(resolve_base(str(tiny_base)), LABELS).pooling == "mean"
    plain = tmp_path / "plain"
    shutil.copytree(tiny_base, plain)
    shutil.rmtree(plain / "1_Pooling")
    assert resolve_base(str(plain)).reads == "cls"  # nothing declared: the first token, as BERT was trained
    registry = {"mine": {"path": str(plain), "pooling": "mean"}, "as-text": str(tiny_base)}
    assert resolve_base("mine", registry).reads == "mean"
    assert resolve_base("as-text", registry).reads == "mean"


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(hidden, mask, "mean"), torch.tensor([[1.0, 0.0]]))  # (2, 0) normalised
    assert torch.allclose(pool(hidden, mask, "cls"), torch.tensor([[1.0, 0.0]]))


def test_onnx_logits_equal_pytorch_with_mean_pooling_in_one_padded_batch(tiny_base, tmp_path):
    base = resolve_base(str(tiny_base))
    tokenizer = load_tokenizer(base)
    torch.manual_seed(0)
    model = load_classifier(base, LABELS).eval()
    texts = ["rain", "goal team match score player coach league win run ball",
             "pizza bread cheese soup", "i think the sky was very cold today and so was the wind"]
    path = export_onnx(model, tokenizer, tmp_path / "model.onnx")
    sess = session(path)
    # all four in one batch, padded to the longest: the short ones carry up to 10 padding tokens
    padded = onnx_logits(sess, tokenizer, texts, 128, batch_size=len(texts))
    with torch.inference_mode():
        alone = np.stack([model(**tokenizer([t], return_tensors="pt")).logits[0].numpy() for t in texts])
    assert np.abs(padded - alone).max() < 1e-4  # padding never reaches the mean
    enc = tokenizer(texts, padding=True, return_tensors="np")
    assert (enc["attention_mask"] == 0).sum() >= 20


def test_the_saved_directory_reloads_to_the_same_logits(tiny_base, tmp_path):
    base = resolve_base(str(tiny_base))
    tokenizer = load_tokenizer(base)
    model = load_classifier(base, LABELS).eval()
    model.save_pretrained(tmp_path / "m")
    again = load_model_dir(tmp_path / "m")
    assert isinstance(again, PooledClassifier) and again.pooling == "mean"
    enc = tokenizer(["rain snow", "pizza"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(model(**enc).logits, again(**enc).logits, atol=1e-6)
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize", "Dense"]


def test_a_damaged_head_is_refused_plainly(tiny_base, tmp_path):
    from trainer.errors import BaseModelError

    load_classifier(resolve_base(str(tiny_base)), LABELS).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "3_Dense" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BaseModelError, match="the head of .* is damaged"):
        load_model_dir(tmp_path / "m")


def test_a_cls_pooled_transformers_directory_from_before_still_serves(tiny_base, tmp_path):
    """Directories trained before pooling was read as the base was trained: a transformers sequence
    classifier ([CLS] and pooler), with and without its ONNX file."""
    from transformers import AutoModelForSequenceClassification, pipeline

    from trainer.export import INT8_FILE, ONNX_DIR, quantize_int8
    from trainer.predict import Predictor

    old = tmp_path / "old"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_base, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model.config.tinytutor_max_length = 64
    model.save_pretrained(old)
    load_tokenizer(resolve_base(str(tiny_base))).save_pretrained(old)
    texts = ["rain snow cloud", "pizza bread", "goal team"]
    expected = [o["label"] for o in pipeline("text-classification", model=str(old))(texts)]
    served = Predictor(old)
    assert served.engine == "torch" and [p.label for p in served.predict(texts)] == expected
    fp32 = export_onnx(model, load_tokenizer(resolve_base(str(tiny_base))), old / ONNX_DIR / "model.onnx")
    served = Predictor(old)  # before tinytutor_serving existed: the ONNX file found is served
    assert served.engine == "onnxruntime-fp32" and [p.label for p in served.predict(texts)] == expected
    quantize_int8(fp32, old / ONNX_DIR / INT8_FILE)
    assert Predictor(old).engine == "onnxruntime-int8"


def test_a_binary_probe_gives_scikit_learns_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int).tolist()
    probe = fit_probe(x, y, x, y, n_labels=2, seed=0)
    logits = probe.logits(x)
    ours = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    theirs = LogisticRegression(C=probe.C, max_iter=2000, random_state=0).fit(x, y).predict_proba(x)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_the_probe_method_trains_only_a_head_and_fine_tuning_starts_from_it(learnable_csv, tiny_base, tmp_path):
    from safetensors.torch import load_file

    probe = run_training(_spec(learnable_csv, tiny_base, tmp_path / "probe", method="probe"))
    m = probe.metrics
    assert m["method"] == "probe" and m["params_trained"] == 0
    base, saved = load_file(tiny_base / "model.safetensors"), load_file(probe.model_dir / "model.safetensors")
    assert torch.equal(saved["encoder.layer.1.output.dense.weight"], base["encoder.layer.3.output.dense.weight"])
    assert m["engine"].startswith("onnxruntime")  # served like any other model
    # LP-FT: a "full" run that barely moves its weights scores what the probe scores, not chance
    still = run_training(_spec(learnable_csv, tiny_base, tmp_path / "still", method="full", lr=1e-9, epochs=1))
    assert still.metrics["macro_f1"] == pytest.approx(m["macro_f1"], abs=1e-9)
    assert still.metrics["probe_macro_f1"] == m["probe_macro_f1"]  # the frozen base row, all 4 layers


def test_epoch_ceiling_scales_with_labels_and_data_within_the_quota(tmp_path):
    spec = TrainSpec(data_path="x", batch_size=32, max_epochs=20)
    few = epoch_ceiling(spec, n_train=3000, n_labels=3)  # 94 steps an epoch
    many = epoch_ceiling(spec, n_train=1300, n_labels=21)  # 41 steps an epoch, 21 labels
    assert few < many <= 20
    assert epoch_ceiling(TrainSpec(data_path="x", max_epochs=5), 100, 50) == 5  # the class's quota
    assert epoch_ceiling(TrainSpec(data_path="x", epochs=3), 100, 50) == 3  # asked for


def test_training_stops_before_an_epoch_that_would_overrun_the_time_budget(synthetic_csv, tiny_base, tmp_path):
    r = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "m", epochs=50, time_budget_seconds=1e-3))
    assert r.metrics["epochs_run"] == 1 and r.metrics["stopped_for_time"]


def test_teacher_and_student_share_one_time_budget(synthetic_csv, tiny_base, tmp_path, monkeypatch):
    """A distillation's budget is the whole run's: the teacher cannot use it and leave the student a fresh
    one of its own (the job would then pass its time limit and be killed)."""
    import trainer.distillation as distillation_mod

    seen, real = [], distillation_mod.fine_tune

    def recording(*args, **kwargs):
        seen.append((kwargs.get("stage", "training"), kwargs["deadline"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(distillation_mod, "fine_tune", recording)  # the teacher's training and the student's
    r = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "d", method="distill", epochs=50,
                           time_budget_seconds=1e-3))
    assert [stage for stage, _ in seen] == ["teacher", "training"] and seen[0][1] == seen[1][1] is not None
    assert r.metrics["epochs_run"] == 1 and r.metrics["stopped_for_time"]


def test_a_teacher_no_better_than_the_probe_is_reported(learnable_csv, tiny_base, tmp_path):
    r = run_training(_spec(learnable_csv, tiny_base, tmp_path / "d", method="distill", layers=2, lr=1e-9,
                           teacher_epochs=1, epochs=1))
    t = r.metrics["teacher"]
    assert not t["worth_copying"] and t["val_macro_f1"] <= t["val_references"]["the frozen probe"]
    assert any("copied a weak teacher" in tip for tip in r.metrics["advice"])


def test_int8_worse_p_tells_noise_from_a_real_loss():
    y = np.zeros(200, dtype=int)
    fp32 = np.zeros(200, dtype=int)
    one_flip = fp32.copy()
    one_flip[0] = 1
    assert int8_worse_p(y, fp32, fp32) == 1.0
    assert int8_worse_p(y, fp32, one_flip) == 0.5  # one line lost, none won: noise
    many = fp32.copy()
    many[:8] = 1
    assert int8_worse_p(y, fp32, many) < 0.01  # eight lost, none won: int8 is worse
