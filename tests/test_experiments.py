"""How small can it get: an experiment (one request, several jobs differing in one setting) through the
queue on SQLite and PostgreSQL, announced once when its last job ends; its refusals store nothing; its
table, Pareto front and chart; the dashboard's pages for it, and the confusion matrix's cells."""

from __future__ import annotations

import pytest
from helpers import ALICE, BOB, GOOD, MALLORY, TEACH, stored_files, wait_for
from sqlalchemy import func, select

from core.errors import SpecError
from core.spec import Sweep
from jobs.executor import LocalExecutor
from jobs.scheduler import Scheduler
from service.errors import InvalidRequest, NotFound, PermissionDenied, QuotaExceeded
from storage.models import Dataset, Experiment, Job, Outbox
from trainer.sweep import pareto_front


def test_a_sweep_names_one_setting_and_its_values():
    assert Sweep.parse("layers=1,2,3,6") == Sweep("layers", (1, 2, 3, 6))
    assert Sweep.parse(" max-length = 32, 64 ") == Sweep("max_length", (32, 64))
    assert Sweep.parse("method=full,probe").label("probe") == "method=probe"
    for bad, says in (("layers", "SETTING=V1,V2"), ("lr=0.1,0.2", "one of layers, max_length, method, strategy"),
                      ("layers=2", "2 to 8 values"), ("layers=a,b", "whole numbers"), ("layers=2,2", "twice"),
                      ("layers=" + ",".join(map(str, range(1, 10))), "2 to 8 values")):
        with pytest.raises(SpecError, match=says):
            Sweep.parse(bad)


def test_the_pareto_front_keeps_the_runs_nothing_beats_on_both_speed_and_quality():
    # (ms per message, macro-F1): lower ms and higher F1 are better
    runs = [(1.0, 0.70), (2.0, 0.80), (3.0, 0.79), (2.0, 0.60), (4.0, 0.90), (1.0, 0.70)]
    assert pareto_front(runs) == [True, True, False, False, True, True]  # equal points are both kept


async def _rows(db, model) -> int:
    async with db.transaction() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_an_experiment_is_refused_whole_and_stores_nothing(service, db):
    await service.set_quotas(TEACH, max_queued_per_student=3)
    with pytest.raises(QuotaExceeded, match="This experiment queues 4 jobs, more than a student may have"):
        await service.submit(ALICE, GOOD, "t.csv", name="sizes", sweep="layers=1,2,3,4")
    await service.set_quotas(TEACH, max_queued_per_student=5)
    await service.submit(ALICE, GOOD, "t.csv", name="one")
    await service.submit(ALICE, GOOD, "t.csv", name="two")
    with pytest.raises(QuotaExceeded, match="You already have 2 job.s. queued or running; this experiment queues 4"):
        await service.submit(ALICE, GOOD, "t.csv", name="sizes", sweep="layers=1,2,3,4")
    # a value the base cannot take (it has 4 layers) refuses the whole experiment, naming it
    with pytest.raises(InvalidRequest, match="layers"):
        await service.submit(BOB, GOOD, "t.csv", name="sizes", sweep="layers=2,9")
    with pytest.raises(InvalidRequest, match="leave the layers option out"):
        await service.submit(BOB, GOOD, "t.csv", name="sizes", params={"layers": 2}, sweep="layers=1,2")
    with pytest.raises(InvalidRequest, match="2 to 8 values"):
        await service.submit(BOB, GOOD, "t.csv", name="sizes", sweep="layers=1")
    with pytest.raises(InvalidRequest, match="max_length"):
        await service.submit(BOB, GOOD, "t.csv", name="sizes", sweep="max_length=16,4096")
    assert await _rows(db, Experiment) == 0 and await _rows(db, Job) == 2 and await _rows(db, Dataset) == 1
    assert len(stored_files(service)) == 1  # the two accepted jobs' one upload; nothing of the refused ones


async def test_an_experiment_runs_through_the_queue_and_is_announced_once(db, db_url, settings_for, service):
    """Four jobs of one request, two running at once (so two can end together: the experiment row's lock
    decides which of them announces), one cancelled while queued; one outbox row for them all."""
    await service.set_quotas(TEACH, max_running_per_student=2)
    sub = await service.submit(ALICE, GOOD, "topics.csv", name="sizes", sweep="layers=1,2,3,4", channel_id="chan-1")
    assert [j.name for j in sub.jobs] == ["sizes layers=1", "sizes layers=2", "sizes layers=3", "sizes layers=4"]
    assert sub.job == sub.jobs[0] and [j.status for j in sub.jobs] == ["queued"] * 4
    await service.cancel(ALICE, sub.jobs[2].id)  # a cancelled run is a row of the table, not a lost announcement
    with pytest.raises(PermissionDenied):  # a classmate's experiment is theirs
        await service.experiment(BOB, sub.experiment_id)
    with pytest.raises(NotFound):  # another class's is not there at all
        await service.experiment(MALLORY, sub.experiment_id)
    with pytest.raises(NotFound):  # an id past PostgreSQL's integer: not there (it was a database error)
        await service.experiment(ALICE, 2**40)
    running = await service.experiment(ALICE, sub.experiment_id)
    assert running.finished_at is None and running.chart_png is None

    sched = Scheduler(db, settings_for(db_url), executor=LocalExecutor(), slots=2)
    await sched.start()
    try:
        async def announced():
            async with db.transaction() as s:
                rows = list((await s.execute(select(Outbox))).scalars())
            return rows or None

        rows = await wait_for(announced, timeout=240, what="the experiment's announcement")
        await wait_for(lambda: sched.idle(), what="the scheduler to go idle")
    finally:
        await sched.stop()
    async with db.transaction() as s:
        rows = list((await s.execute(select(Outbox))).scalars())
    assert [(o.kind, o.job_id, o.channel_id) for o in rows] == [("experiment_finished", None, "chan-1")]
    assert rows[0].payload == {"experiment_id": sub.experiment_id, "owner_id": "alice", "name": "sizes",
                               "setting": "layers"}

    view = await service.experiment(ALICE, sub.experiment_id)
    assert view.finished_at is not None and [r.status for r in view.runs] == ["succeeded", "succeeded", "cancelled",
                                                                            "succeeded"]
    done = view.done
    assert [r.value for r in done] == [1, 2, 4] and [r.layers for r in done] == [1, 2, 4]
    assert done[0].params < done[1].params < done[2].params
    assert [r.front for r in done] == pareto_front([(r.ms_per_message, r.macro_f1) for r in done])
    assert view.chart_png.is_file() and view.chart_png.read_bytes()[:4] == b"\x89PNG"
    # the cheap references on the runs' shared test split, beside them
    first = (await service.report(ALICE, done[0].job_id)).metrics
    assert view.references == {"TF-IDF": first["baseline_macro_f1"], "frozen base + probe": first["probe_macro_f1"]}
    table = view.table().splitlines()
    assert table.pop() == (f"same test split: TF-IDF {first['baseline_macro_f1']:.3f} · frozen base + probe "
                           f"{first['probe_macro_f1']:.3f}")
    assert ("No run beats the frozen base" in view.reading()) == (max(r.macro_f1 for r in done)
                                                                   < first["probe_macro_f1"])
    assert table[0].split() == ["layers", "macro-F1", "ms/msg", "params", "job"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "3", "4"] and "cancelled" in table[3]
    assert view.reading().startswith("Best macro-F1 ")
    assert [e.id for e in await service.experiments(ALICE)] == [sub.experiment_id]
    assert await service.experiments(BOB) == []
    with pytest.raises(PermissionDenied):
        await service.experiments(BOB, everyone=True)
    assert [e.id for e in await service.experiments(TEACH, everyone=True)] == [sub.experiment_id]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_dashboard_shows_experiments_and_each_confusion_cell(db, db_url, settings_for, service, monkeypatch):
    """One real experiment of two runs; then the dashboard's experiment pages and, on one run's report,
    the confusion matrix whose cells list their test examples with why each was so labelled."""
    import re

    from aiohttp.test_utils import TestClient, TestServer
    from helpers import Clock

    from service import Service
    from web.app import make_app

    monkeypatch.setenv("TINYTUTOR_WEB_SECRET", "a test secret that is long enough")
    settings = settings_for(db_url, web={"public_url": "http://127.0.0.1:9"})
    sub = await service.submit(ALICE, GOOD, "topics.csv", name="sizes", sweep="layers=1,2")
    sched = Scheduler(db, settings, executor=LocalExecutor(), slots=1)
    await sched.start()
    try:
        await wait_for(lambda: sched.idle(), timeout=240, what="both runs")
    finally:
        await sched.stop()

    web_service = Service(db, settings, clock=Clock())
    client = TestClient(TestServer(make_app(web_service, settings)))
    await client.start_server()
    try:
        link = (await web_service.mint_link(TEACH)).split("127.0.0.1:9", 1)[1]
        fields = dict(re.findall(r'name="(token|signin_csrf)" value="([^"]*)"', await (await client.get(link)).text()))
        await client.post("/signin", data=fields, allow_redirects=False)
        listing = await (await client.get("/experiments")).text()
        assert f'href="/experiments/{sub.experiment_id}"' in listing and "layers = 1, 2" in listing
        assert "2 of 2 succeeded" in listing
        page = await (await client.get(f"/experiments/{sub.experiment_id}")).text()
        runs = page.split('id="runs"')[1].split("</table>")[0]
        assert runs.count("<tr>") == 3 and f'href="/jobs/{sub.jobs[1].id}"' in runs and "◆" in runs
        assert re.search(r'id="references">The cheap references on the same test split: TF-IDF [01]\.\d{3} · '
                         r"frozen base \+ probe [01]\.\d{3}\.<", page)
        chart = await client.get(f"/experiments/{sub.experiment_id}/chart.png")
        assert chart.status == 200 and (await chart.read())[:4] == b"\x89PNG"

        rep = await web_service.report(TEACH, sub.jobs[1].id)
        labels, matrix = rep.metrics["labels"], rep.metrics["confusion_matrix"]
        html = await (await client.get(f"/jobs/{sub.jobs[1].id}")).text()
        cells = html.split('id="confusion-cells"')[1].split("</table>")[0]
        links = re.findall(r'href="(/jobs/\d+/cell\?label=[^&]+&amp;predicted=[^"]+)">(\d+)</a>', cells)
        assert len(links) == sum(n > 0 for row in matrix for n in row)  # every non-zero cell, and only those
        assert (await client.get(f"/jobs/{sub.jobs[1].id}/learning.png")).status == 200
        for href, n in links:
            cell = await (await client.get(href.replace("&amp;", "&"))).text()
            listed = cell.split('id="cell-examples"')[1].split("</table>")[0]
            assert listed.count("<tr>") == int(n) + 1  # the header, then each example in the cell
            assert "<mark>" in listed and "(against" in listed  # why: the words that drove it, marked
        # a cell that does not exist is refused, not an error
        assert (await client.get(f"/jobs/{sub.jobs[1].id}/cell?label=nope&predicted={labels[0]}")).status == 404
    finally:
        await client.close()
    # the cells are the student's and their instructors' only
    with pytest.raises(PermissionDenied):
        await service.confusion_cell(BOB, sub.jobs[1].id, labels[0], labels[0])
    rep, examples = await service.confusion_cell(ALICE, sub.jobs[1].id, labels[0], labels[0])
    assert len(examples) == matrix[0][0] and all(x["label"] == x["predicted"] == labels[0] for x in examples)
    assert [x["confidence"] for x in examples] == sorted((x["confidence"] for x in examples), reverse=True)


def test_a_share_of_the_training_split_keeps_every_label_and_the_same_test_split():
    from helpers import synthetic_rows

    from core.spec import DataLimits
    from trainer.data import Dataset, share_of_training, split_dataset

    rows = synthetic_rows(40)
    ds = Dataset([t for t, _ in rows], [y for _, y in rows], list(range(2, len(rows) + 2)), "text", "label", "utf-8",
                 "csv")
    full = split_dataset(ds, DataLimits(), 42)
    quarter = share_of_training(full, 25, 42)
    assert len(quarter.train) == round(len(full.train) / 4) and set(quarter.train.labels) == set(full.train.labels)
    assert set(quarter.train.rows) < set(full.train.rows)
    assert quarter.test.rows == full.test.rows and quarter.validation.rows == full.validation.rows
    assert share_of_training(full, 25, 42).train.rows == quarter.train.rows  # seeded: the same rows again
    assert share_of_training(full, 100, 42) is full


def test_a_learning_curve_of_whole_runs_says_whether_more_data_would_help():
    from trainer.sweep import curve_reading

    rising = [{"share": 25, "examples": 30, "macro_f1": 0.61, "per_class_f1": {"a": 0.5, "b": 0.7}},
              {"share": 100, "examples": 120, "macro_f1": 0.80, "per_class_f1": {"a": 0.9, "b": 0.72}}]
    assert curve_reading(rising) == ("Still rising: macro-F1 0.61 with 25 % of the training data, 0.80 with all of "
                                     "it. More examples will help, most of 'a' (its F1 rose most).")
    flat = [dict(rising[0], macro_f1=0.795), rising[1]]
    assert curve_reading(flat).startswith("Flat since 25 % of the training data (macro-F1 0.80 -> 0.80)")
    assert curve_reading(rising[:1]) == "Too few runs finished to draw a learning curve."


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_experiment_over_the_share_of_the_data_is_a_learning_curve(db, db_url, settings_for, service):
    sub = await service.submit(ALICE, GOOD, "topics.csv", name="more data", params={"method": "probe"},
                               sweep="train_share=25,50,100")
    sched = Scheduler(db, settings_for(db_url), executor=LocalExecutor(), slots=1)
    await sched.start()
    try:
        await wait_for(lambda: sched.idle(), timeout=240, what="three probe runs")
    finally:
        await sched.stop()
    view = await service.experiment(ALICE, sub.experiment_id)
    assert view.is_curve and [r.status for r in view.runs] == ["succeeded"] * 3
    examples = [r.examples for r in view.runs]
    assert examples[0] < examples[1] < examples[2] and not any(r.front for r in view.runs)
    assert view.reading().startswith(("Still rising: macro-F1 ", "Flat since 50 % of the training data"))
    assert view.table().splitlines()[0].split() == ["train_share", "macro-F1", "ms/msg", "params", "examples", "job"]
    assert view.chart_png.read_bytes()[:4] == b"\x89PNG"
