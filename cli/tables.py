"""Plain-text tables the terminal app prints (the command line and the demo alike)."""

from __future__ import annotations


def board_lines(board, everything: bool = False) -> list[str]:
    """The leaderboard as a terminal table, with the baseline's reference line in its place."""
    rows = board.everything if everything else board.best
    lines = [f"{'rank':>4}  {'student':<14} {'model':<20} {'macro-F1':>8} {'acc':>6} {'layers':>6} "
             f"{'params':>8} {'ms/msg':>7}  job"]
    ref = board.reference
    for r in rows:
        if ref is not None and r.macro_f1 < ref:
            lines.append(f"{'':>4}  {'— baseline —':<14} {'TF-IDF':<20} {ref:>8.3f}")
            ref = None
        lines.append(f"{r.rank or '':>4}  {r.owner_id or '':<14.14} {r.model_name:<20.20} {r.macro_f1:>8.3f} "
                     f"{r.accuracy:>6.3f} {r.layers:>6} {r.params / 1e6:>7.1f}M {r.ms_per_message:>7.2f}  "
                     f"{r.job_id or ''}")
    if ref is not None:
        lines.append(f"{'':>4}  {'— baseline —':<14} {'TF-IDF':<20} {ref:>8.3f}")
    lines.append(f"baseline: {board.reference_source}")
    return lines
