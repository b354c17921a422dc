"""The served form of a model: ONNX export parity with PyTorch, int8 choice, and the Predictor's engines."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from core.spec import TrainSpec
from trainer.classifier import load_model_dir
from trainer.errors import TrainerError
from trainer.export import (
    FP32_FILE,
    INT8_FILE,
    INT8_WORSE_P,
    MIN_INT8_AGREEMENT,
    ONNX_DIR,
    export_onnx,
    onnx_logits,
    session,
)
from trainer.pipeline import run_training
from trainer.predict import Predictor

TEXTS = ["rain", "pizza bread cheese soup salad taste cook", "the team scored a goal in the last match today",
         "i think it was very cold and the forecast said snow storm wind cloud sky warm sun rain " * 3, "a"]


@pytest.fixture
def classifier(tiny_base):
    from trainer.classifier import load_classifier
    from trainer.models import BaseModel, load_tokenizer

    base = BaseModel("tiny", str(tiny_base), True)
    torch.manual_seed(3)
    return load_classifier(base, {0: "food", 1: "sports", 2: "weather"}).eval(), load_tokenizer(base)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_fp32_onnx_matches_pytorch_on_every_length_and_batch_size(classifier, tmp_path, batch):
    """Dynamic axes: one export must serve one short text, and padded batches of mixed lengths."""
    model, tok = classifier
    path = export_onnx(model, tok, tmp_path / "m.onnx")
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]
    for start in range(0, len(TEXTS), batch):
        chunk = TEXTS[start:start + batch]
        enc = tok(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            expected = model(**enc).logits.numpy()
        got = sess.run(["logits"], {n: enc[n].numpy() for n in names})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_onnx_logits_come_back_in_the_callers_order(classifier, tmp_path):
    model, tok = classifier
    sess = session(export_onnx(model, tok, tmp_path / "m.onnx"))
    together = onnx_logits(sess, tok, TEXTS, 64, batch_size=2)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(together[i], onnx_logits(sess, tok, [text], 64)[0], atol=1e-4)


@pytest.fixture
def trained(learnable_csv, tiny_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("served") / "model"
    return run_training(TrainSpec(data_path=str(learnable_csv), base=str(tiny_base), out_dir=str(out), layers=2,
                                  epochs=12, lr=1e-3, batch_size=8, seed=7))


def test_training_leaves_one_served_onnx_file_and_says_which(trained):
    m, d = trained.metrics, trained.model_dir
    s = m["serving"]
    # int8 is served exactly when it agrees with fp32 on nearly every text and is not worse beyond noise
    int8_ok = s["int8_agreement"] >= MIN_INT8_AGREEMENT and s["int8_worse_p"] >= INT8_WORSE_P
    assert s["engine"] == ("onnxruntime-int8" if int8_ok else "onnxruntime-fp32"), s
    assert (d / s["file"]).is_file()
    files = {p.name for p in (d / ONNX_DIR).iterdir()}
    assert files == ({INT8_FILE} if s["engine"] == "onnxruntime-int8" else {INT8_FILE, FP32_FILE})
    assert json.loads((d / "config.json").read_text())["tinytutor_serving"] == s["file"]
    assert s["onnx_max_logit_diff"] < 1e-3 and 0 <= s["int8_agreement"] <= 1
    assert s["checked_on"] == 240 and s["labelled"] == 48  # every text of the run, the test split labelled
    assert json.loads((d / "metrics.json").read_text())["engine"] == s["engine"]
    assert s["engine"] in (d / "README.md").read_text()


def test_predictor_serves_onnx_and_agrees_with_torch(trained):
    served, fp32 = Predictor(trained.model_dir), Predictor(trained.model_dir, engine="torch")
    assert served.engine == trained.metrics["engine"] and fp32.engine == "torch"
    texts = ["rain snow cloud storm", "pizza bread cheese soup", "goal team match score player", "i think so"]
    a, b = served.predict(texts), fp32.predict(texts)
    assert [p.label for p in a] == [p.label for p in b]
    assert a[0].label == "weather"
    # on the topic texts int8 is as sure as fp32; on "i think so" (filler words only) a tiny 32-wide model's
    # int8 activations move the probability by up to ~0.2 on some CPUs, the label staying
    for x, y in zip(a[:3], b[:3], strict=True):
        assert abs(x.score - y.score) < 0.05


def test_predictor_serves_the_file_training_chose(trained, tmp_path):
    """When int8 lost accuracy both files are there; the fp32 one named in config.json is served."""
    import shutil as sh

    from trainer.export import export_onnx

    d = tmp_path / "both"
    sh.copytree(trained.model_dir, d)
    model = load_model_dir(d)
    export_onnx(model, AutoTokenizer.from_pretrained(d), d / ONNX_DIR / FP32_FILE)
    cfg = json.loads((d / "config.json").read_text())
    cfg["tinytutor_serving"] = f"{ONNX_DIR}/{FP32_FILE}"
    (d / "config.json").write_text(json.dumps(cfg))
    assert Predictor(d).engine == "onnxruntime-fp32"
    cfg["tinytutor_serving"] = "model.safetensors"  # the export failed its parity check
    (d / "config.json").write_text(json.dumps(cfg))
    assert Predictor(d).engine == "torch"


def test_a_model_directory_from_before_onnx_is_served_by_torch(trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained.model_dir, old)
    shutil.rmtree(old / ONNX_DIR)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["tinytutor_serving"]
    (old / "config.json").write_text(json.dumps(cfg))
    p = Predictor(old)
    assert p.engine == "torch"
    assert p.predict(["rain snow cloud storm"])[0].label == "weather"
    with pytest.raises(TrainerError, match="no ONNX model"):
        Predictor(old, engine="onnxruntime")


def test_predict_many_texts_in_length_sorted_batches_keeps_their_order(trained):
    p = Predictor(trained.model_dir, batch_size=3)
    texts = ["rain snow", "pizza bread cheese soup salad", "goal", "cold wind storm forecast sky sun cloud",
             "cheese", "team match player coach league"]
    together = [x.label for x in p.predict(texts)]
    alone = [p.predict([t])[0].label for t in texts]
    assert together == alone


def test_speed_reports_both_paths_side_by_side(trained):
    from trainer.speed import measure

    r = measure(trained.model_dir, messages=64)
    assert r["engine"] == trained.metrics["engine"]
    for key in ("fp32", "served"):
        assert r[key]["p50_ms"] > 0 and r[key]["p90_ms"] >= r[key]["p50_ms"] and r[key]["msgs_per_s"] > 0


def test_reloaded_model_predicts_like_the_one_in_memory(trained):
    model = load_model_dir(trained.model_dir)
    tok = AutoTokenizer.from_pretrained(trained.model_dir)
    sess = session(trained.model_dir / trained.metrics["serving"]["file"])
    logits = onnx_logits(sess, tok, TEXTS, 64)
    with torch.no_grad():
        ref = model(**tok(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits.numpy()
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.8
