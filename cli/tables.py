"""Plain-text tables the terminal app prints (the command line and the demo alike)."""

from __future__ import annotations


def board_lines(board, everything: bool = False, part: str | None = None) -> list[str]:
    """The leaderboard as a terminal table, with the baseline's reference line in its place: the board shown
    (public before the reveal, private after); ``everything``: instructors' list of every
    submission, ranked on the public part, with its private macro-F1 beside it; ``part``: that board
    instead (instructors see both before the reveal). * marks a final pick."""
    part = part or board.board
    rows = board.everything if everything else board.private if part == "private" else board.public
    both = everything and rows is not None
    lines = [f"{'rank':>4}  {'student':<14} {'model':<20} {'macro-F1':>8}{' private' if both else ''} {'acc':>6} "
             f"{'layers':>6} {'params':>8} {'ms/msg':>7}  job"]
    for r in board.with_references(rows or [], "public" if everything else part):
        if isinstance(r, tuple):  # a reference line
            lines.append(f"{'':>4}  {'— baseline —':<14} {r[0].removesuffix(' baseline'):<20} {r[1]:>8.3f}")
            continue
        private = f" {r.private_macro_f1:>7.3f}" if both else ""
        name = ("*" if r.picked else "") + r.model_name
        lines.append(f"{r.rank or '':>4}  {r.owner_id or '':<14.14} {name:<20.20} {r.macro_f1:>8.3f}{private} "
                     f"{r.accuracy:>6.3f} {r.layers:>6} {r.params / 1e6:>7.1f}M {r.ms_per_message:>7.2f}  "
                     f"{r.job_id or ''}")
    lines.append(f"baseline: {board.reference_source}; frozen base + probe: the best any student's training data gave")
    return lines


def shake_up_lines(board) -> list[str]:
    """Instructors: each student's public place against their private one, biggest moves first."""
    out = ["", "shake-up, public -> private" + ("" if board.assignment.revealed else " (not revealed yet)") + ":"]
    for m in board.shake_up:
        out.append(f"  {m.owner_id:<20.20} #{m.public_rank:<3} -> #{m.private_rank:<3} {m.change:+d}  "
                   f"({m.public_macro_f1:.3f} -> {m.private_macro_f1:.3f})")
    return out
