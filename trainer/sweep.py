"""An experiment's runs side by side. How small can it get: macro-F1 against ms per message, the point's
size its parameters, and the Pareto front among them (the runs no other run beats on both quality and
speed). Would more data help: an experiment over ``train_share`` is the learning curve of the whole
recipe, macro-F1 against the training examples, and what it says."""

from __future__ import annotations

from pathlib import Path


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (ms per message, macro-F1), whether no other point is at least as fast and as good and
    strictly better in one (lower ms is better, higher F1 is better). Equal points are both on the front."""
    def beaten(a, b):  # b dominates a
        return b[0] <= a[0] and b[1] >= a[1] and (b[0] < a[0] or b[1] > a[1])

    return [not any(beaten(p, q) for q in points) for p in points]


def curve_reading(points: list[dict]) -> str:
    """What a learning curve of whole runs says (``insight.curve_advice``, the probe curve's reading).
    ``points``: ``{share, examples, macro_f1, per_class_f1}`` in growing order of ``share`` (percent)."""
    from .insight import curve_advice

    if len(points) < 2:
        return "Too few runs finished to draw a learning curve."
    return curve_advice([p | {"fraction": p["share"] / 100} for p in points])


def params_text(n: int) -> str:
    """A parameter count as people say it: 22.7M, 41k."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def plot_sweep(runs: list[dict], setting: str, path: Path, title: str, references: dict | None = None) -> None:
    """``runs``: finished runs with ``value``, ``macro_f1``, ``ms_per_message``, ``params``, ``examples`` and
    ``front``. Drawn with matplotlib's object API (no pyplot state), so the bot may draw it in a worker
    thread. A sweep of ``train_share`` is drawn as a learning curve. ``references``: name -> macro-F1 of the
    cheap references on the same test split (TF-IDF, the frozen base with a linear probe), drawn as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .evaluate import fallback_fonts

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10, fontfamily=["DejaVu Sans", *fallback_fonts()])
    if setting == "train_share":
        _learning_curve(ax, sorted(runs, key=lambda r: r["value"]))
    else:
        _pareto(ax, runs, setting)
    refs = [(k, v) for k, v in (references or {}).items() if v is not None]
    for (name, f1), style in zip(refs, ("--", ":"), strict=False):
        ax.axhline(f1, color="#8d6e63", ls=style, lw=1, zorder=1, label=f"{name} {f1:.3f}")
    if refs:
        ax.set_ylim(max(0.0, min(ax.get_ylim()[0], *(f1 - 0.05 for _, f1 in refs))), 1.02)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _learning_curve(ax, runs: list[dict]) -> None:
    ax.plot([r["examples"] for r in runs], [r["macro_f1"] for r in runs], marker="o", color="#1f4e79")
    for r in runs:
        ax.annotate(f"{r['value']} %", (r["examples"], r["macro_f1"]), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8)
    ax.set_xlabel("training examples (the same test split for every run)")
    ax.set_ylabel("test macro-F1")
    ax.set_ylim(max(0.0, min((r["macro_f1"] for r in runs), default=0) - 0.1), 1.02)
    ax.grid(alpha=0.3)


def _pareto(ax, runs: list[dict], setting: str) -> None:
    most = max((r["params"] for r in runs), default=1)
    for r in runs:
        size = 60 + 540 * r["params"] / most  # area grows with the parameter count
        ax.scatter(r["ms_per_message"], r["macro_f1"], s=size, alpha=0.55,
                   color="#2e7d32" if r["front"] else "#90a4ae", edgecolors="#263238", linewidths=0.8, zorder=3)
        ax.annotate(f"{setting}={r['value']}\n{params_text(r['params'])} params", (r["ms_per_message"], r["macro_f1"]),
                    textcoords="offset points", xytext=(10, -4), fontsize=8, zorder=4)
    front = sorted((r["ms_per_message"], r["macro_f1"]) for r in runs if r["front"])
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="#2e7d32", ls="--", lw=1.2, zorder=2, label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("ms per message (served model, one at a time)")
    ax.set_ylabel("test macro-F1")
    lo = min((r["macro_f1"] for r in runs), default=0)
    ax.set_ylim(max(0.0, lo - 0.1), 1.02)
    ax.set_xlim(left=0, right=max((r["ms_per_message"] for r in runs), default=1) * 1.35)
    ax.grid(alpha=0.3)
