"""Evaluation reports: terminal table, JSON and Markdown with charts.

The data is a :class:`~caffe2tf.segmentation.metrics.SegmentationMetrics` (plus the
confusion matrix for the heat map); this module only renders it. Charts use
matplotlib's Agg backend, imported lazily so that the rest of the package does not
need matplotlib.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from caffe2tf.segmentation.metrics import ConfusionMatrix, SegmentationMetrics

__all__ = ["format_table", "write_json", "write_markdown_report", "plot_iou_bars",
           "plot_confusion"]

log = logging.getLogger(__name__)


def _pct(value: float) -> str:
    return "   -  " if value is None or math.isnan(value) else f"{100 * value:6.2f}"


def _names(metrics: SegmentationMetrics, class_names: list[str] | None) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(metrics.num_classes)]
    if len(class_names) != metrics.num_classes:
        raise ValueError(f"{len(class_names)} class names for {metrics.num_classes} classes")
    return list(class_names)


def _summary_rows(m: SegmentationMetrics) -> list[tuple[str, float]]:
    return [("pixel accuracy", m.pixel_accuracy), ("mean class accuracy", m.mean_class_accuracy),
            ("mean IoU", m.mean_iou), ("frequency-weighted IoU", m.fw_iou),
            ("mean precision", m.mean_precision), ("mean recall", m.mean_recall),
            ("mean F1", m.mean_f1)]


def format_table(metrics: SegmentationMetrics, class_names: list[str] | None = None,
                 include_absent: bool = False) -> str:
    """Plain-text summary and per-class table (percentages); absent classes hidden."""
    names = _names(metrics, class_names)
    width = max([len(n) for n in names] + [5])
    lines = [f"{label:<24}{_pct(value)} %" for label, value in _summary_rows(metrics)]
    lines.append(f"{'pixels evaluated':<24}{metrics.total_pixels}")
    lines.append("")
    header = f"{'#':>4}  {'class':<{width}}  {'IoU':>6}  {'acc':>6}  {'prec':>6}  " \
             f"{'rec':>6}  {'F1':>6}  {'GT px':>10}"
    lines += [header, "-" * len(header)]
    present = set(metrics.present_classes())
    for c in range(metrics.num_classes):
        if c not in present and not include_absent:
            continue
        lines.append(f"{c:>4}  {names[c]:<{width}}  {_pct(metrics.iou[c])}  "
                     f"{_pct(metrics.class_accuracy[c])}  {_pct(metrics.precision[c])}  "
                     f"{_pct(metrics.recall[c])}  {_pct(metrics.f1[c])}  "
                     f"{metrics.gt_pixels[c]:>10}")
    return "\n".join(lines)


def write_json(metrics: SegmentationMetrics, path: str | Path,
               class_names: list[str] | None = None,
               confusion: ConfusionMatrix | None = None, extra: dict | None = None) -> Path:
    """Write ``metrics.to_dict()`` (NaN -> null), optionally the raw confusion matrix."""
    data = metrics.to_dict(class_names)
    if confusion is not None:
        data["confusion_matrix"] = confusion.matrix.tolist()
    if extra:
        data.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _pyplot():  # noqa: ANN202 - returns the matplotlib.pyplot module
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: str | Path) -> Path:  # noqa: ANN001 - pyplot module and figure
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_iou_bars(metrics: SegmentationMetrics, path: str | Path,
                  class_names: list[str] | None = None, max_classes: int = 60) -> Path:
    """Horizontal bar chart of per-class IoU (present classes, best first)."""
    plt = _pyplot()
    names = _names(metrics, class_names)
    present = [c for c in metrics.present_classes() if not math.isnan(metrics.iou[c])]
    present.sort(key=lambda c: -metrics.iou[c])
    shown = present[:max_classes]
    fig_h = max(2.0, 0.22 * len(shown) + 1.0)
    fig, ax = plt.subplots(figsize=(7, fig_h))
    ax.barh(range(len(shown)), [100 * metrics.iou[c] for c in shown], color="#4c72b0")
    ax.set_yticks(range(len(shown)), [names[c] for c in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    if not math.isnan(metrics.mean_iou):
        ax.axvline(100 * metrics.mean_iou, color="#c44e52", linestyle="--",
                   label=f"mean IoU {100 * metrics.mean_iou:.1f}%")
        ax.legend(loc="lower right", fontsize=7)
    title = "Per-class IoU"
    if len(present) > len(shown):
        title += f" (best {len(shown)} of {len(present)})"
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_confusion(confusion: ConfusionMatrix, path: str | Path,
                   class_names: list[str] | None = None, max_classes: int = 40) -> Path:
    """Row-normalised confusion-matrix heat map (rows: truth) of the most frequent classes."""
    plt = _pyplot()
    norm = confusion.normalized()
    gt = confusion.matrix.sum(axis=1)
    names = class_names or [str(i) for i in range(confusion.num_classes)]
    keep = [int(c) for c in np.argsort(-gt, kind="stable") if gt[c] > 0][:max_classes]
    keep.sort()
    sub = norm[np.ix_(keep, keep)]
    size = max(3.0, 0.22 * len(keep) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(sub, cmap="viridis", vmin=0.0, vmax=1.0)
    labels = [names[c] for c in keep]
    ax.set_xticks(range(len(keep)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(keep)), labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(plt, fig, path)


def write_markdown_report(confusion: ConfusionMatrix, out_dir: str | Path,
                          class_names: list[str] | None = None,
                          title: str = "Segmentation evaluation",
                          notes: dict[str, str] | None = None) -> Path:
    """Write ``report.md``, ``iou.png``, ``confusion.png`` and ``metrics.json`` to out_dir.

    ``notes`` (e.g. model, dataset, protocol settings) become a key/value list at the
    top. Returns the Markdown path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = confusion.compute()
    names = _names(metrics, class_names)
    plot_iou_bars(metrics, out / "iou.png", names)
    plot_confusion(confusion, out / "confusion.png", names)
    write_json(metrics, out / "metrics.json", names, confusion)

    md = [f"# {title}", ""]
    for key, value in (notes or {}).items():
        md.append(f"- **{key}**: {value}")
    if notes:
        md.append("")
    md += ["| metric | value |", "|---|---:|"]
    md += [f"| {label} | {_pct(value).strip()} % |" for label, value in _summary_rows(metrics)]
    md += [f"| pixels evaluated | {metrics.total_pixels} |", "",
           "Classes absent from both ground truth and prediction are left out of every mean.",
           "", "![Per-class IoU](iou.png)", "", "![Confusion matrix](confusion.png)", "",
           "## Per-class results", "",
           "| # | class | IoU % | acc % | precision % | recall % | F1 % | GT pixels |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for c in metrics.present_classes():
        md.append(f"| {c} | {names[c]} | {_pct(metrics.iou[c]).strip()} | "
                  f"{_pct(metrics.class_accuracy[c]).strip()} | "
                  f"{_pct(metrics.precision[c]).strip()} | {_pct(metrics.recall[c]).strip()} | "
                  f"{_pct(metrics.f1[c]).strip()} | {metrics.gt_pixels[c]} |")
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    log.info("wrote %s", path)
    return path
