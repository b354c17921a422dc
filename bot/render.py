"""Text and embeds for Discord, within its limits: message content 2000 characters, embed description
4096, field value 1024, 25 fields, 6000 characters per embed. Nothing here talks to Discord."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import discord

CONTENT_LIMIT = 2000
DESCRIPTION_LIMIT = 4096
FIELD_LIMIT = 1024
GREEN, RED, GREY, BLUE = 0x2ECC71, 0xE74C3C, 0x95A5A6, 0x3498DB


def only_pinging(user_id: str | int) -> discord.AllowedMentions:
    """Allowed mentions for a message addressed to one student: that student, nobody else."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(user_id))])


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """Split on line breaks into chunks of at most ``limit`` characters (a longer line is cut)."""
    chunks, current = [], ""
    for line in text.splitlines():
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks or [""]


def code_blocks(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """``text`` as one or more ``` blocks, each message within ``limit``. A backtick in the text (a label
    may hold three) is followed by a zero-width space, so nothing in it can close the block."""
    text = text.replace("`", "`\u200b")
    return [f"```\n{chunk}\n```" for chunk in split_text(text, limit - 8)]


def bar(fraction: float, width: int = 16) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    return "█" * full + "░" * (width - full)


def eta(seconds: float | None) -> str:
    """When something is expected, as Discord's relative timestamp ("in 3 minutes"): each reader's client
    keeps it true without edits. Rounded to 10 s so small changes in the estimate do not force an edit."""
    if seconds is None:
        return "when the queue moves (no estimate yet)"
    at = round((time.time() + max(1.0, seconds)) / 10) * 10
    return discord.utils.format_dt(datetime.fromtimestamp(at, UTC), "R")


def queue_place(view) -> str:
    """Where a queued job stands, in words."""
    if view.position is None:
        return "The class queue is paused: it starts when an instructor resumes it"
    return f"Position {view.position} in the queue; result expected {eta(view.eta_seconds)}"


def progress_text(view, mention: str) -> str:
    """The progress message for one job, edited in place while it runs."""
    head = f"{mention} job **{view.id}** `{view.name}`"
    if view.status == "queued":
        if view.position is None:
            return f"⏸️ {head}: queued; the class queue is paused, so it waits until an instructor resumes it"
        return f"⏳ {head}: queued, position {view.position}, result expected {eta(view.eta_seconds)}"
    if view.status == "running":
        p = view.live
        if p.training:
            loss = f" · loss {p.loss:.3f}" if p.loss is not None else ""
            return (f"🏋️ {head}: `{bar(p.fraction)}` {p.fraction:.0%} · {p.epoch_label}{loss} · "
                    f"done {eta(p.eta_seconds)}")
        return f"⚙️ {head}: {p.stage}…"
    if view.status == "succeeded":
        f1 = f" · macro-F1 {view.macro_f1:.3f}" if view.macro_f1 is not None else ""
        return f"✅ {head}: finished{f1}; the report is below."
    if view.status == "failed":
        return f"❌ {head}: failed. {truncate(view.error or '', 1500)}"
    return f"🚫 {head}: cancelled."


def result_embed(job_id: int, name: str, version: int | None, m: dict, confusion_name: str | None = None,
                 standing=None) -> discord.Embed:
    """The completion embed: scores against the baseline, what pruning kept, speed, advice; for a
    submission to an assignment, its hidden-set score and place on the board; how to reproduce it."""
    title = f"✅ {name}" + (f" v{version}" if version else "") + f" — job {job_id}"
    desc = f"Test split of {m['split']['test']} examples the model never saw in training.\n{comparison_text(m)}"
    e = discord.Embed(title=truncate(title, 256), description=desc, color=GREEN)
    e.add_field(name="Accuracy", value=f"{m['accuracy']:.3f}")
    e.add_field(name="Macro-F1", value=f"{m['macro_f1']:.3f}")
    e.add_field(name="TF-IDF baseline", value=f"{m['baseline_macro_f1']:.3f}")
    if m.get("probe"):
        e.add_field(name="Frozen base + probe", value=f"{m['probe']['macro_f1']:.3f}")
    e.add_field(name="Layers", value=f"{len(m['layers_kept'])} of {m['layers_base']} {m['layers_kept']}")
    e.add_field(name="Parameters", value=f"{m['params'] / 1e6:.1f}M (base {m['params_base'] / 1e6:.1f}M, "
                                         f"−{1 - m['params'] / m['params_base']:.0%})")
    served = m.get("engine", "torch").replace("onnxruntime-", "ONNX ")
    e.add_field(name="Speed", value=f"{m['ms_per_message']:.2f} ms/message ({served}) · {m['size_bytes'] / 1e6:.0f} MB")
    if m.get("teacher"):
        t = m["teacher"]
        e.add_field(name="Teacher (distilled from)",
                    value=f"{t['layers']} layers · {t['params'] / 1e6:.1f}M params · macro-F1 {t['macro_f1']:.3f} · "
                          f"{t['ms_per_message']:.1f} ms/message; the student keeps **{m['retained']:.1%}**",
                    inline=False)
    if standing is not None:
        e.add_field(name=f"Assignment {truncate(standing.assignment, 200)} (public board)",
                    value=truncate(standing_text(standing), FIELD_LIMIT), inline=False)
    tips = "\n".join(f"• {t}" for t in m.get("advice", []))
    if tips:
        e.add_field(name="Advice", value=truncate(tips, FIELD_LIMIT), inline=False)
    prov = m.get("provenance")
    if prov:
        v = prov["versions"]
        base_hash = (prov.get("base_sha256") or "not hashed")[:12]
        e.add_field(name="Reproduce", inline=False, value=truncate(
            f"seed {prov['seed']} · base `{base_hash}` · data `{prov['data_sha256'][:12]}` · torch "
            f"{v.get('torch')} · transformers {v.get('transformers')} · TinyTutor {v.get('tinytutor')}. "
            f"`/train like:{job_id}` reruns these settings (on a new file or seed).", FIELD_LIMIT))
    how = {"distill": "distillation", "probe": "a linear probe"}.get(m["method"], f"{m['method']} fine-tuning")
    e.set_footer(text=f"{how} of {m['base_model']} · {m['train_seconds']:.0f} s on {m['device']}")
    if confusion_name:
        e.set_image(url=f"attachment://{confusion_name}")
    return e


def comparison_text(m: dict) -> str:
    """The three rows of every report on one line each: TF-IDF, the frozen base read by a linear probe
    (what the base knew before training), this model; and what training added."""
    lines = [f"TF-IDF baseline: macro-F1 {m['baseline_macro_f1']:.3f}"]
    probe = m.get("probe")
    if probe:
        lines.append(f"Frozen base ({probe['layers']} layers) + linear probe: {probe['macro_f1']:.3f}")
    what = "linear probe on the frozen layers" if m["method"] == "probe" else m["method"]
    lines.append(f"**This model** ({len(m['layers_kept'])} layers, {what}): **{m['macro_f1']:.3f}**")
    if probe and m["method"] != "probe":
        added = m["macro_f1"] - probe["macro_f1"]
        lines.append(f"Fine-tuning added {added:+.3f} over the frozen base." if added > 0.005 else
                     f"Fine-tuning did not beat the frozen base ({added:+.3f}); see the advice.")
    return "\n".join(lines)


def standing_text(st) -> str:
    per_class = " · ".join(f"{truncate(lab, 30)} {f:.2f}" for lab, f in st.per_class_f1.items())
    best = "your best so far" if st.best else "not your best submission"
    return (f"macro-F1 **{st.macro_f1:.3f}**, accuracy {st.accuracy:.3f} ({best}); it would stand "
            f"**#{st.rank} of {st.students}** on the public board (the public part of the hidden set; the private "
            f"part decides the final board). Per class: {per_class}")


def _when(dt) -> str:
    return discord.utils.format_dt(dt, "f") if dt else "no deadline"


def assignment_line(v) -> str:
    state = "open" if v.is_open else ("revealed" if v.revealed else "closed")
    train = f" · training file of {v.train_rows:,} rows" if v.train_rows else " · bring your own data"
    return (f"**{truncate(v.name, 80)}** ({state}) · due {_when(v.deadline)} · labels: "
            f"{truncate(', '.join(v.labels), 200)}{train} · yours: {v.limits}")


def submitted_line(v) -> str:
    """What a student reads when a submission to an assignment is queued: the parts and their limits."""
    return (f"Submitted to assignment **{truncate(v.name, 80)}**: scored on the hidden test set; you see the public "
            f"part's score now, the private part decides the final board. Your submissions: {v.limits}.")


def _parts(v) -> str:
    if v.public_share is None:
        return "One board on the whole hidden set"
    return (f"A public board on {v.public_share:.0%} of the hidden set now, the final board on the other "
            f"{1 - v.public_share:.0%} at the deadline; pick up to {v.max_picks} submission(s) that count with "
            f"`/assignment pick`")


def assignment_announcement(v) -> str:
    how = (f"`/train assignment:{v.name}` trains on its training file ({v.train_rows:,} rows), or attach your own"
           if v.train_rows else f"`/train dataset:<your file> assignment:{v.name}`")
    caps = [f"{v.max_submissions} in all" if v.max_submissions else "", f"{v.daily_cap} a day" if v.daily_cap else ""]
    limit = f" Submissions: {', '.join(c for c in caps if c)} each." if any(caps) else ""
    about = f"\n> {truncate(v.description, 500)}" if v.description else ""
    return truncate(f"📝 New assignment **{v.name}**, due {_when(v.deadline)}.{about}\nModels are scored on a hidden "
                    f"test set of {v.test_rows:,} examples labelled {', '.join(v.labels)}: {how}.{limit} "
                    f"{_parts(v)}. `/leaderboard assignment:{v.name}` shows the board.", CONTENT_LIMIT)


def _board_lines(items) -> list[str]:
    """A board's rows and reference lines (``Leaderboard.with_references``), one line each."""
    lines = []
    for r in items:
        if isinstance(r, tuple):
            lines.append(f"┈┈ {r[0]} **{r[1]:.3f}** ┈┈")
            continue
        who = f" · <@{r.owner_id}>" if r.owner_id and not r.mine else (" · **you**" if r.mine else "")
        rank = f"#{r.rank}" if r.rank else "·"
        both = f" (private {r.private_macro_f1:.3f})" if r.private_macro_f1 is not None else ""
        pick = " 📌" if r.picked else ""
        lines.append(f"{rank} **{truncate(r.model_name, 40)}**{pick}{who} — macro-F1 **{r.macro_f1:.3f}**{both} · "
                     f"{r.layers} layers · {r.params / 1e6:.1f}M params · {r.ms_per_message:.2f} ms/msg")
    return lines


def shake_up_lines(moves, limit: int = 10) -> list[str]:
    return [f"<@{m.owner_id}> #{m.public_rank} → #{m.private_rank} "
            f"({'±0' if not m.change else f'{m.change:+d}'}; {m.public_macro_f1:.3f} → {m.private_macro_f1:.3f})"
            for m in moves[:limit]]


def leaderboard_embed(board, everything: bool = False) -> discord.Embed:
    """The board this caller is shown (the public one before the reveal, the private one after; for
    instructors with ``everything``, every submission with both parts), the baseline as a reference line;
    instructors also get the shake-up between the boards."""
    a = board.assignment
    if everything and board.everything is not None:
        items, what = board.with_references(board.everything, "public"), "all submissions (public part; private)"
    else:
        items = board.with_references(board.best)
        what = "final board (private part)" if board.board == "private" else "public board"
    e = lines_embed(f"🏆 {truncate(a.name, 200)} — {what}", _board_lines(items), "No scored submissions yet.",
                    GREEN)
    if board.shake_up:
        title = "Shake-up, public → private" + ("" if a.revealed else " (instructors only, before the reveal)")
        e.add_field(name=title, value=truncate("\n".join(shake_up_lines(board.shake_up)), FIELD_LIMIT), inline=False)
    state = "revealed" if a.revealed else ("open" if a.is_open else "closed, not yet revealed")
    parts = ("" if a.public_share is None else
             f" · public part {a.public_share:.0%} of the hidden set ({a.test_rows} examples); the private part "
             f"decides the final board{'' if a.revealed else ' at the deadline'}")
    e.set_footer(text=truncate(f"{state}{parts} · 📌 a final pick · ties: smaller, then faster models first · "
                               f"baseline: {board.reference_source}", 2048))
    return e


def reveal_messages(board) -> tuple[str, dict[str, str]]:
    """The reveal: the channel's message (the top three, named without a ping: each student hears by direct
    message) and each student's own place, by user id."""
    a, rows = board.assignment, board.private
    medals = ["🥇", "🥈", "🥉"]
    top = [f"{medals[i]} <@{r.owner_id}> — **{truncate(r.model_name, 40)}**, macro-F1 **{r.macro_f1:.3f}** on the "
           f"private part" for i, r in enumerate(rows[:3])]
    refs = ", ".join(f"{name} {value:.3f}" for name, value in board.reference_lines("private"))
    channel = (f"🏁 The final board of **{truncate(a.name, 80)}** is out ({len(rows)} student(s), scored on the private "
               f"part of the hidden set, which nobody saw until now):\n" + ("\n".join(top) or "No scored submissions.")
               + (f"\nReferences on the private part: {refs}." if refs else "")
               + f"\nEveryone gets their own place by direct message; `/leaderboard assignment:{a.name}` shows the "
                 "whole board.")
    public = {r.owner_id: r.rank for r in board.public}
    own = {}
    for r in rows:
        moved = public.get(r.owner_id)
        was = f" (#{moved} on the public board)" if moved else ""
        own[r.owner_id] = (f"Your final place on **{truncate(a.name, 80)}**: **#{r.rank} of {len(rows)}**{was}, with "
                           f"`{truncate(r.model_name, 60)}` (job {r.job_id}, {'your pick' if r.picked else 'your best public'}"
                           f"): macro-F1 **{r.macro_f1:.3f}** on the private part.")
    return truncate(channel, CONTENT_LIMIT), own


def comparison_embed(c) -> discord.Embed:
    a, b = c.a, c.b

    def num(v, sign=False):
        if v is None:
            return "–"
        if isinstance(v, int):
            return f"{v:+,}" if sign else f"{v:,}"
        return f"{v:+.3f}" if sign else f"{v:.3f}"

    def delta(x, y):
        return y - x if isinstance(x, int | float) and isinstance(y, int | float) else None

    e = discord.Embed(title=truncate(f"Job {a['job_id']} {a['name']} → job {b['job_id']} {b['name']}", 256),
                      color=BLUE)
    settings = "\n".join(f"`{k}`: {truncate(str(x), 40)} → {truncate(str(y), 40)}" for k, x, y in c.settings)
    e.add_field(name="Settings that differ", value=truncate(settings or "none", FIELD_LIMIT), inline=False)
    scores = c.scores + ([(f"public board ({truncate(c.hidden[0], 40)})", c.hidden[1], c.hidden[2])] if c.hidden else [])
    e.add_field(name="Results (A → B, change)", inline=False, value=truncate("\n".join(
        f"{k}: {num(x)} → {num(y)} ({num(delta(x, y), True)})" for k, x, y in scores), FIELD_LIMIT))
    e.add_field(name="Per-class F1", inline=False, value=truncate("\n".join(
        f"{truncate(k, 40)}: {num(x)} → {num(y)} ({num(delta(x, y), True)})" for k, x, y in c.per_class),
        FIELD_LIMIT))
    if not c.same_test_split:
        e.set_footer(text="Different data or seed: the test splits differ. An assignment's hidden set compares "
                          "runs on the same examples.")
    return e


def prediction_lines(text: str, pred) -> str:
    """The text quoted (its top words in bold when the prediction carries an explanation), the label, the
    reading of the explanation, and the best labels with bars."""
    why = pred.explanation
    if why is not None and len(text) <= 300:
        quoted = why.marked(lambda w: f"**{w}**", plain=lambda s: discord.utils.escape_markdown(s))
        quoted = " ".join(quoted.split())  # one quoted line, whatever line breaks the message had
    else:
        quoted = truncate(text, 300)
    lines = [f"> {quoted}", f"**{pred.label}** ({pred.score:.0%})"]
    if why is not None:
        lines.append(f"*why: {discord.utils.escape_markdown(why.reading)}*")
    for label, score in pred.top:
        lines.append(f"`{bar(score, 12)}` {score:5.1%} {label}")
    return "\n".join(lines)


def job_line(v) -> str:
    state = v.status
    if v.status == "queued":
        state = f"queued #{v.position} (result {eta(v.eta_seconds)})" if v.position else "queued (queue paused)"
    if v.status == "running":
        p = v.live
        state = f"running: {p.stage}"
        if p.training:
            what = "training the teacher" if p.stage == "teacher" else "training"
            state = f"{what} {p.fraction:.0%} (done {eta(p.eta_seconds)})"
    result = f" · macro-F1 {v.macro_f1:.3f}" if v.macro_f1 is not None else ""
    if v.not_posted:
        result += f" · ⚠️ {v.not_posted}"
    return f"`{v.id:>4}` <@{v.owner_id}> **{truncate(v.name, 40)}** — {state}{result}"


def model_line(m) -> str:
    star = "⭐ " if m.is_default else ""
    shared = " · shared with the class" if m.visibility == "class" else ""
    return (f"{star}`{m.id:>4}` **{truncate(m.label, 60)}** by <@{m.owner_id}> · macro-F1 "
            f"{m.metrics.get('macro_f1', 0):.3f} · {len(m.layers_kept)}/{m.layers_base} layers · "
            f"{len(m.labels)} labels{shared}")


def lines_embed(title: str, lines: list[str], empty: str, color: int = BLUE) -> discord.Embed:
    """A list in an embed description, cut to fit with a note of how many were left out."""
    if not lines:
        return discord.Embed(title=title, description=empty, color=GREY)
    out, used = [], 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > DESCRIPTION_LIMIT - 40:
            out.append(f"…and {len(lines) - i} more")
            break
        out.append(line)
        used += len(line) + 1
    return discord.Embed(title=title, description="\n".join(out), color=color)


def experiment_text(view, mention: str) -> str:
    """An experiment's one announcement: who, what varied, the table in a code block, and its reading."""
    head = (f"{mention} your experiment **{truncate(view.name, 80)}** ({view.setting} = "
            f"{', '.join(map(str, view.values))}) has finished: {len(view.done)} of {len(view.runs)} runs succeeded.")
    front = "" if view.is_curve else "\n◆ on the Pareto front: no other run is both as fast and as good."
    tail = f"\n{view.reading()}{front} `/report job` shows one run's full report."
    room = CONTENT_LIMIT - len(head) - len(tail) - 10
    return f"{head}\n```\n{truncate(view.table(), room)}\n```{tail}"
