"""The service's use cases against a real database (SQLite and PostgreSQL): submission, quotas,
permissions, cancel, queue order. No worker processes here (see test_queue.py)."""

from __future__ import annotations

import asyncio

import pytest
from helpers import (
    ALICE,
    BOB,
    GOOD,
    MALLORY,
    TEACH,
    csv_bytes,
    stored_files,
    synthetic_rows,
    write_csv,
)
from sqlalchemy import func, select

from service import Caller
from service.errors import (
    Conflict,
    InvalidDataset,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from storage.models import Dataset, Job, Model, Outbox


async def count(db, model) -> int:
    async with db.transaction() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_submit_stores_dataset_and_job_and_answers_with_position(service, db):
    sub = await service.submit(ALICE, GOOD, "topics.csv", name="topics", params={"epochs": 2})
    assert sub.job.status == "queued" and sub.job.position == 1 and sub.job.eta_seconds > 0
    assert sub.rows == 60 and sub.labels == {"food": 20, "sports": 20, "weather": 20}
    async with db.transaction() as s:
        job = await s.get(Job, sub.job.id)
        ds = await s.get(Dataset, job.dataset_id)
    assert job.params == {"epochs": 2, "max_epochs": 20} and job.owner_id == "alice" and job.priority == 0
    stored = service.store.path(ds.path)
    assert stored.read_bytes() == GOOD
    assert stored.name == f"{ds.sha256}.csv"  # the name comes from the content, not from the upload
    assert not any((service.store.root / "tmp").iterdir())


async def test_a_bad_file_stores_nothing_and_says_which_rows(service, db):
    rows = synthetic_rows(20)
    rows[4] = ("", "food")
    rows[9] = ("some text", "")
    with pytest.raises(InvalidDataset) as err:
        await service.submit(ALICE, csv_bytes(rows), "bad.csv", name="bad")
    text = str(err.value)
    assert "row 6" in text and "row 11" in text and "nothing was stored" in text
    assert await count(db, Dataset) == 0 and await count(db, Job) == 0
    assert stored_files(service) == []


async def test_bad_settings_and_names_are_refused_before_anything_is_stored(service, db):
    with pytest.raises(InvalidRequest, match="layers"):
        await service.submit(ALICE, GOOD, "t.csv", name="x", params={"layers": 9})  # the tiny base has 4
    with pytest.raises(InvalidRequest, match="name"):
        await service.submit(ALICE, GOOD, "t.csv", name="   ")
    with pytest.raises(InvalidRequest, match="Unknown training settings: out_dir"):
        await service.submit(ALICE, GOOD, "t.csv", name="x", params={"out_dir": "/etc"})
    assert await count(db, Job) == 0 and stored_files(service) == []


async def test_quota_refusals_name_the_limit_and_its_value(service, db):
    await service.set_quotas(TEACH, max_queued_per_student=2, max_bytes=5000, max_rows=50, max_epochs=4)
    with pytest.raises(QuotaExceeded, match=r"max_bytes = 5,000") as e:
        await service.submit(ALICE, GOOD + b"x" * 5000, "t.csv", name="big")
    assert e.value.limit == "max_bytes" and e.value.value == 5000
    with pytest.raises(QuotaExceeded, match=r"60 examples.*max_rows = 50"):
        await service.submit(ALICE, GOOD, "t.csv", name="rows")
    await service.set_quotas(TEACH, max_rows=1000)
    with pytest.raises(QuotaExceeded, match=r"max_epochs = 4"):
        await service.submit(ALICE, GOOD, "t.csv", name="e", params={"epochs": 5})
    await service.submit(ALICE, GOOD, "t.csv", name="one")
    await service.submit(ALICE, GOOD, "t.csv", name="two")
    with pytest.raises(QuotaExceeded, match=r"2 job\(s\) queued or running.*max_queued_per_student = 2"):
        await service.submit(ALICE, GOOD, "t.csv", name="three")
    await service.submit(BOB, GOOD, "t.csv", name="bobs")  # quotas are per student
    await service.cancel(ALICE, 1)
    await service.set_quotas(TEACH, max_jobs_per_day=2)
    with pytest.raises(QuotaExceeded, match=r"submitted 2 job\(s\) today.*max_jobs_per_day = 2"):
        await service.submit(ALICE, GOOD, "t.csv", name="four")
    assert await count(db, Job) == 3


async def test_thirty_submissions_at_once_are_all_stored(service, db):
    await service.set_quotas(TEACH, max_queued_per_student=100, max_jobs_per_day=100)
    callers = [Caller("class-a", f"s{i % 10}") for i in range(30)]
    results = await asyncio.gather(*(service.submit(c, csv_bytes(synthetic_rows(20, seed=i)), "t.csv", name=f"m{i}")
                                     for i, c in enumerate(callers)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert await count(db, Job) == 30
    assert sorted(r.job.id for r in results) == list(range(1, 31))
    queue = await service.class_queue(TEACH)
    assert sorted(v.position for v in queue) == list(range(1, 31))


async def test_students_see_and_steer_only_their_own_jobs(service):
    a = (await service.submit(ALICE, GOOD, "t.csv", name="a")).job.id
    b = (await service.submit(BOB, GOOD, "t.csv", name="b")).job.id
    assert [v.id for v in await service.jobs(ALICE)] == [a]
    with pytest.raises(PermissionDenied):
        await service.job(ALICE, b)
    with pytest.raises(PermissionDenied):
        await service.cancel(ALICE, b)
    with pytest.raises(PermissionDenied):
        await service.jobs(ALICE, everyone=True)
    with pytest.raises(PermissionDenied):
        await service.class_queue(ALICE)
    with pytest.raises(PermissionDenied):
        await service.set_quotas(ALICE, max_rows=10)
    with pytest.raises(PermissionDenied):
        await service.set_paused(ALICE, True)
    with pytest.raises(NotFound):
        await service.job(MALLORY, a)  # another server: not even "belongs to someone else"
    assert {v.id for v in await service.jobs(TEACH, everyone=True)} == {a, b}
    assert (await service.cancel(TEACH, b)).status == "cancelled"
    with pytest.raises(Conflict, match="has already been cancelled"):
        await service.cancel(BOB, b)


async def test_cancel_of_a_queued_job_writes_an_outbox_row(service, db):
    a = (await service.submit(ALICE, GOOD, "t.csv", name="a")).job.id
    view = await service.cancel(ALICE, a)
    assert view.status == "cancelled" and view.position is None
    async with db.transaction() as s:
        rows = list((await s.execute(select(Outbox))).scalars())
    assert [(r.kind, r.job_id, r.payload["cancelled_by"]) for r in rows] == [("job_cancelled", a, "alice")]


async def _fake_model(db, caller, name="m", visibility="private") -> int:
    async with db.transaction() as s:
        m = Model(guild_id=caller.guild_id, owner_id=caller.user_id, name=name, version=1, base_model="tiny",
                  layers_kept=[0, 2], layers_base=4, params=1, params_base=2, labels=["a", "b"],
                  metrics={"macro_f1": 0.5}, visibility=visibility, path=f"models/fake-{name}")
        s.add(m)
        await s.flush()
        return m.id


async def test_model_rules_own_shared_and_never_across_classes(service, db):
    await service.ensure_class("class-a")
    await service.ensure_class("class-b")
    mid = await _fake_model(db, ALICE)
    with pytest.raises(NotFound):
        await service.predict(BOB, mid, ["hello"])
    assert [m.id for m in await service.models(BOB)] == []
    with pytest.raises(NotFound):
        await service.share_model(BOB, mid)
    shared = await service.share_model(ALICE, mid)
    assert shared.visibility == "class"
    assert [m.id for m in await service.models(BOB)] == [mid]
    with pytest.raises(PermissionDenied):
        await service.rename_model(BOB, mid, "mine now")
    with pytest.raises(PermissionDenied):
        await service.delete_model(BOB, mid)
    with pytest.raises(NotFound):
        await service.predict(MALLORY, mid, ["hello"])  # shared with the class, not with other servers
    assert await service.models(MALLORY) == []
    renamed = await service.rename_model(ALICE, mid, "better")
    assert renamed.label == "better v1"
    await service.delete_model(ALICE, mid)
    assert await service.models(ALICE) == []


async def test_pause_keeps_jobs_queued_and_resume_lets_them_start(service, db, settings_for, db_url):
    from jobs.scheduler import Scheduler

    await service.submit(ALICE, GOOD, "t.csv", name="a")
    await service.set_paused(TEACH, True)
    sched = Scheduler(db, settings_for(db_url), slots=1)
    assert await sched.claim_next() is None
    await service.set_paused(TEACH, False)
    job = await sched.claim_next()
    assert job is not None and job.status == "running" and job.attempts == 1


async def test_instructor_jobs_go_first_then_students_take_turns(service, db, settings_for, db_url):
    from jobs.scheduler import Scheduler

    await service.set_quotas(TEACH, max_queued_per_student=5, max_running_per_student=5)
    ids = {}
    for caller, n in ((ALICE, 3), (BOB, 2)):
        for i in range(n):
            ids[(caller.user_id, i)] = (await service.submit(caller, GOOD, "t.csv", name=f"{caller.user_id}{i}")).job.id
    ids[("teacher", 0)] = (await service.submit(TEACH, GOOD, "t.csv", name="demo")).job.id
    queue = await service.class_queue(TEACH)
    assert [(v.owner_id, v.position) for v in queue][:1] == [("teacher", 1)]
    sched = Scheduler(db, settings_for(db_url), slots=10)
    order = []
    while (job := await sched.claim_next()) is not None:
        order.append(job.owner_id)
    assert order == ["teacher", "alice", "bob", "alice", "bob", "alice"]


async def test_ids_the_database_cannot_hold_are_simply_not_found(service):
    await service.ensure_class("class-a")
    for bad in (2**40, -1, 0):
        with pytest.raises(NotFound):
            await service.job(ALICE, bad)
        with pytest.raises(NotFound):
            await service.predict(ALICE, bad, ["hello"])
        with pytest.raises(NotFound):
            await service.delete_model(TEACH, bad)


async def test_a_model_whose_files_are_gone_is_a_plain_refusal(service, db):
    await service.ensure_class("class-a")
    mid = await _fake_model(db, ALICE)  # its directory was never written
    with pytest.raises(Conflict, match="cannot be loaded"):
        await service.predict(ALICE, mid, ["hello"])


async def _real_model(db, service, caller, tmp_path, tiny_base) -> int:
    """A tiny model trained for real into the artefact store, recorded as the caller's model."""

    from core.spec import TrainSpec
    from trainer.pipeline import run_training

    rel = "models/real"
    data = write_csv(tmp_path / "t.csv", synthetic_rows())
    run_training(TrainSpec(data_path=str(data), base=str(tiny_base), out_dir=str(service.store.path(rel)), layers=2,
                           epochs=12, lr=1e-3, batch_size=8, seed=7))
    async with db.transaction() as s:
        m = Model(guild_id=caller.guild_id, owner_id=caller.user_id, name="real", version=1, base_model="tiny",
                  layers_kept=[1, 3], layers_base=4, params=1, params_base=2, labels=["food", "sports", "weather"],
                  metrics={"macro_f1": 1.0}, visibility="class", path=rel)
        s.add(m)
        await s.flush()
        return m.id


async def test_a_burst_of_predictions_shares_one_forward_pass(service, db, tmp_path, tiny_base):
    await service.ensure_class("class-a")
    mid = await _real_model(db, service, ALICE, tmp_path, tiny_base)
    texts = ["rain snow cloud", "pizza bread cheese", "goal team match", "cold wind storm", "soup salad", "coach win"]
    alone = [(await service.predict(ALICE, mid, [t]))[1][0] for t in texts]  # also loads the model
    service.batcher.window = 0.5  # wide enough for six database look-ups, even on a loaded machine
    before = service.batcher.batches
    together = await asyncio.gather(*(service.predict(BOB if i % 2 else ALICE, mid, [t]) for i, t in enumerate(texts)))
    assert service.batcher.batches == before + 1, "six students at once: one forward pass"
    assert [preds[0].label for _, preds in together] == [p.label for p in alone]
    assert [preds[0].score for _, preds in together] == pytest.approx([p.score for p in alone], abs=1e-4)
    assert all(view.id == mid for view, _ in together)


async def test_a_teacher_with_other_labels_is_refused_before_anything_is_stored(service, db):
    await service.ensure_class("class-a")
    async with db.transaction() as s:
        m = Model(guild_id="class-a", owner_id="alice", name="pets", version=1, base_model="tiny", layers_kept=[0],
                  layers_base=4, params=1, params_base=2, labels=["cat", "dog", "food"], metrics={}, path="models/x")
        s.add(m)
        await s.flush()
        teacher = m.id
    with pytest.raises(InvalidRequest) as err:
        await service.submit(ALICE, GOOD, "t.csv", name="s", params={"teacher_model_id": teacher})
    assert "labels the teacher never learned: sports, weather" in str(err.value)
    assert "teacher labels missing from this file: cat, dog" in str(err.value)
    assert await count(db, Job) == 0 and await count(db, Dataset) == 0
    with pytest.raises(NotFound):  # another student's private model cannot be a teacher
        await service.submit(BOB, GOOD, "t.csv", name="s", params={"teacher_model_id": teacher})
    with pytest.raises(InvalidRequest, match="distill method"):
        await service.submit(ALICE, GOOD, "t.csv", name="s", params={"teacher_model_id": teacher, "method": "lora"})
    with pytest.raises(InvalidRequest, match="augment is for the distill method"):  # silently ignored before
        await service.submit(ALICE, GOOD, "t.csv", name="s", params={"augment": 2})
    assert await count(db, Job) == 0 and await count(db, Dataset) == 0
