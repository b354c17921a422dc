"""The `tinytutor` command line: exit codes and the JSON contract scripts rely on."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_csv

from cli import main

TRAIN_KEYS = {"accuracy", "macro_f1", "baseline_macro_f1", "probe_macro_f1", "labels", "layers_kept", "params", "params_base",
              "train_seconds", "ms_per_message", "model_dir", "suspect_rows", "learning_curve"}


@pytest.fixture(autouse=True)
def _no_repo_config(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the tests' own defaults, not a config.toml in the working directory
    monkeypatch.delenv("TINYTUTOR_CONFIG", raising=False)


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_check_json_good_file(synthetic_csv, capsys):
    assert main(["check", str(synthetic_csv), "--json"]) == 0
    out = _last_json(capsys)
    assert out["rows"] == 120 and out["labels"] == {"food": 40, "sports": 40, "weather": 40}
    assert (out["encoding"], out["text_column"], out["label_column"]) == ("utf-8", "text", "label")
    assert out["errors"] == [] and isinstance(out["warnings"], list)


def test_check_json_bad_file_exits_2_with_row_errors(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", [("hi", "a"), ("", "a"), ("yo", "")])
    assert main(["check", str(path), "--json"]) == 2
    errors = _last_json(capsys)["errors"]
    assert {e["code"] for e in errors} >= {"empty_text", "missing_label"}
    assert next(e for e in errors if e["code"] == "empty_text")["rows"] == [3]


def test_check_plain_text_says_what_to_do(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", [("hi", "a", "x")] * 3, header=("body", "kind", "x"))
    assert main(["check", str(path), "--text-column", "message"]) == 2
    err = capsys.readouterr().err
    assert "There is no column 'message'" in err and "--text-column" in err


def test_train_json_then_predict(learnable_csv, tiny_base, tmp_path, capsys):
    out_dir = tmp_path / "model"
    code = main(["train", str(learnable_csv), "--base", str(tiny_base), "--layers", "1,3", "--epochs", "12",
                 "--lr", "1e-3", "--batch-size", "8", "--out", str(out_dir), "--json"])
    assert code == 0
    result = _last_json(capsys)
    assert set(result) >= TRAIN_KEYS
    assert result["layers_kept"] == [1, 3] and result["model_dir"] == str(out_dir.resolve())
    assert result["macro_f1"] > 0.6

    serving = json.loads((out_dir / "metrics.json").read_text())["serving"]
    assert result["engine"] == serving["engine"] and (out_dir / serving["file"]).is_file()  # what is served
    assert main(["speed", str(out_dir), "--messages", "64", "--json"]) == 0
    speed = _last_json(capsys)
    assert speed["engine"] == result["engine"]
    for path in ("fp32", "served"):
        assert set(speed[path]) == {"p50_ms", "p90_ms", "msgs_per_s"} and speed[path]["p50_ms"] > 0

    assert main(["predict", str(out_dir), "rain snow cloud storm", "pizza bread cheese soup", "--json"]) == 0
    preds = _last_json(capsys)
    assert [p["text"] for p in preds] == ["rain snow cloud storm", "pizza bread cheese soup"]
    assert [p["label"] for p in preds] == ["weather", "food"]  # learned (macro-F1 above 0.6)
    assert all("explanation" not in p for p in preds)
    text = "i think it was rain today"  # one weather word among filler: it decides the label
    assert main(["predict", str(out_dir), text, "--explain", "--json"]) == 0
    (explained,) = _last_json(capsys)
    assert (explained["label"], explained["top_words"][:1]) == ("weather", ["rain"])
    words = explained["explanation"]
    assert [w["word"] for w in words] == text.split() and max(words, key=lambda w: w["weight"])["word"] == "rain"
    assert explained["why"].startswith("mostly 'rain'")
    assert main(["predict", str(out_dir), text, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "[rain]" in out and explained["why"] in out
    assert all(abs(sum(t["score"] for t in p["top"]) - 1) < 0.01 for p in preds)  # 3 labels, top 3


def test_train_probe_json_then_predict(learnable_csv, tiny_base, tmp_path, capsys):
    """--method probe: the frozen layers and a linear head, served like any other model."""
    out_dir = tmp_path / "probe"
    assert main(["train", str(learnable_csv), "--base", str(tiny_base), "--method", "probe", "--layers", "2",
                 "--out", str(out_dir), "--json"]) == 0
    result = _last_json(capsys)
    assert set(result) >= TRAIN_KEYS and result["method"] == "probe"
    assert result["engine"].startswith("onnxruntime") and 0 <= result["probe_macro_f1"] <= 1
    assert main(["predict", str(out_dir), "rain snow cloud storm wind", "goal team match score", "--json"]) == 0
    assert [p["label"] for p in _last_json(capsys)] == ["weather", "sports"]


def test_train_distill_json_adds_the_teacher(synthetic_csv, tiny_base, tmp_path, capsys):
    code = main(["train", str(synthetic_csv), "--base", str(tiny_base), "--method", "distill", "--layers", "2",
                 "--epochs", "3", "--batch-size", "8", "--out", str(tmp_path / "s"), "--json"])
    assert code == 0
    result = _last_json(capsys)
    assert set(result) >= TRAIN_KEYS | {"teacher_macro_f1", "teacher_params", "retained"}
    assert result["teacher_params"] == result["params_base"] > result["params"]
    assert result["method"] == "distill"


def test_train_without_out_writes_under_the_configured_runs_dir(synthetic_csv, tiny_base, tmp_path, capsys):
    (tmp_path / "config.toml").write_text("[paths]\nruns_dir = 'class-runs'\n[training]\nepochs = 1\n")
    assert main(["train", str(synthetic_csv), "--base", str(tiny_base), "--json"]) == 0
    model_dir = _last_json(capsys)["model_dir"]
    assert model_dir.startswith(str(tmp_path / "class-runs" / "topics-"))
    assert (Path(model_dir) / "metrics.json").is_file()


def test_bad_flags_are_refused_before_any_work(synthetic_csv, tmp_path, capsys):
    assert main(["train", str(synthetic_csv), "--epochs", "0", "--out", str(tmp_path / "o")]) == 1
    assert "epochs: Input should be greater than or equal to 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["train", str(synthetic_csv), "--base", "no/such/dir/here", "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", str(synthetic_csv), "--base", "some-org/some-bert", "--out", str(tmp_path / "o")]) == 1
    assert "cannot be reached" in capsys.readouterr().err  # hub ids need [hub].allow_downloads and a network
    assert not (tmp_path / "o").exists()


def test_bad_config_stops_with_the_key(synthetic_csv, tmp_path, capsys):
    (tmp_path / "config.toml").write_text("[training]\nepochs = 'six'\n")
    assert main(["check", str(synthetic_csv)]) == 1
    assert "[training].epochs: Input should be a valid integer (got 'six')" in capsys.readouterr().err


def test_console_script_is_installed(tmp_path):
    beside = Path(sys.executable).parent / "tinytutor"  # the venv's bin, whether or not it is on PATH
    exe = str(beside) if beside.exists() else shutil.which("tinytutor")
    assert exe, "pip install -e . installs the tinytutor console script"
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    proc = subprocess.run([exe, "check", str(bad), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert json.loads(proc.stdout.strip().splitlines()[-1])["errors"][0]["code"] == "binary"
