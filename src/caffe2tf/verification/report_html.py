"""A :class:`~caffe2tf.verification.report.DiffReport` as one self-contained HTML page.

The page needs no network: CSS and JavaScript are inline and the plot is an
inline SVG drawn here — relative error per layer output along the network depth
(log scale), the tolerance line, the culprit threshold (amplification x input
error + floor) and the culprit marked — above the verdict details and the
per-layer table. Clicking a point scrolls to its row.
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

from caffe2tf.verification.report import DiffReport, LayerDiff, fmt_err
from caffe2tf.verification.report_terminal import rule_text

__all__ = ["render_html", "write_html", "error_plot_svg"]

COLORS = {"ok": "#2e7d32", "growth": "#e69500", "propagated": "#8e44ad", "culprit": "#d32f2f",
          "not_compared": "#9e9e9e"}
SHORT = {"ok": "ok", "growth": "growth", "propagated": "downstream", "culprit": "culprit",
         "not_compared": "not compared"}
LABELS = {"ok": "within tolerance", "growth": "rounding growth", "propagated": "downstream of the culprit",
          "culprit": "culprit", "not_compared": "not compared"}

_CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#e3e7ee;--bg:#f6f8fb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:20px;margin:0 0 14px;font-weight:600}
h2{font-size:16px;margin:28px 0 10px;font-weight:600}
.verdict{padding:16px 20px;border-radius:10px;font-size:17px;font-weight:600;border:1px solid}
.verdict.ok{background:#e8f5e9;border-color:#a5d6a7;color:#1b5e20}
.verdict.bad{background:#fdecea;border-color:#f5b5ae;color:#b71c1c}
.num{white-space:nowrap}
.verdict code{font-size:16px;background:rgba(0,0,0,.06);padding:1px 5px;border-radius:4px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:16px 2px 0;color:var(--muted)}
.facts b{color:var(--fg);font-weight:500}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin-top:18px}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;fill:#3c4656}
svg .pt{cursor:pointer}
svg .pt:hover{stroke:#000;stroke-width:1.5}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{position:sticky;top:0;background:#eef1f6;font-weight:600;z-index:1}
td.l,th.l{text-align:left}
td.wrap{white-space:normal;min-width:150px;max-width:240px}
.sub{font-size:11px;color:var(--muted);font-weight:400;font-family:system-ui,sans-serif}
td.name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
tr.culprit td{background:#fdecea;font-weight:600}
tr.growth td{background:#fff8e6}
tr.propagated td{background:#f6effa}
tr.not_compared td{color:#9e9e9e}
tr.flash td{background:#fff59d!important}
.badge{display:inline-block;padding:0 7px;border-radius:9px;color:#fff;font-size:11px;font-weight:600}
.tools{display:flex;gap:18px;align-items:center;margin:8px 0;color:var(--muted)}
.scroll{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:8px}
.note{color:var(--muted);font-size:12.5px}
"""

_JS = """
function showRow(d){var r=document.getElementById('row-'+d);if(!r)return;
 var f=document.getElementById('only-over');if(f.checked&&r.style.display==='none'){f.checked=false;filterRows();}
 r.scrollIntoView({block:'center',behavior:'smooth'});r.classList.add('flash');
 setTimeout(function(){r.classList.remove('flash')},1400);}
function filterRows(){var on=document.getElementById('only-over').checked;
 document.querySelectorAll('#layers tbody tr').forEach(function(r){
  r.style.display=(on&&r.dataset.status==='ok')?'none':'';});}
document.querySelectorAll('svg .pt').forEach(function(p){p.addEventListener('click',function(){showRow(p.dataset.depth)})});
document.getElementById('only-over').addEventListener('change',filterRows);
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _log(x: float) -> float:
    return math.log10(x)


def error_plot_svg(report: DiffReport, width: int = 1100, height: int = 380) -> str:
    """Relative error per layer output along the depth (log scale) as an inline SVG."""
    L, R, T, B = 64, 20, 36, 46
    rows = report.layers
    n = max(len(rows), 2)
    errs = [r.max_rel for r in rows if r.max_rel is not None and math.isfinite(r.max_rel) and r.max_rel > 0]
    lo = math.floor(_log(min(errs + [report.tolerance / 10]))) if errs else math.floor(_log(report.tolerance)) - 3
    lo = max(lo, -12)
    hi = math.ceil(_log(max(errs + [report.tolerance * 10])))
    hi = max(hi, lo + 2)
    has_inf = any(r.max_rel is not None and not math.isfinite(r.max_rel) for r in rows)
    top_band = T + (18 if has_inf else 0)
    ph = height - top_band - B

    def x(d: int) -> float:
        return L + (width - L - R) * d / (n - 1)

    def y(v: float | None) -> float:
        if v is None or v <= 0:
            return top_band + ph
        if not math.isfinite(v):
            return T + 6
        return top_band + ph * (hi - min(max(_log(v), lo), hi)) / (hi - lo)

    out = [f'<svg id="error-plot" role="img" aria-label="relative error per layer" viewBox="0 0 {width} {height}" '
           f'width="100%" xmlns="http://www.w3.org/2000/svg">',
           f'<rect x="{L}" y="{top_band}" width="{width - L - R}" height="{ph}" fill="#fbfcfe" stroke="#d5dbe5"/>']
    for k in range(lo, hi + 1):
        yy = y(10.0 ** k)
        out.append(f'<line x1="{L}" x2="{width - R}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6eaf0"/>')
        out.append(f'<text x="{L - 8}" y="{yy + 4:.1f}" text-anchor="end">1e{k}</text>')
    step = max(1, 10 ** math.floor(math.log10(max(n / 8, 1))))
    step = step * (5 if n / step > 40 else 2 if n / step > 16 else 1)
    for d in range(0, len(rows), step):
        out.append(f'<text x="{x(d):.1f}" y="{height - B + 18}" text-anchor="middle">{d}</text>')
    out.append(f'<text x="{(L + width - R) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
               'layer output, in execution order (network depth)</text>')
    out.append(f'<text transform="translate(16,{top_band + ph / 2:.0f}) rotate(-90)" text-anchor="middle">'
               'max relative error</text>')
    if has_inf:
        out.append(f'<text x="{L + 4}" y="{T + 10}" fill="#d32f2f">shape mismatch / not finite</text>')
    # culprit threshold envelope and the measured error line
    env = [(x(r.depth), y(max(r.allowed, report.tolerance))) for r in rows if r.allowed is not None]
    if env:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in env)
        out.append(f'<polyline points="{pts}" fill="none" stroke="#c3ccd9" stroke-width="1" stroke-dasharray="2 3"/>')
    line = [(x(r.depth), y(r.max_rel)) for r in rows if r.max_rel is not None]
    if line:
        out.append(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in line)}" fill="none" '
                   'stroke="#7d8ba1" stroke-width="1"/>')
    ty = y(report.tolerance)
    out.append(f'<line x1="{L}" x2="{width - R}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#d32f2f" stroke-width="1.4" '
               'stroke-dasharray="7 4"/>')
    out.append(f'<text x="{width - R - 6}" y="{ty - 6:.1f}" text-anchor="end" fill="#d32f2f">'
               f'tolerance {_e(fmt_err(report.tolerance))}</text>')
    for r in rows:
        if r.max_rel is None:
            continue
        rad = 6 if r.status == "culprit" else 3.2
        tip = f"#{r.depth} {r.name} ({r.label}): rel err {fmt_err(r.max_rel)}, inputs {fmt_err(r.input_rel)}"
        out.append(f'<circle class="pt st-{r.status}" data-depth="{r.depth}" cx="{x(r.depth):.1f}" '
                   f'cy="{y(r.max_rel):.1f}" r="{rad}" fill="{COLORS[r.status]}"><title>{_e(tip)}</title></circle>')
    c = report.first_divergence
    if c is not None:
        cx, cy = x(c.depth), y(c.max_rel)
        out.append(f'<circle id="culprit-mark" cx="{cx:.1f}" cy="{cy:.1f}" r="12" fill="none" stroke="#d32f2f" '
                   'stroke-width="2.2"/>')
        anchor = "end" if cx > width * 0.6 else "start"
        tx = cx - 18 if anchor == "end" else cx + 18
        tyy = min(max(cy + 4, T + 14), height - B - 8)
        out.append(f'<text x="{tx:.1f}" y="{tyy:.1f}" text-anchor="{anchor}" fill="#b71c1c" font-weight="700">'
                   f'{_e(c.name)} ({_e(c.type)})</text>')
    lx = L + 10
    for status in ("ok", "growth", "propagated", "culprit"):
        if status != "ok" and not any(r.status == status for r in rows):
            continue
        out.append(f'<circle cx="{lx}" cy="{T - 16}" r="4" fill="{COLORS[status]}"/>'
                   f'<text x="{lx + 8}" y="{T - 12}">{LABELS[status]}</text>')
        lx += 20 + 7 * len(LABELS[status])
    out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{T - 16}" y2="{T - 16}" stroke="#b0bccd" stroke-dasharray="2 3"/>'
               f'<text x="{lx + 28}" y="{T - 12}">culprit threshold</text>')
    out.append("</svg>")
    return "\n".join(out)


def _num(v: float | None, fmt: str = "") -> str:
    if v is None:
        return "-"
    if fmt == "cos":
        return f"{v:.6f}"
    if fmt == "pct":
        return f"{100 * v:.3f}%"
    return fmt_err(v)


def _table_row(r: LayerDiff) -> str:
    shape = "x".join(map(str, r.shape)) if r.shape else "-"
    if r.actual_shape is not None and r.shape is not None and r.actual_shape != r.shape:
        shape += f" (model: {'x'.join(map(str, r.actual_shape))})"
    gain = r.gain
    badge = f'<span class="badge" style="background:{COLORS[r.status]}">{_e(SHORT[r.status])}</span>'
    sub = [f"top {r.top}"] if r.top != r.name else []
    sub += [f"folded: {', '.join(r.folded)}"] if r.folded else []
    sub += [r.note] if r.note else []
    name = _e(r.name) + "".join(f'<div class="sub">{_e(x)}</div>' for x in sub)
    shape_cell = _e(shape) + ('<div class="sub">sampled</div>' if r.sampled else "")
    label = _e(r.label).replace("-&gt;", "&rarr;")
    cells = [str(r.depth), f'<td class="l name">{name}</td>', f'<td class="l wrap">{label}</td>',
             f'<td class="l">{shape_cell}</td>', _num(r.max_abs), _num(r.max_rel), _num(r.mean_abs),
             _num(r.cosine, "cos"), _num(r.argmax_agreement, "pct"), _num(r.input_rel),
             "-" if gain is None else (f"{gain:.3g}" if gain < 1000 else fmt_err(gain)),
             f'<td class="l">{badge}</td>']
    tds = "".join(c if c.startswith("<td") else f"<td>{_e(c)}</td>" for c in cells)
    return f'<tr id="row-{r.depth}" class="{r.status}" data-status="{r.status}">{tds}</tr>'


def render_html(report: DiffReport) -> str:
    """The whole page (a string)."""
    c = report.first_divergence
    head = re.sub(r"(\d(?:\.\d+)?e-\d+)", r'<span class="num">\1</span>', _e(report.headline).replace("`", ""))
    if c is not None:
        head = head.replace(_e(c.name), f"<code>{_e(c.name)}</code>", 1)
    facts = [("net", report.net), ("reference", report.source), ("input", report.inputs or "-"),
             ("tolerance", f"{fmt_err(report.tolerance)} ({report.tolerance_origin})"),
             ("model", "folded (affine layers merged; compared where outputs still exist)" if report.folded
              else "unfolded (every Caffe layer output exposed)"),
             ("compared", f"{len(report.compared)} layer outputs; largest relative error {fmt_err(report.max_rel)}"),
             ("rule", rule_text())]
    for lm in report.label_maps:
        facts.append((f"label map {lm['top']}", f"{100 * lm['agreement']:.4f}% of pixels agree, "
                      f"{lm['violations']} confident flips ({'passes' if lm['passes'] else 'fails'} the 99.99% rule)"))
    if report.not_in_model:
        facts.append(("not in the model", ", ".join(report.not_in_model)))
    facts_html = "".join(f"<span>{_e(k)}</span><b>{_e(v)}</b>" for k, v in facts)
    header = ["#", "layer", "type", "shape", "max abs", "max rel", "mean abs", "cosine", "argmax",
              "input err", "gain", "status"]
    ths = "".join(f'<th class="{"l" if h in ("layer", "type", "shape", "status") else ""}">{h}</th>'
                  for h in header)
    rows = "\n".join(_table_row(r) for r in report.layers)
    data = json.dumps(report.to_dict()["layers"]).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>caffe2tf diff: {_e(report.net)}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>caffe2tf diff &mdash; {_e(report.net)}</h1>
<div id="verdict" class="verdict {'ok' if report.ok else 'bad'}">{head}</div>
<div class="facts">{facts_html}</div>
<div class="card"><h2 style="margin-top:0">Relative error along the network</h2>
{error_plot_svg(report)}
<p class="note">Each point is one layer output: max|model &minus; reference| / max|reference|. The dotted line is
what a correct layer may reach given its inputs' error; a culprit lies above it and above the tolerance.
Click a point to see its row.</p></div>
<h2>Layer by layer</h2>
<div class="tools"><label><input type="checkbox" id="only-over"> only outputs over the tolerance</label>
<span>{len(report.layers)} rows</span></div>
<div class="scroll"><table id="layers"><thead><tr>{ths}</tr></thead><tbody>
{rows}
</tbody></table></div>
<script type="application/json" id="report-data">{data}</script>
<script>{_JS}</script>
</main></body></html>
"""


def write_html(report: DiffReport, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    p = Path(path)
    p.write_text(render_html(report), encoding="utf-8")
    return p
