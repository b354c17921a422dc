"""TinyBERT distillation: the losses by hand, augmentation, and the pipeline on a tiny random BERT."""

import json
import math
import random
from types import SimpleNamespace

import pytest
import torch

from core.spec import TrainSpec
from trainer.augment import augment, perturb
from trainer.errors import TrainerError
from trainer.losses import IGNORE, TinyBertLoss, att_mse_loss, hid_mse_loss, kd_ce_loss
from trainer.pipeline import run_training

# -- the losses, against numbers worked out by hand ------------------------------------------------


def test_kd_ce_loss_is_the_soft_cross_entropy_scaled_by_t_squared():
    student = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [1/4, 3/4]
    teacher = torch.tensor([[0.0, 0.0]])  # softmax -> [1/2, 1/2]
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert kd_ce_loss(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # at T=2 both are tempered first: student/2 -> softmax [1/(1+sqrt3), sqrt3/(1+sqrt3)]
    p = 1 / (1 + math.sqrt(3))
    expected_t2 = -(0.5 * math.log(p) + 0.5 * math.log(1 - p)) * 4
    assert kd_ce_loss(student, teacher, 2.0).item() == pytest.approx(expected_t2, rel=1e-6)


def test_kd_ce_loss_is_smallest_when_the_student_matches_the_teacher():
    teacher = torch.tensor([[2.0, -1.0, 0.5]])
    same = kd_ce_loss(teacher.clone(), teacher, 1.0)
    other = kd_ce_loss(torch.tensor([[-1.0, 2.0, 0.5]]), teacher, 1.0)
    assert same < other


def test_hid_mse_loss_ignores_padding_tokens():
    s = torch.zeros(1, 3, 2)
    t = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [100.0, 100.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    # squared errors at real tokens: (1+1) + (9+1) = 12 over 2 tokens x 2 dims
    assert hid_mse_loss(s, t, mask).item() == pytest.approx(12 / 4)


def test_att_mse_loss_counts_only_real_query_key_pairs():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[0.5, 7.0], [9.0, 9.0]]]])  # position 1 is padding: only (0, 0) is real
    mask = torch.tensor([[1, 0]])
    assert att_mse_loss(s, t, mask).item() == pytest.approx(0.25)


def test_tinybert_loss_maps_student_layers_to_the_teacher_layers_they_came_from():
    """Student layer m must be compared with teacher layer layer_map[m], embeddings with embeddings."""
    mask = torch.ones(1, 2)
    hidden = [torch.full((1, 2, 4), float(i)) for i in range(5)]  # teacher: embeddings + 4 layers
    att = [torch.full((1, 1, 2, 2), float(i)) for i in range(4)]
    teacher = SimpleNamespace(logits=torch.zeros(1, 2), hidden_states=hidden, attentions=att)
    # a student cut from teacher layers 1 and 3 that reproduces them exactly
    student = SimpleNamespace(logits=torch.zeros(1, 2), hidden_states=[hidden[0], hidden[2], hidden[4]],
                              attentions=[att[1], att[3]])
    batch = {"labels": torch.tensor([IGNORE]), "attention_mask": mask}
    loss = TinyBertLoss((1, 3), soft_weight=0.0, hard_weight=0.0)
    assert loss(batch, student, teacher).item() == pytest.approx(0.0)
    wrong_map = TinyBertLoss((0, 1), soft_weight=0.0, hard_weight=0.0)
    assert wrong_map(batch, student, teacher).item() > 0.5


def test_augmented_examples_have_no_hard_label_term():
    teacher = SimpleNamespace(logits=torch.tensor([[0.0, 0.0]]))
    student = SimpleNamespace(logits=torch.tensor([[5.0, -5.0]]))
    batch = {"labels": torch.tensor([IGNORE]), "attention_mask": torch.ones(1, 2)}
    only_hard = TinyBertLoss((0,), soft_weight=0.0, hard_weight=1.0, hidden_weight=0.0, attention_weight=0.0)
    assert only_hard(batch, student, teacher).item() == 0.0
    batch["labels"] = torch.tensor([1])
    assert only_hard(batch, student, teacher).item() == pytest.approx(10.0, abs=1e-3)


# -- augmentation ----------------------------------------------------------------------------------


def test_perturb_changes_words_but_keeps_the_text_recognisable():
    rng = random.Random(0)
    text = "how do I write a for loop in python today"
    copies = [perturb(text, rng) for _ in range(50)]
    assert sum(c != text for c in copies) > 25
    for c in copies:
        assert c.strip()
        kept = set(c.split()) & set(text.split())
        assert len(kept) >= len(text.split()) // 2, c


def test_augment_is_seeded_and_makes_k_copies_per_text():
    texts = ["the rain will stop soon", "pizza with extra cheese", "hi"]
    a, b = augment(texts, 3, seed=5), augment(texts, 3, seed=5)
    assert a == b and len(a) == 9
    assert augment(texts, 3, seed=6) != a
    assert all(c.strip() for c in a)


def test_perturb_works_on_text_without_spaces():
    rng = random.Random(1)
    out = {perturb("这个产品非常好用", rng) for _ in range(20)}
    assert len(out) > 1 and all(" " not in o for o in out)


# -- the pipeline ----------------------------------------------------------------------------------


def _spec(data, base, out, **kw) -> TrainSpec:
    values = dict(data_path=str(data), base=str(base), out_dir=str(out), method="distill", layers=2, epochs=12,
                  lr=1e-3, batch_size=8, seed=7, patience=12)
    values.update(kw)
    return TrainSpec(**values)


def test_distill_trains_a_teacher_then_a_student_cut_from_it(learnable_csv, tiny_base, tmp_path):
    stages = []
    result = run_training(_spec(learnable_csv, tiny_base, tmp_path / "s", augment=1), stages.append)
    m = result.metrics
    teacher_epochs = {p.epoch for p in stages if p.stage == "teacher"}
    assert teacher_epochs >= set(range(1, 13)), "the teacher stage reports its own epochs"
    assert stages.index(next(p for p in stages if p.stage == "teacher")) < \
        stages.index(next(p for p in stages if p.stage == "training"))
    assert m["method"] == "distill" and m["layers_kept"] == [1, 3] and m["layers_base"] == 4
    t = m["teacher"]
    assert t["layers"] == 4 and t["params"] == m["params_base"] > m["params"]
    assert m["teacher_macro_f1"] >= 0.8, "the teacher learns the keywords"
    assert m["macro_f1"] >= 0.8 and m["retained"] == pytest.approx(m["macro_f1"] / m["teacher_macro_f1"], abs=1e-3)
    card = (result.model_dir / "README.md").read_text()
    assert "## Distillation" in card and "teacher" in card
    assert any("student keeps" in tip for tip in m["advice"])


def test_distill_from_a_given_teacher_keeps_its_label_order(synthetic_csv, tiny_base, tmp_path):
    teacher = run_training(TrainSpec(data_path=str(synthetic_csv), base=str(tiny_base), out_dir=str(tmp_path / "t"),
                                     layers=None, epochs=12, lr=1e-3, batch_size=8, seed=7))
    cfg_path = teacher.model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["id2label"] = {"0": "weather", "1": "sports", "2": "food"}  # a teacher trained with another label order
    cfg["label2id"] = {v: int(k) for k, v in cfg["id2label"].items()}
    cfg_path.write_text(json.dumps(cfg))
    stages = []
    result = run_training(_spec(synthetic_csv, tiny_base, tmp_path / "s", teacher=str(teacher.model_dir)),
                          stages.append)
    assert not any(p.stage == "teacher" for p in stages), "a given teacher is not trained again"
    assert result.metrics["labels"] == ["weather", "sports", "food"]
    assert result.metrics["teacher"]["source"] == str(teacher.model_dir)


def test_a_teacher_with_other_labels_is_refused_plainly(synthetic_csv, tiny_base, tmp_path):
    from tests.conftest import synthetic_rows, write_csv

    two = write_csv(tmp_path / "two.csv", [r for r in synthetic_rows() if r[1] != "food"])
    teacher = run_training(TrainSpec(data_path=str(two), base=str(tiny_base), out_dir=str(tmp_path / "t"),
                                     layers=None, epochs=1, batch_size=8))
    with pytest.raises(TrainerError, match="labels the teacher never learned: food"):
        run_training(_spec(synthetic_csv, tiny_base, tmp_path / "s", teacher=str(teacher.model_dir)))
    assert not (tmp_path / "s").exists()


def test_a_teacher_needs_method_distill(synthetic_csv, tiny_base, tmp_path):
    from core.spec import SpecError, TrainSpec

    with pytest.raises(SpecError, match="a teacher is for the distill method"):
        TrainSpec.make(data_path=str(synthetic_csv), base=str(tiny_base), method="full", teacher=str(tmp_path))
