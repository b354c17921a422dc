"""Text and embeds for Discord, within its limits: message content 2000 characters, embed description
4096, field value 1024, 25 fields, 6000 characters per embed. Nothing here talks to Discord."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import discord

from trainer.progress import TRAINING_STAGES, epoch_label

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
    p = view.progress or {}
    if view.status == "queued":
        if view.position is None:
            return f"⏸️ {head}: queued; the class queue is paused, so it waits until an instructor resumes it"
        return f"⏳ {head}: queued, position {view.position}, result expected {eta(view.eta_seconds)}"
    if view.status == "running":
        stage = p.get("stage", "starting")
        if stage in TRAINING_STAGES and p.get("steps"):
            frac = p["step"] / p["steps"]
            loss = f" · loss {p['loss']:.3f}" if p.get("loss") is not None else ""
            return (f"🏋️ {head}: `{bar(frac)}` {frac:.0%} · {epoch_label(p)}{loss} · "
                    f"done {eta(p.get('eta_seconds'))}")
        return f"⚙️ {head}: {stage}…"
    if view.status == "succeeded":
        f1 = f" · macro-F1 {view.macro_f1:.3f}" if view.macro_f1 is not None else ""
        return f"✅ {head}: finished{f1}; the report is below."
    if view.status == "failed":
        return f"❌ {head}: failed. {truncate(view.error or '', 1500)}"
    return f"🚫 {head}: cancelled."


def result_embed(job_id: int, name: str, version: int | None, m: dict, confusion_name: str | None = None) -> discord.Embed:
    """The completion embed: scores against the baseline, what pruning kept, speed, advice."""
    title = f"✅ {name}" + (f" v{version}" if version else "") + f" — job {job_id}"
    delta = m["macro_f1"] - m["baseline_macro_f1"]
    desc = (f"Test split of {m['split']['test']} examples the model never saw in training. "
            f"{'Beats' if delta > 0.005 else 'Level with' if delta > -0.005 else 'Below'} the TF-IDF baseline "
            f"by {abs(delta):.3f} macro-F1.")
    e = discord.Embed(title=truncate(title, 256), description=desc, color=GREEN)
    e.add_field(name="Accuracy", value=f"{m['accuracy']:.3f}")
    e.add_field(name="Macro-F1", value=f"{m['macro_f1']:.3f}")
    e.add_field(name="TF-IDF baseline", value=f"{m['baseline_macro_f1']:.3f}")
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
    tips = "\n".join(f"• {t}" for t in m.get("advice", []))
    if tips:
        e.add_field(name="Advice", value=truncate(tips, FIELD_LIMIT), inline=False)
    how = "distillation" if m["method"] == "distill" else f"{m['method']} fine-tuning"
    e.set_footer(text=f"{how} of {m['base_model']} · {m['train_seconds']:.0f} s on {m['device']}")
    if confusion_name:
        e.set_image(url=f"attachment://{confusion_name}")
    return e


def prediction_lines(text: str, pred) -> str:
    lines = [f"> {truncate(text, 300)}", f"**{pred.label}** ({pred.score:.0%})"]
    for label, score in pred.top:
        lines.append(f"`{bar(score, 12)}` {score:5.1%} {label}")
    return "\n".join(lines)


def job_line(v) -> str:
    state = v.status
    if v.status == "queued":
        state = f"queued #{v.position} (result {eta(v.eta_seconds)})" if v.position else "queued (queue paused)"
    if v.status == "running":
        p = v.progress or {}
        state = f"running: {p.get('stage', 'starting')}"
        if p.get("stage") in TRAINING_STAGES and p.get("steps"):
            what = "training the teacher" if p["stage"] == "teacher" else "training"
            state = f"{what} {p['step'] / p['steps']:.0%} (done {eta(p.get('eta_seconds'))})"
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
