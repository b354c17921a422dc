"""``tinytutor demo``: the whole class flow offline, on a fresh database and real chat lines.

A demo class with two students and an instructor. Bob's first upload is broken and refused (nothing
stored). The instructor sets an assignment: a hidden test set held out of the example data, the rest
as its training file. Both students submit to it (Alice prunes MiniLM to 3 layers and fine-tunes it;
Bob distils a 3-layer student from a fine-tuned 6-layer teacher, TinyBERT's way), the scheduler runs
them in worker processes while progress is printed, the outbox announces the results with their
place on the public board, the public board is printed as a student sees it (and the private one
so far as the instructor does), the two 3-layer models are compared side by side, and the report,
plot paths and a few predictions are printed. Bob may use Alice's model only after she shares it.
Alice also asks how small a model can get: an experiment of two jobs (1 and 2 layers) announced
together, with its table, Pareto front and chart. Last, Bob makes his final pick, the instructor
reveals the final board (announced once: the channel's post and each student's place), with the
shake-up, and exports grades.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from service import Caller
from service.errors import InvalidDataset, InvalidRequest, NotFound
from service.runtime import Runtime

from .tables import board_lines, shake_up_lines

CLASS = "demo-class"
ASSIGNMENT = "chat topics"
ALICE = Caller(CLASS, "alice", name="Alice")
BOB = Caller(CLASS, "bob", name="Bob")
RIVERA = Caller(CLASS, "rivera", instructor=True, name="Ms Rivera")
CHAT = ["How do I write a for loop in Python?", "I feel so happy today", "Who wrote Hamlet?", "Are you a robot?",
        "What is a neural network?"]


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(settings, directory: str | None = None, epochs: int | None = None) -> int:
    from trainer.examples import DEFAULT_TOPICS, write_chatterbot_csv

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = Path(directory or Path(settings.paths.runs_dir) / f"demo-{stamp}").resolve()
    if root.exists() and any(root.iterdir()):
        raise InvalidRequest(f"{root} is not empty; the demo needs a fresh directory (or leave out --dir)")
    settings = settings.changed(storage={"data_dir": str(root / "data"),
                                         "database_url": f"sqlite+aiosqlite:///{root / 'data' / 'tinytutor.db'}"},
                                training={"epochs": epochs} if epochs else {})
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

    example = write_chatterbot_csv(root / "example-chat.csv", DEFAULT_TOPICS)
    _say(f"Demo in {root}")
    _say(f"Example data: {example.name}, real chat lines by topic from chatterbot-corpus ({', '.join(DEFAULT_TOPICS)})")

    async with await Runtime.open(settings, settings.storage.database_url) as rt:  # its own fresh file
        await rt.service.ensure_class(CLASS, "Demo class")
        _say(f"\nClass '{CLASS}': students Alice and Bob, instructor Ms Rivera; {rt.scheduler.slots} training slot(s).")
        demo = Demo(rt, example)
        await demo.refused_upload()
        await demo.set_assignment()
        await demo.submit()
        await demo.show_queue()
        if not await demo.run_jobs():
            return 1
        await demo.leaderboard()
        await demo.compare()
        await demo.report()
        await demo.predict()
        await demo.share()
        await demo.experiment()
        await demo.reveal()
    _say(f"\nDemo finished in {time.monotonic() - started:.0f} s. Database and files: {root / 'data'}")
    return 0


class Demo:
    """The demo's numbered steps, in order, on one runtime: each prints its own part."""

    def __init__(self, rt: Runtime, example: Path):
        self.rt, self.svc, self.example = rt, rt.service, example
        self.alice_job = self.bob_job = None  # the two submissions' jobs (step 3)
        self.sweep = None  # Alice's experiment (step 3): its Submitted
        self.model = None  # Alice's default model (step 9)

    async def refused_upload(self) -> None:
        _say("\n1. Bob uploads a file with a missing label and an empty text:")
        try:
            await self.svc.submit(BOB, _broken_csv(self.example), "bobs-notes.csv", name="first try")
        except InvalidDataset as exc:
            _say("   " + str(exc).replace("\n", "\n   "))

    async def set_assignment(self) -> None:
        hidden, train = _hold_out(self.example)
        task = await self.svc.create_assignment(RIVERA, ASSIGNMENT, (hidden, "hidden-test.csv"),
                                                train=(train, "train.csv"), max_submissions=5, daily_cap=2,
                                                description="Which topic is a chat line about?")
        _say(f"\n2. Ms Rivera sets the assignment '{task.name}': a hidden test set of {task.test_rows} held-out lines "
             f"(never shown to students, never trained on), the other {task.train_rows} as its training file. "
             f"{task.public_share:.0%} of the hidden set is public: students see scores on that part until the "
             f"reveal; the private rest decides the final board. Limits: {task.daily_cap} a day, "
             f"{task.max_submissions} in all, {task.max_picks} final picks. TF-IDF baseline on the public part: "
             f"macro-F1 {task.baseline_macro_f1:.3f}.")

    async def submit(self) -> None:
        _say("\n3. Alice and Bob submit to it, training on the assignment's file:")
        a = await self.svc.submit(ALICE, None, None, name="topics", params={"layers": 3}, assignment=ASSIGNMENT)
        b = await self.svc.submit(BOB, None, None, name="topics-distilled", params={"layers": 3, "method": "distill"},
                                  assignment=ASSIGNMENT)
        for who, sub in (("Alice", a), ("Bob", b)):
            _say(f"   {who}: job {sub.job.id}, {sub.rows} examples, {len(sub.labels)} labels, position "
                 f"{sub.job.position}; submissions {sub.assignment.limits}")
        self.alice_job, self.bob_job = a.job.id, b.job.id
        content, filename = await self.svc.assignment_training_file(ALICE, ASSIGNMENT)
        self.sweep = x = await self.svc.submit(ALICE, content, filename, name="how small", sweep="layers=1,2")
        _say(f"   Alice also asks how small it can get: experiment {x.experiment_id}, jobs "
             + ", ".join(f"{j.id} ({j.name.rsplit(' ', 1)[-1]})" for j in x.jobs) + ", announced together when both end")

    async def show_queue(self) -> None:
        _say("\n4. Ms Rivera looks at the class queue:")
        for v in await self.svc.class_queue(RIVERA):
            _say(f"   #{v.position} job {v.id} {v.owner_id:<6} {v.name:<12} {v.status}")

    async def run_jobs(self) -> bool:
        """The scheduler runs both jobs while their progress and the channel's announcements are printed.
        False (and why) when a job did not succeed."""
        svc = self.svc
        where = "each as a Ray task" if self.rt.scheduler.executor.name == "ray" else "each in its own process"
        _say(f"\n5. The scheduler runs the jobs, {where}:")
        announced = []

        async def deliver(row, part_sent):
            announced.append(row)
            p = row.payload
            if row.kind == "experiment_finished":
                view = await svc.experiment_report(p["experiment_id"])
                _say(f"   [channel] @{p['owner_id']}: experiment {view.id} '{view.name}' finished: {view.reading()} "
                     "(its chart and table: step 11)")
            elif row.kind == "job_succeeded":
                st = (await svc.job_report(p["job_id"])).standing
                _say(f"   [channel] @{p['owner_id']}: job {p['job_id']} '{p['name']}' finished: macro-F1 "
                     f"{p['macro_f1']:.3f} (TF-IDF baseline {p['baseline_macro_f1']:.3f}), {p['ms_per_message']:.1f} ms/message; "
                     f"public board {st.macro_f1:.3f}, #{st.rank} of {st.students} so far")
            else:
                _say(f"   [channel] @{p['owner_id']}: job {p['job_id']} {row.kind.removeprefix('job_')}: {p.get('error', '')}")

        outbox = self.rt.outbox(deliver)
        await self.rt.start_jobs()
        last = {}
        while True:
            views = await svc.jobs(RIVERA, everyone=True)
            for v in views:
                p = v.live
                key = (v.status, p and p.stage, p and p.epoch)
                if key != last.get(v.id):  # a line per stage and epoch, not per heartbeat
                    last[v.id] = key
                    _say(f"   job {v.id} ({v.owner_id}): {progress_line(v)}")
            await outbox.deliver_once()
            expected = len(views) - len(self.sweep.jobs) + 1  # an experiment's jobs are announced together
            if all(v.status in ("succeeded", "failed", "cancelled") for v in views) and len(announced) >= expected:
                break
            await asyncio.sleep(0.5)
        await self.rt.scheduler.stop()
        for v in views:
            if v.status != "succeeded":
                _say(f"\njob {v.id} {v.status}: {v.error}")
        return all(v.status == "succeeded" for v in views)

    async def leaderboard(self) -> None:
        _say(f"\n6. The leaderboard of '{ASSIGNMENT}' as Alice sees it: the public board (ties go to smaller, then "
             "faster models; a classmate's name is not shown):\n")
        for line in board_lines(await self.svc.leaderboard(ALICE, ASSIGNMENT)):
            _say(f"   {line}")
        _say("\n   Ms Rivera also sees the private board so far (no student does until the reveal):\n")
        for line in board_lines(await self.svc.leaderboard(RIVERA, ASSIGNMENT), part="private"):
            _say(f"   {line}")

    async def compare(self) -> None:
        pruned = (await self.svc.report(ALICE, self.alice_job)).metrics
        distilled = (await self.svc.report(BOB, self.bob_job)).metrics
        t = distilled["teacher"]
        _say("\n7. The same 3 layers, two ways, beside the cheap references (same data, split and seed):\n")
        _say(f"   {'model':<40} {'layers':>6} {'params':>11} {'macro-F1':>9} {'ms/msg':>7}  served by")
        _say(f"   {'TF-IDF + logistic regression':<40} {'':>6} {'':>11} {pruned['baseline_macro_f1']:>9.3f}")
        if pruned.get("probe"):
            p = pruned["probe"]
            _say(f"   {'frozen base + linear probe (untrained)':<40} {p['layers']:>6} {pruned['params_base']:>11,} "
                 f"{p['macro_f1']:>9.3f}")
        _say(f"   {str(t['layers']) + '-layer teacher (fine-tuned)':<40} {t['layers']:>6} {t['params']:>11,} {t['macro_f1']:>9.3f} "
             f"{t['ms_per_message']:>7.2f}  PyTorch")
        for name, m in (("Alice: pruned, fine-tuned", pruned), ("Bob: pruned, distilled (TinyBERT)", distilled)):
            _say(f"   {name:<40} {len(m['layers_kept']):>6} {m['params']:>11,} {m['macro_f1']:>9.3f} "
                 f"{m['ms_per_message']:>7.2f}  {m['engine']}")
        _say(f"   Bob's student keeps {distilled['retained']:.1%} of its teacher's macro-F1; Alice's pruned model "
             f"{pruned['macro_f1'] / t['macro_f1']:.1%}."
             + ("" if t.get("worth_copying", True) else " The teacher was no better than the cheap references on "
                                                         "validation: the report says what to try."))

    async def report(self) -> None:
        report = await self.svc.report(ALICE, self.alice_job)
        m = report.metrics
        _say(f"\n8. Alice's report (job {self.alice_job}, test split never seen in training):\n")
        _say(report.report_text)
        probe = f", the frozen base + probe {m['probe']['macro_f1']:.3f}" if m.get("probe") else ""
        _say(f"   accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}; TF-IDF baseline macro-F1 "
             f"{m['baseline_macro_f1']:.3f}{probe}")
        _say(f"   layers {len(m['layers_kept'])}/{m['layers_base']} {m['layers_kept']}, params {m['params']:,} "
             f"(base {m['params_base']:,}), {m['ms_per_message']:.2f} ms/message served by {m['engine']}")
        _say(f"   confusion matrix: {report.confusion_png}")
        _say(f"   training curve:   {report.curve_png}")
        _say("   advice:")
        for tip in m["advice"]:
            _say(f"   - {tip}")

    async def predict(self) -> None:
        _say("\n9. Predictions with Alice's model (her default):")
        self.model, preds = await self.svc.predict(ALICE, None, CHAT)
        for text, p in zip(CHAT, preds, strict=True):
            _say(f"   {p.label:<12} {p.score:5.0%}  {text}")

    async def share(self) -> None:
        model_id = self.model.id
        _say(f"\n10. Bob tries Alice's model {model_id} before she shares it:")
        try:
            await self.svc.predict(BOB, model_id, CHAT[:1])
        except NotFound as exc:
            _say(f"   refused: {exc}")
        await self.svc.share_model(ALICE, model_id)
        _, preds = await self.svc.predict(BOB, model_id, CHAT[:1])
        _say(f"   after Alice shares it: '{CHAT[0]}' -> {preds[0].label} ({preds[0].score:.0%})")


    async def experiment(self) -> None:
        view = await self.svc.experiment(ALICE, self.sweep.experiment_id)
        _say(f"\n11. How small can it get? Alice's experiment {view.id} ({view.setting} = "
             f"{', '.join(map(str, view.values))}), beside her 3-layer model's macro-F1 in step 8:\n")
        for line in view.table().splitlines():
            _say(f"   {line}")
        _say(f"   {view.reading()} (◆: on the Pareto front, no run both as fast and as good)")
        _say(f"   chart (macro-F1 against ms per message, point size = parameters): {view.chart_png}")


    async def reveal(self) -> None:
        _say(f"\n12. The deadline of '{ASSIGNMENT}': Bob picks his submission for the final board, Ms Rivera reveals it.")
        picks = await self.svc.pick(BOB, ASSIGNMENT, self.bob_job)
        _say(f"   Bob: {picks.text}")
        done = await self.svc.reveal(RIVERA, ASSIGNMENT)
        announced = []

        async def deliver(row, part_sent):  # what the bot would post: the channel's message and each place by DM
            announced.append(row.kind)
            board = await self.svc.revealed_board(row.payload["assignment_id"])
            top = ", ".join(f"#{r.rank} {r.owner_id} {r.macro_f1:.3f}" for r in board.private[:3])
            _say(f"   [channel] the final board of '{row.payload['name']}' is out (private part): {top}")
            for r in board.private:
                _say(f"   [direct message to {r.owner_id}] your final place: #{r.rank} of {len(board.private)} "
                     f"(job {r.job_id}, {'your pick' if r.picked else 'your best public'})")

        await self.rt.outbox(deliver).deliver_once()
        await self.rt.outbox(deliver).deliver_once()  # a second round sends nothing again
        _say(f"   announced {announced.count('assignment_revealed')} time(s). The final board, as Ms Rivera sees it:\n")
        for line in board_lines(done.board) + shake_up_lines(done.board):
            _say(f"   {line}")
        grades = (await self.svc.grades_csv(RIVERA, ASSIGNMENT, "linear")).decode().strip().splitlines()
        _say("\n   Grades for the LMS (linear: 0 at the TF-IDF baseline, 100 at the best private score):")
        for line in grades:
            _say(f"   {line}")


def progress_line(v) -> str:
    if v.status == "queued":
        return f"queued, position {v.position}"
    if v.status == "running":
        p = v.live
        if p.training:
            loss = f", loss {p.loss:.3f}" if p.loss is not None else ""
            eta = f", ETA {p.eta_seconds:.0f} s" if p.eta_seconds is not None else ""
            return f"training {p.epoch_label}{loss}{eta}"
        return f"running: {p.stage}"
    return v.status


def _hold_out(example: Path, every: int = 7) -> tuple[bytes, bytes]:
    """Every ``every``-th line of the example as the hidden test set, the rest as the training file."""
    header, *rows = list(csv.reader(io.StringIO(example.read_text(encoding="utf-8"))))

    def as_csv(part) -> bytes:
        out = io.StringIO()
        csv.writer(out).writerows([header, *part])
        return out.getvalue().encode()

    return as_csv(rows[::every]), as_csv([r for i, r in enumerate(rows) if i % every])


def _broken_csv(example: Path) -> bytes:
    rows = list(csv.reader(io.StringIO(example.read_text(encoding="utf-8"))))
    rows = rows[:1] + rows[1::10]  # a sample of every topic
    rows[5][1] = ""  # a missing label
    rows[12][0] = ""  # an empty text
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()
