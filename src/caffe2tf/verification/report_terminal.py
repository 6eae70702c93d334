"""A :class:`~caffe2tf.verification.report.DiffReport` as a coloured terminal table.

Verdict first, then what was compared with what, one row per layer output, and
the verdict again at the bottom (long tables scroll it away). Readable on 80
columns; a wider terminal widens the layer-name column. Colours are ANSI styles
from click, which strips them when the output is not a terminal.
"""
from __future__ import annotations

import shutil
import textwrap
from collections import Counter

import click

from caffe2tf.verification.report import (
    AMPLIFICATION, DEFAULT_AMPLIFICATION, ROUNDING_FLOOR, DiffReport, LayerDiff, fmt_err)

__all__ = ["render_terminal", "verdict_line", "rule_text"]

_STATUS_STYLE = {
    "ok": {},
    "growth": {"fg": "yellow"},
    "propagated": {"fg": "magenta"},
    "culprit": {"fg": "red", "bold": True},
    "not_compared": {"dim": True},
}
_MARK = {"ok": "", "growth": "~", "propagated": "v", "culprit": "<<", "not_compared": "-"}


def verdict_line(report: DiffReport) -> str:
    """The headline, styled green (OK) or red (divergence)."""
    return click.style(report.headline, fg="green" if report.ok else "red", bold=True)


def rule_text() -> str:
    """The culprit rule in one sentence."""
    strong = ", ".join(sorted(AMPLIFICATION))
    return (f"a layer is the culprit when its error exceeds the tolerance and {DEFAULT_AMPLIFICATION:g}x the "
            f"error of its inputs + {fmt_err(ROUNDING_FLOOR)} ({max(AMPLIFICATION.values()):g}x for {strong})")


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep - keep // 2] + "~" + text[len(text) - keep // 2:]


def _pct(x: float | None) -> str:
    if x is None:
        return "-"
    return "100%" if x == 1.0 else f"{100 * x:.2f}%"


def _row(r: LayerDiff, name_w: int, multi_top: bool) -> str:
    gain = r.gain
    name = f"{r.name}:{r.top}" if multi_top else r.name
    cells = [
        f"{r.depth:>3}",
        f"{_fit(name, name_w):<{name_w}}",
        f"{_fit(r.type, 12):<12}",
        f"{fmt_err(r.max_rel):>7}",
        f"{fmt_err(r.input_rel):>7}",
        f"{('-' if gain is None else f'{gain:.3g}' if gain < 1000 else fmt_err(gain)):>6}",
        f"{('-' if r.cosine is None else f'{r.cosine:.5f}'):>7}",
        f"{_pct(r.argmax_agreement):>7}",
        f"{_MARK[r.status]:<2}",
    ]
    return click.style(" ".join(cells), **_STATUS_STYLE[r.status])


def render_terminal(report: DiffReport, *, width: int | None = None, max_rows: int | None = None) -> str:
    """The report as text with ANSI styles.

    Args:
        width: columns to fit (default: the terminal's, at least 80).
        max_rows: show at most this many rows around the first divergence
            (``None``: every row).
    """
    width = max(80, width or shutil.get_terminal_size((80, 24)).columns)
    name_w = max(12, min(40, 21 + (width - 80), max((len(r.name) for r in report.layers), default=12)))
    lines = [verdict_line(report), ""]
    for key, text in (("reference", report.source), ("input", report.inputs)):
        if text:
            lines.extend(textwrap.wrap(f"{key + ':':<10} {text}", width, subsequent_indent=" " * 11,
                                       break_on_hyphens=False))
    lines.append(f"tolerance: {fmt_err(report.tolerance)} ({report.tolerance_origin})")
    if report.folded:
        lines.append("model:     folded (BN/Scale merged into convolutions; compared where outputs still exist)")
    lines.extend(click.style(ln, dim=True) for ln in textwrap.wrap(
        f"rule:      {rule_text()}", width, subsequent_indent=" " * 11))
    lines.append("")
    header = " ".join([f"{'#':>3}", f"{'layer':<{name_w}}", f"{'type':<12}", f"{'rel.err':>7}",
                       f"{'in.err':>7}", f"{'gain':>6}", f"{'cosine':>7}", f"{'argmax':>7}", "  "])
    lines.append(click.style(header, bold=True))
    rows = report.layers
    if max_rows is not None and len(rows) > max_rows:
        c = report.first_divergence
        centre = c.depth if c is not None else max(range(len(rows)), key=lambda i: rows[i].max_rel or 0.0)
        start = max(0, min(centre - max_rows // 2, len(rows) - max_rows))
        rows = rows[start:start + max_rows]
    if rows and rows[0].depth > 0:
        lines.append(click.style(f"{'':>3} ... {rows[0].depth} rows above", dim=True))
    counts = Counter(r.name for r in report.layers)
    for r in rows:
        lines.append(_row(r, name_w, counts[r.name] > 1))
    if rows and rows[-1].depth < len(report.layers) - 1:
        lines.append(click.style(f"{'':>3} ... {len(report.layers) - 1 - rows[-1].depth} rows below", dim=True))
    lines.append("")
    legend = ("rel.err: max|diff| / max|ref|; in.err: largest rel.err of the layer's inputs; "
              "gain: rel.err / max(in.err, 1e-6); marks: << culprit, ~ rounding growth, "
              "v downstream of the culprit, - not compared")
    lines.extend(click.style(ln, dim=True) for ln in textwrap.wrap(legend, width))
    if report.not_in_model:
        shown = ", ".join(report.not_in_model[:8]) + (" ..." if len(report.not_in_model) > 8 else "")
        lines.extend(textwrap.wrap(f"reference layers not in the model: {shown}", width))
    maps = report.label_maps
    shown = maps if len(maps) <= 2 else [lm for lm in maps if not lm["passes"]]
    for lm in shown:
        tag = "ok" if lm["passes"] else "FAILS the 99.99% / no-confident-flip rule"
        lines.extend(textwrap.wrap(f"label map `{lm['top']}`: {100 * lm['agreement']:.3f}% of pixels agree, "
                                   f"{lm['violations']} confident flips ({tag})", width))
    if len(maps) > len(shown):
        ok = sum(lm["passes"] for lm in maps)
        lines.append(f"label maps: {ok} of {len(maps)} 4-D outputs pass the 99.99% / no-confident-flip rule")
    lines.append("")
    lines.append(verdict_line(report))
    return "\n".join(lines)
