"""Discord's limits: long texts split on lines, embeds cut with a note, progress bars."""

from __future__ import annotations

from datetime import UTC, datetime

from bot import render
from service import JobView


def view(status, progress=None, **kw):
    base = dict(id=7, owner_id="42", name="topics", status=status, position=None, eta_seconds=None,
                progress=progress, attempts=1, priority=0, error=None, created_at=datetime.now(UTC),
                started_at=None, finished_at=None)
    base.update(kw)
    return JobView(**base)


def test_split_text_keeps_every_line_and_respects_the_limit():
    text = "\n".join(f"line {i} " + "x" * (i % 50) for i in range(400))
    chunks = render.split_text(text, 2000)
    assert all(len(c) <= 2000 for c in chunks) and len(chunks) > 1
    assert "\n".join(chunks) == text
    assert all(len(c) <= 2000 for c in render.split_text("y" * 4500))  # one over-long line is cut


def test_code_blocks_fit_in_a_message():
    blocks = render.code_blocks("\n".join(["precision recall f1"] * 300))
    assert all(len(b) <= 2000 and b.startswith("```\n") and b.endswith("\n```") for b in blocks)


def test_a_long_list_is_cut_with_a_count_of_what_was_left_out():
    embed = render.lines_embed("Jobs", [f"job {i} " + "z" * 80 for i in range(200)], "none")
    assert len(embed.description) <= 4096 and embed.description.endswith("more")


def test_progress_text_for_each_state():
    assert "position 3" in render.progress_text(view("queued", position=3, eta_seconds=200), "<@42>")
    running = render.progress_text(view("running", {"stage": "training", "step": 5, "steps": 10, "epoch": 1,
                                                    "epochs": 2, "loss": 0.5, "eta_seconds": 30}), "<@42>")
    assert "50%" in running and "epoch 1/2" in running and "loss 0.500" in running and "█" in running
    assert "failed" in render.progress_text(view("failed", error="out of memory"), "<@42>")
    assert "finished" in render.progress_text(view("succeeded", macro_f1=0.91), "<@42>")


def test_a_job_waiting_in_a_paused_queue_says_so():
    assert "paused" in render.progress_text(view("queued", position=None), "<@42>")
    assert "queue paused" in render.job_line(view("queued", position=None))


def test_chinese_japanese_and_korean_labels_are_drawn_not_boxes(tmp_path):
    """matplotlib warns for every glyph its fonts lack (drawn as an empty box): there must be none."""
    import warnings

    from trainer.evaluate import Evaluation, fallback_fonts, plot_confusion

    labels = ["正面", "负面", "ポジティブ", "긍정", "neutral"]
    ev = Evaluation(0.8, 0.75, {}, "", [[3, 1, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0, 0, 2, 0],
                                        [0, 0, 0, 0, 5]], labels)
    assert fallback_fonts(), "no CJK font installed: make install adds Debian's fonts-noto-cjk"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion(ev, tmp_path / "cm.png")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing[:3]
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_renderer_shows_distillations_teacher_stage_from_one_typed_progress(tmp_path):
    import jinja2

    from cli.demo import progress_line
    from cli.queue import job_line

    teacher = view("running", {"stage": "teacher", "step": 3, "steps": 12, "epoch": 1, "epochs": 4, "loss": 0.81,
                               "eta_seconds": 90, "unknown_key": "ignored"})
    assert teacher.live.training and teacher.live.fraction == 0.25 and teacher.live.epoch_label == "teacher epoch 1/4"
    assert "25% · teacher epoch 1/4 · loss 0.810" in render.progress_text(teacher, "<@42>")
    assert "training the teacher 25%" in render.job_line(teacher)
    assert "teacher epoch 1/4 25%" in job_line(teacher)
    assert progress_line(teacher) == "training teacher epoch 1/4, loss 0.810, ETA 90 s"
    env = jinja2.Environment(loader=jinja2.PackageLoader("web", "templates"), autoescape=True)
    env.filters["pct"] = lambda v: f"{v:.0%}"
    html = env.get_template("queue_live.html").render(running=[teacher], queued=[], finished=[], names={},
                                                      eta=lambda s: f"{s} s", csrf="t", paused=False, page=1,
                                                      pages=1, total=0)
    assert "training · teacher epoch 1/4 · loss 0.810" in html and "25%" in html  # the page dropped "teacher"
    starting = view("running", None)
    assert starting.live.stage == "starting" and not starting.live.training
    assert "starting…" in render.progress_text(starting, "<@42>")
