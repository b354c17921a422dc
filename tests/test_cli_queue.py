"""`tinytutor db upgrade`, `queue submit|list|cancel` and `scheduler`: the queue from the command line,
on the same database the bot uses (SQLite here; the queue itself is tested on both in test_queue.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli_config, write_csv

from cli import main


@pytest.fixture
def config(tmp_path, tiny_base, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYTUTOR_DATABASE_URL", raising=False)
    path = cli_config(tmp_path, tiny_base)
    monkeypatch.setenv("TINYTUTOR_CONFIG", str(path))
    return path


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_db_upgrade_creates_the_database_in_the_data_dir(config, capsys):
    assert main(["db", "upgrade"]) == 0
    assert (config.parent / "class-data" / "tinytutor.db").is_file()
    assert "newest schema" in capsys.readouterr().out


def test_submit_list_cancel(config, synthetic_csv, tmp_path, capsys):
    assert main(["queue", "submit", str(synthetic_csv), "--guild", "g1", "--user", "ann", "--epochs", "3",
                 "--json"]) == 0
    sub = last_json(capsys)
    assert (sub["id"], sub["status"], sub["position"], sub["rows"]) == (1, "queued", 1, 120)
    bad = write_csv(tmp_path / "bad.csv", [("hi", "a"), ("", "a"), ("yo", "")])
    assert main(["queue", "submit", str(bad), "--guild", "g1", "--user", "ann"]) == 2
    err = capsys.readouterr().err
    assert "row 3" in err and "nothing was stored" in err
    with open(config, "a", encoding="utf-8") as f:
        f.write("\n[quotas]\nmax_bytes = 100\n")  # a class quota the file is over: refused like bad data
    assert main(["queue", "submit", str(synthetic_csv), "--guild", "g2", "--user", "ann"]) == 2
    assert "class quota max_bytes = 100" in capsys.readouterr().err
    assert main(["queue", "list", "--guild", "g1", "--json"]) == 0
    jobs = last_json(capsys)
    assert [(j["id"], j["owner_id"], j["status"]) for j in jobs] == [(1, "ann", "queued")]
    assert main(["queue", "list", "--guild", "other", "--json"]) == 0
    assert last_json(capsys) == []  # classes never mix
    assert main(["queue", "cancel", "1"]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["queue", "cancel", "1"]) == 1
    assert "already been cancelled" in capsys.readouterr().err
    assert main(["queue", "list", "--guild", "g1"]) == 0
    out = capsys.readouterr().out
    assert "cancelled" in out and "ann" in out


def test_scheduler_command_runs_queued_jobs_and_stops_on_ctrl_c(config, synthetic_csv, capsys):
    """A probe job (the frozen encoder and a linear head: seconds) through the queue and a worker process."""
    assert main(["queue", "submit", str(synthetic_csv), "--guild", "g1", "--user", "ann", "--name", "topics",
                 "--method", "probe"]) == 0
    exe = Path(sys.executable).with_name("tinytutor")
    data = config.parent / "class-data"
    data.chmod(0o755)  # as a data directory made before files were private was
    umask = os.umask(0o022)  # the scheduler starts under a permissive umask and must not keep it
    try:
        proc = subprocess.Popen([str(exe), "scheduler"], cwd=config.parent, env=os.environ.copy(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.umask(umask)
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            capsys.readouterr()
            main(["queue", "list", "--guild", "g1", "--json"])
            status = last_json(capsys)[0]["status"]
            if status in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert status == "succeeded"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "job 1 started (attempt 1): process" in out and "scheduler running with 1 slot(s)" in out
    [model_dir] = (config.parent / "class-data" / "models").glob("job-1-a1")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["method"] == "probe" and metrics["params_trained"] == 0 and (model_dir / "3_Dense").is_dir()
    # nothing the scheduler and its worker wrote is readable by another user of the machine
    written = [data, data / "tinytutor.db", data / "logs" / "job-1.log", model_dir, model_dir / "metrics.json",
               *(data / "datasets").rglob("*")]
    assert {str(p.relative_to(data)): oct(p.stat().st_mode & 0o777) for p in written if p.stat().st_mode & 0o077} == {}


def test_an_experiment_from_the_command_line(config, synthetic_csv, capsys):
    """``queue submit --sweep`` queues one job per value; ``scheduler --until-idle`` runs them; ``experiment``
    shows the runs side by side (probe jobs: seconds each)."""
    assert main(["queue", "submit", str(synthetic_csv), "--guild", "g1", "--user", "ann", "--name", "sizes",
                 "--method", "probe", "--sweep", "layers=1,3", "--json"]) == 0
    sub = last_json(capsys)
    assert sub["experiment_id"] == 1 and [(j["id"], j["name"]) for j in sub["jobs"]] == [
        (1, "sizes layers=1"), (2, "sizes layers=3")]
    assert main(["queue", "submit", str(synthetic_csv), "--guild", "g1", "--user", "ann", "--sweep", "lr=1,2"]) == 1
    assert "a sweep is SETTING=V1,V2,... with SETTING one of layers, " in capsys.readouterr().err
    assert main(["scheduler", "--until-idle"]) == 0
    capsys.readouterr()
    assert main(["experiment", "1", "--json"]) == 0
    view = last_json(capsys)
    assert [(r["value"], r["status"], r["layers"]) for r in view["runs"]] == [(1, "succeeded", 1), (3, "succeeded", 3)]
    assert view["finished_at"] and Path(view["chart_png"]).is_file() and view["reading"].startswith("Best macro-F1")
    assert main(["experiment", "1"]) == 0
    out = capsys.readouterr().out
    assert "experiment 1 'sizes' of ann: layers = 1, 3 (finished)" in out and "◆" in out
    assert main(["experiment", "7"]) == 1
    assert "There is no experiment 7" in capsys.readouterr().err
