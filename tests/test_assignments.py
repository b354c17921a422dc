"""Assignments, the leaderboard and comparing runs, on SQLite and PostgreSQL.

The rules (who may set one, deadlines, submission limits, labels, classes never mixing) and the
board's order are tested through the service without training; the whole life of an assignment
(create, two students submit, the scheduler runs until idle, the board, compare, rerun, close) is
tested through the command line with real workers, and then every file, row and line a student
could see is searched for the hidden texts."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from helpers import (
    ALICE,
    BOB,
    CAROL,
    HIDDEN,
    MALLORY,
    MARK,
    TEACH,
    TRAIN,
    cli_config,
    csv_bytes,
    hidden_rows,
    scored,
    stored_files,
    synthetic_rows,
    write_csv,
)
from sqlalchemy import select, update

from service.errors import Conflict, InvalidDataset, InvalidRequest, NotFound, PermissionDenied
from storage.models import Assignment, Dataset, Job, Outbox, Report, utcnow


async def test_only_instructors_set_assignments_and_bad_files_store_nothing(service, db):
    with pytest.raises(PermissionDenied):
        await service.create_assignment(ALICE, "topics", (HIDDEN, "test.csv"))
    bad = csv_bytes([("a text", "sports"), ("", "food"), ("more", "weather")])
    with pytest.raises(InvalidDataset) as err:
        await service.create_assignment(TEACH, "topics", (bad, "test.csv"))
    assert "the test file" in str(err.value) and "row 3" in str(err.value)
    two_labels = csv_bytes([r for r in synthetic_rows(20) if r[1] != "weather"])
    with pytest.raises(InvalidRequest) as err:  # students could never learn "weather" from it
        await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"), train=(two_labels, "train.csv"))
    assert "training file has no examples of weather" in str(err.value)
    with pytest.raises(InvalidRequest):
        await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"), deadline="2001-01-01")
    with pytest.raises(InvalidRequest):  # it becomes part of the dashboard's addresses
        await service.create_assignment(TEACH, "week 1/2", (HIDDEN, "test.csv"))
    async with db.transaction() as s:
        assert (await s.execute(select(Assignment))).first() is None
        assert (await s.execute(select(Dataset))).first() is None
    assert stored_files(service) == []

    leaky = csv_bytes(synthetic_rows(20) + hidden_rows()[:3])  # three hidden texts in the training file
    view = await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"), train=(leaky, "train.csv"),
                                           deadline="2099-12-15", max_submissions=2, description="three topics")
    assert view.labels == ["food", "sports", "weather"] and view.test_rows == 24 and view.train_rows == 63
    assert view.deadline.isoformat() == "2099-12-15T23:59:59+00:00"  # a date alone: the end of that day, UTC
    assert 0 <= view.baseline_macro_f1 <= 1 and view.is_open
    assert any("3 of the 24 test texts also appear in the training file" in w for w in view.warnings)
    with pytest.raises(Conflict):
        await service.create_assignment(TEACH, "Topics", (HIDDEN, "test.csv"))  # names are per class, any case
    other = await service.create_assignment(MALLORY.__class__("class-b", "t2", instructor=True), "topics",
                                            (HIDDEN, "test.csv"))
    assert other.id != view.id  # another class may use the same name


async def test_submissions_respect_labels_limits_deadline_closing_and_classes(service, db):
    await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"), train=(TRAIN, "train.csv"),
                                    max_submissions=1, deadline=utcnow() + timedelta(days=1))
    no_weather = csv_bytes([r for r in synthetic_rows(20) if r[1] != "weather"])
    with pytest.raises(InvalidRequest) as err:
        await service.submit(BOB, no_weather, "mine.csv", name="m", assignment="topics")
    assert "no examples of weather" in str(err.value) and "food, sports, weather" in str(err.value)
    with pytest.raises(NotFound) as err:
        await service.submit(MALLORY, TRAIN, "mine.csv", name="m", assignment="topics")
    assert "this class has none yet" in str(err.value)  # nothing of class-a is visible from class-b

    sub = await service.submit(ALICE, None, None, name="first", assignment="topics")  # the assignment's file
    assert sub.rows == 60
    with pytest.raises(Conflict) as err:
        await service.submit(ALICE, TRAIN, "again.csv", name="again", assignment="topics")
    assert "used all 1 submission(s)" in str(err.value)
    await service.cancel(ALICE, sub.job.id)  # a cancelled submission gives the try back
    await service.submit(ALICE, TRAIN, "again.csv", name="again", assignment="topics")

    async with db.transaction() as s:
        await s.execute(update(Assignment).values(deadline=utcnow() - timedelta(minutes=1)))
    with pytest.raises(Conflict) as err:
        await service.submit(BOB, TRAIN, "late.csv", name="late", assignment="topics")
    assert "deadline of assignment 'topics' was" in str(err.value)
    async with db.transaction() as s:
        await s.execute(update(Assignment).values(deadline=None))
    await service.close_assignment(TEACH, "topics")
    with pytest.raises(Conflict) as err:
        await service.submit(BOB, TRAIN, "late.csv", name="late", assignment="topics")
    assert "is closed" in str(err.value)
    with pytest.raises(PermissionDenied):
        await service.close_assignment(BOB, "topics")
    async with db.transaction() as s:
        jobs = (await s.execute(select(Job.owner_id, Job.status).order_by(Job.id))).all()
    assert jobs == [("alice", "cancelled"), ("alice", "queued")]  # no refused submission left anything
    [view] = await service.assignments(ALICE)
    assert (view.submissions, view.submissions_left, view.is_open) == (1, 0, False)


async def test_leaderboard_ranks_best_per_student_with_smaller_and_faster_first_on_ties(service, db):
    view = await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"))
    aid = view.id
    a1 = await scored(service, db, ALICE, "alice-big", 0.8504, 6_000_000, 2.0, aid)
    a2 = await scored(service, db, ALICE, "alice-weak", 0.70, 1_000_000, 1.0, aid)
    b1 = await scored(service, db, BOB, "bob-small", 0.8496, 3_000_000, 2.0, aid)  # 0.850 shown: a tie, smaller
    c1 = await scored(service, db, CAROL, "carol-slow", 0.8501, 3_000_000, 5.0, aid)  # same size, slower
    board = await service.leaderboard(TEACH, "topics")
    assert [(r.rank, r.model_name, r.job_id) for r in board.best] == [
        (1, "bob-small", b1), (2, "carol-slow", c1), (3, "alice-big", a1)]
    assert [r.job_id for r in board.everything] == [b1, c1, a1, a2]
    assert board.reference == 0.6 and "student's own training split" in board.reference_source

    mine = await service.leaderboard(ALICE, "topics")  # a student sees numbers and model names only
    assert mine.everything is None
    assert [(r.model_name, r.owner_id, r.job_id, r.mine) for r in mine.best] == [
        ("bob-small", None, None, False), ("carol-slow", None, None, False), ("alice-big", "alice", a1, True)]
    with pytest.raises(PermissionDenied):
        await service.leaderboard_csv(ALICE, "topics")

    rows = list(csv.DictReader(io.StringIO((await service.leaderboard_csv(TEACH, "topics")).decode())))
    assert [(r["job"], r["student"], r["best_of_student"]) for r in rows] == [
        (str(b1), "Bob", "yes"), (str(c1), "Carol", "yes"), (str(a1), "Alice", "yes"), (str(a2), "Alice", "no")]
    assert rows[0]["public_f1:food"] == "0.8496" and rows[0]["public_f1:weather"] == "0.0000"
    assert rows[0]["private_macro_f1"] == "0.8496" and rows[0]["counted"] == "yes" and rows[0]["picked"] == "no"

    standing = (await service.report(ALICE, a2)).standing  # what Alice's report says of her weaker run
    assert (standing.rank, standing.students, standing.best) == (3, 3, False)  # below both classmates


# -- the whole life, from the command line ---------------------------------------------------------

@pytest.fixture
def cli(tmp_path, tiny_base, monkeypatch, db_url):
    """``tinytutor`` on the test database (SQLite or PostgreSQL), with the tiny BERT as base."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTUTOR_DATABASE_URL", db_url)
    path = cli_config(tmp_path, tiny_base, reap_seconds=0.3, heartbeat_seconds=0.3, cpu_slots=2)
    monkeypatch.setenv("TINYTUTOR_CONFIG", str(path))
    from cli import main

    def run(*argv, code=0):
        out = run.capsys.readouterr()  # drop what came before
        assert main([str(a) for a in argv]) == code, out
        got = run.capsys.readouterr()
        run.seen += got.out + got.err
        return got

    run.seen = ""
    return run


def test_an_assignment_from_creation_to_leaderboard_on_the_command_line(cli, tmp_path, capsys, tiny_base):
    cli.capsys = capsys
    test = tmp_path / "hidden.csv"
    test.write_bytes(HIDDEN)
    train = write_csv(tmp_path / "train.csv", synthetic_rows(20))
    own = write_csv(tmp_path / "bob.csv", synthetic_rows(20, seed=5))
    made = json.loads(cli("assignment", "create", "--guild", "g1", "--name", "topics", "--test", test,
                          "--train", train, "--max-submissions", "2", "--daily-cap", "1", "--public-share", "0.3",
                          "--json").out)
    assert made["labels"] == ["food", "sports", "weather"] and made["open"]
    assert (made["public_share"], made["daily_cap"], made["max_picks"], made["revealed"]) == (0.3, 1, 2, False)

    out = cli("queue", "submit", "--guild", "g1", "--user", "ann", "--assignment", "topics", "--name", "ann-2").out
    assert "submitted to assignment 'topics'" in out and "1 of 1 today, 1 of 2 in all; the next one tomorrow" in out
    cli("queue", "submit", own, "--guild", "g1", "--user", "bob", "--assignment", "topics", "--layers", "1",
        "--name", "bob-1")
    no_food = write_csv(tmp_path / "carl.csv", [r for r in synthetic_rows(20) if r[1] != "food"])
    err = cli("queue", "submit", no_food, "--guild", "g1", "--user", "carl", "--assignment", "topics", code=1).err
    assert "no examples of food" in err
    err = cli("queue", "submit", own, "--guild", "g1", "--user", "bob", "--assignment", "topics", code=1).err
    assert "today's 1 submission(s)" in err and "1 of 1 today, 1 of 2 in all" in err  # over the daily cap

    cli("scheduler", "--until-idle")  # returns once both jobs are done
    seen = json.loads(cli("leaderboard", "--guild", "g1", "--assignment", "topics", "--as-student", "ann",
                          "--json").out)  # what ann may see before the reveal: the public board, nothing private
    assert (seen["board"], seen["private"], seen["all"], seen["shake_up"]) == ("public", None, None, None)
    assert list(seen["baselines"]) == ["public"] and [r["owner_id"] for r in seen["best"]].count(None) == 1
    board = json.loads(cli("leaderboard", "--guild", "g1", "--assignment", "topics", "--json",
                           "--csv", tmp_path / "board.csv").out)
    hidden_from_ann = {"owner_id": None, "job_id": None, "per_class_f1": None, "picked": None, "counted": None}
    assert seen["best"] == [r | {"mine": True} if r["owner_id"] == "ann" else r | hidden_from_ann
                            for r in board["public"]]
    assert sorted(r["owner_id"] for r in board["best"]) == ["ann", "bob"]
    key = [(-round(r["macro_f1"], 3), r["params"], r["ms_per_message"]) for r in board["best"]]
    assert key == sorted(key) and [r["rank"] for r in board["best"]] == [1, 2]
    layers = {r["owner_id"]: r["layers"] for r in board["best"]}
    assert layers == {"ann": 2, "bob": 1}
    assert all(set(r["per_class_f1"]) == {"food", "sports", "weather"} for r in board["best"])
    assert 0 <= board["baseline_macro_f1"] <= 1 and "training file" in board["baseline_source"]
    # each worker scored the frozen base read by its own probe on both parts: the board's strongest reference
    rows = board["all"]
    assert all(0 <= r["probe_macro_f1"] <= 1 for r in rows)
    assert board["frozen_probes"] == {"public": max(r["probe_macro_f1"] for r in rows),
                                      "private": max(r["probe_macro_f1"] for r in board["private"])}
    text = cli("leaderboard", "--guild", "g1", "--assignment", "topics").out
    assert "— baseline —" in text and "ann-2" in text and "bob-1" in text

    cmp = json.loads(cli("compare", "1", "2", "--json").out)
    changed = {s["name"]: (s["a"], s["b"]) for s in cmp["settings"]}
    assert changed["layers"] == (2, 1) and "data" in changed  # other file, other layers
    assert cmp["hidden"]["assignment"] == "topics"
    assert {r["name"] for r in cmp["per_class_f1"]} == {"food", "sports", "weather"}
    assert "settings that differ" in cli("compare", "1", "2").out

    # reproducibility: the report records the spec, seed, base model hash and versions; like: reruns it
    rerun = json.loads(cli("queue", "submit", "--guild", "g1", "--user", "bob", "--like", "2", "--seed", "7",
                           "--name", "bob-again", "--json").out)
    cli("assignment", "close", "--guild", "g1", "--name", "topics")
    err = cli("queue", "submit", own, "--guild", "g1", "--user", "bob", "--assignment", "topics", code=1).err
    assert "is closed" in err
    listed = json.loads(cli("assignment", "list", "--guild", "g1", "--json").out)
    assert [(a["name"], a["open"]) for a in listed] == [("topics", False)]
    cli("queue", "cancel", rerun["id"])

    # final picks, the reveal, grades
    picked = json.loads(cli("assignment", "pick", "--guild", "g1", "--user", "ann", "--name", "topics", "--job", "1",
                            "--json").out)
    assert [p["job_id"] for p in picked["picked"]] == [1]
    assert "not one of bob's submissions" in cli("assignment", "pick", "--guild", "g1", "--user", "bob", "--name",
                                                 "topics", "--job", "1", code=1).err
    revealed = json.loads(cli("assignment", "reveal", "--guild", "g1", "--name", "topics", "--json").out)
    assert revealed["revealed"] and revealed["board"]["board"] == "private"
    final = json.loads(cli("leaderboard", "--guild", "g1", "--assignment", "topics", "--as-student", "bob",
                           "--json").out)
    assert final["board"] == "private" and [r["macro_f1"] for r in final["best"]] == [
        r["macro_f1"] for r in revealed["board"]["private"]]
    assert "already revealed" in cli("assignment", "reveal", "--guild", "g1", "--name", "topics", code=1).err
    cli("assignment", "grades", "--guild", "g1", "--name", "topics", "--rule", "A=0.5,F=0", "--csv",
        tmp_path / "grades.csv")
    grades = list(csv.DictReader(io.StringIO((tmp_path / "grades.csv").read_text())))
    assert [(g["student_id"], g["rank"]) for g in grades] == [(r["owner_id"], str(r["rank"]))
                                                              for r in revealed["board"]["private"]]
    assert all(g["grade"] == ("A" if float(g["private_macro_f1"]) >= 0.5 else "F") for g in grades)
    assert grades[[g["student_id"] for g in grades].index("ann")]["counted_by"] == "pick"

    import asyncio

    from storage.db import Database
    from trainer.provenance import content_hash

    async def rows():
        db = Database(cli_db_url(tmp_path))
        try:
            async with db.transaction() as s:
                reports = list((await s.execute(select(Report).order_by(Report.job_id))).scalars())
                outbox = list((await s.execute(select(Outbox))).scalars())
                jobs = {j.id: j for j in (await s.execute(select(Job))).scalars()}
                return ([(r.metrics, r.report_text) for r in reports], [o.payload for o in outbox], jobs)
        finally:
            await db.close()

    reports, payloads, jobs = asyncio.run(rows())
    assert jobs[3].params == {"layers": 1, "seed": 7, "max_epochs": 20} and jobs[3].dataset_id == jobs[2].dataset_id
    prov = reports[0][0]["provenance"]
    assert prov["base_sha256"] == content_hash(tiny_base) and prov["seed"] == 42
    assert prov["versions"]["torch"] and prov["versions"]["transformers"] and reports[0][0]["spec"]["layers"] == 2

    # the hidden texts are nowhere a student can look: reports, outbox messages, metrics files, model
    # cards, logs, plots, the CSV export, anything the commands printed
    leaks = [f for f in (tmp_path / "class-data").rglob("*") if f.is_file() and "datasets" not in f.parts
             and MARK.encode() in f.read_bytes()]
    assert leaks == []
    assert [p["assignment_id"] for p in payloads if "assignment_id" in p] == [1]  # the reveal, announced once
    assert MARK not in (json.dumps([reports, payloads]) + cli.seen + (tmp_path / "board.csv").read_text()
                        + (tmp_path / "grades.csv").read_text())
    assert list((tmp_path / "class-data" / "models").rglob("metrics.json"))  # there were files to search


def cli_db_url(tmp_path):
    import os

    return os.environ["TINYTUTOR_DATABASE_URL"]
