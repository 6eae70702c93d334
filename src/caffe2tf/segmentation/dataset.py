"""Prepare training data: remap classes, drop poorly annotated images, split, manifest.

Sources
-------
- ``ade20k``: an ADE20K SceneParsing-style tree, ``ROOT/images/**/x.jpg`` with
  ``ROOT/annotations/**/x.png`` at the same relative path (e.g. ``training/``,
  ``validation/``); annotation values are ADE20K's class index, 0 = unlabelled,
  1..150 = ``objectInfo150`` order.
- ``folders``: a plain ``images/`` and ``labels/`` folder pair matched by stem
  (:func:`~caffe2tf.segmentation.evaluate.list_pairs`).

Class schemes (:func:`load_scheme`)
-----------------------------------
- ``indoor``: ADE20K annotation -> the ten indoor classes of
  :mod:`~caffe2tf.segmentation.classes` (0 -> ignore);
- ``ade20k``: ADE20K annotation 1..150 -> 0..149 (0 -> ignore);
- ``none``: stored values kept as they are;
- a mapping file: JSON ``{"classes": [names...], "map": {"src": dst, ...}}`` (or just
  the ``map`` object), or text lines ``src dst`` (``#`` comments). Source values not
  in the map become ``ignore_index``; ``dst`` may be ``ignore_index`` to drop a class.

Rules (:class:`Rules`), checked after remapping, in this order; the first that
fails is the image's reason: unreadable image or label, label size != image size,
``min_side`` (the shorter image side in pixels), ``min_labelled`` (share of pixels
that are not ``ignore_index``), ``min_classes`` (distinct classes present).

Output (:func:`prepare_dataset`): ``OUT/labels/<name>.png`` (remapped labels),
``OUT/manifest.jsonl`` (one JSON object per kept image: ``image``, ``label`` — paths
relative to the manifest's folder —, ``split``, ``height``, ``width``, ``labelled``,
``classes``), ``OUT/dataset.json`` (scheme, class names, ignore index, rules, seed,
counts), ``OUT/dropped.jsonl`` (``image``, ``label``, ``rule``, ``reason``), ``OUT/report.md`` and
``OUT/class_frequencies.png``. The split is a seeded permutation: the same
inputs and seed give the same split on any machine.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from caffe2tf.segmentation import classes as cls
from caffe2tf.segmentation.errors import SegmentationInputError
from caffe2tf.segmentation.evaluate import IMAGE_SUFFIXES, list_pairs
from caffe2tf.segmentation.visualize import read_label_png, write_label_png

__all__ = ["Rules", "Scheme", "PreparedDataset", "load_scheme", "find_ade20k_pairs", "prepare_dataset",
           "read_manifest", "read_dataset_info", "SPLITS"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
MANIFEST = "manifest.jsonl"
INFO = "dataset.json"


@dataclass(frozen=True)
class Rules:
    """When an image is too poorly annotated to train on (module docstring)."""

    min_labelled: float = 0.5
    min_classes: int = 2
    min_side: int = 64


@dataclass(frozen=True)
class Scheme:
    """A class scheme: ``apply(stored labels) -> labels in 0..len(class_names)-1 or ignore``."""

    name: str
    class_names: tuple[str, ...]
    apply: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)


def _mapping_scheme(path: Path, ignore_index: int) -> Scheme:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SegmentationInputError(f"cannot read the mapping file: {exc.strerror or exc}",
                                     file=str(path)) from None
    names: list[str] | None = None
    table: dict[int, int] = {}
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SegmentationInputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
        raw = doc.get("map", doc) if isinstance(doc, dict) else None
        if not isinstance(raw, dict) or (isinstance(doc, dict) and "classes" in doc and
                                         not isinstance(doc["classes"], list)):
            raise SegmentationInputError('expected {"classes": [...], "map": {"src": dst}}', file=str(path))
        names = [str(n) for n in doc["classes"]] if "classes" in doc else None
        try:
            table = {int(k): int(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise SegmentationInputError("map keys and values must be integers", file=str(path)) from None
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").split()
            try:
                src, dst = (int(p) for p in parts)
            except ValueError:
                raise SegmentationInputError(f"expected 'src dst' (two integers), found {line!r}",
                                             file=str(path), line=number) from None
            table[src] = dst
    if not table:
        raise SegmentationInputError("the mapping is empty", file=str(path))
    bad = [(k, v) for k, v in table.items() if k < 0 or v < 0]
    if bad:
        raise SegmentationInputError(f"negative label in mapping entry {bad[0]}", file=str(path))
    targets = sorted({v for v in table.values() if v != ignore_index})
    count = len(names) if names is not None else (targets[-1] + 1 if targets else 0)
    if names is not None and targets and targets[-1] >= count:
        raise SegmentationInputError(f"target class {targets[-1]} but only {count} class names", file=str(path))
    if count >= ignore_index and count > 0:
        raise SegmentationInputError(f"{count} classes collide with ignore_index {ignore_index}", file=str(path))
    names = names if names is not None else [f"class {i}" for i in range(count)]
    # remap() maps ignore_index to itself: a source value equal to it can only mean "unlabelled"
    return Scheme(path.name, tuple(names), lambda labels: cls.remap(labels, table, ignore_index))


def load_scheme(name_or_path: str | Path, ignore_index: int = cls.IGNORE_INDEX) -> Scheme:
    """``indoor``, ``ade20k``, ``none`` or a mapping file (module docstring)."""
    key = str(name_or_path).lower()
    if key == "indoor":
        mapping = {0: ignore_index, **{k + 1: int(v) for k, v in enumerate(cls.indoor_mapping())}}
        return Scheme("indoor", tuple(cls.INDOOR_CLASSES), lambda a: cls.remap(a, mapping, ignore_index))
    if key == "ade20k":
        return Scheme("ade20k", tuple(cls.ade20k_class_names()),
                      lambda a: cls.ade20k_annotation_to_index(a, ignore_index))
    if key == "none":
        return Scheme("none", (), lambda a: np.asarray(a))
    path = Path(name_or_path)
    if not path.is_file():
        raise SegmentationInputError("no such mapping file (built-in schemes: indoor, ade20k, none)",
                                     file=str(path))
    return _mapping_scheme(path, ignore_index)


def find_ade20k_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of an ADE20K-style tree, sorted by relative path."""
    root = Path(root)
    images_dir, ann_dir = root / "images", root / "annotations"
    for folder in (images_dir, ann_dir):
        if not folder.is_dir():
            raise SegmentationInputError("not an ADE20K-style set (needs images/ and annotations/)",
                                         file=str(folder))
    images = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SegmentationInputError("no images", file=str(images_dir))
    pairs, missing = [], []
    for image in images:
        label = (ann_dir / image.relative_to(images_dir)).with_suffix(".png")
        (pairs.append((image, label)) if label.is_file() else missing.append(image))
    if missing:
        raise SegmentationInputError(f"no annotation PNG for {len(missing)} image(s), e.g. "
                                     f"{missing[0].relative_to(images_dir)}", file=str(ann_dir))
    return pairs


@dataclass
class PreparedDataset:
    """What :func:`prepare_dataset` wrote and decided."""

    out_dir: Path
    manifest: Path
    report: Path
    chart: Path
    kept: list[dict]
    dropped: list[dict]
    class_names: list[str]
    pixel_counts: dict[str, list[int]]  # split -> pixels per class

    def count(self, split: str) -> int:
        return sum(1 for r in self.kept if r["split"] == split)


def _check(image_path: Path, label_path: Path, scheme: Scheme, rules: Rules, ignore_index: int,
           num_classes: int | None) -> tuple[np.ndarray | None, tuple[int, int], str | None, str | None]:
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            width, height = im.size
            im.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason to drop
        return None, (0, 0), "unreadable", f"unreadable image ({type(exc).__name__})"
    try:
        stored = read_label_png(label_path)
    except Exception as exc:  # noqa: BLE001
        return None, (height, width), "unreadable", f"unreadable label ({type(exc).__name__})"
    if stored.shape != (height, width):
        return None, (height, width), "size mismatch", f"label size {stored.shape[1]}x{stored.shape[0]} != image size {width}x{height}"
    labels = scheme.apply(stored)
    if num_classes is not None:
        bad = (labels != ignore_index) & (labels >= num_classes)
        if bad.any():
            return None, (height, width), "outside scheme", f"label value {int(labels[bad][0])} outside the scheme's {num_classes} classes"
    if min(height, width) < rules.min_side:
        return labels, (height, width), "min_side", f"too small: {width}x{height}, shorter side < {rules.min_side}"
    labelled = float(np.mean(labels != ignore_index)) if labels.size else 0.0
    if labelled < rules.min_labelled:
        return labels, (height, width), "min_labelled", f"only {100 * labelled:.1f}% of pixels labelled (< {100 * rules.min_labelled:g}%)"
    present = np.unique(labels[labels != ignore_index])
    if len(present) < rules.min_classes:
        return labels, (height, width), "min_classes", f"{len(present)} class(es) present (< {rules.min_classes})"
    return labels, (height, width), None, None


def _split(n: int, val_fraction: float, seed: int) -> list[str]:
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), received {val_fraction}")
    n_val = int(math.floor(n * val_fraction + 0.5)) if n > 1 else 0
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    splits = ["train"] * n
    for i in order[:n_val]:
        splits[int(i)] = "val"
    return splits


def _unique_names(pairs: list[tuple[Path, Path]], base: Path) -> list[str]:
    """Output label names: the image stem, or its relative path joined by ``__`` when stems clash."""
    stems = [p.stem for p, _ in pairs]
    if len(set(stems)) == len(stems):
        return stems
    out = []
    for image, _ in pairs:
        try:
            rel = image.relative_to(base).with_suffix("")
        except ValueError:
            rel = Path(image.stem)
        out.append("__".join(rel.parts))
    return out


def prepare_dataset(out_dir: str | Path, *, ade20k_root: str | Path | None = None,
                    images_dir: str | Path | None = None, labels_dir: str | Path | None = None,
                    scheme: str | Path = "indoor", rules: Rules = Rules(), val_fraction: float = 0.1,
                    seed: int = 0, ignore_index: int = cls.IGNORE_INDEX,
                    progress: Callable[[int], None] | None = None) -> PreparedDataset:
    """Build the manifest, remapped labels and report (module docstring) in ``out_dir``."""
    if (ade20k_root is None) == (images_dir is None or labels_dir is None):
        raise ValueError("give either ade20k_root or both images_dir and labels_dir")
    if ade20k_root is not None:
        pairs = find_ade20k_pairs(ade20k_root)
        base = Path(ade20k_root) / "images"
        source = {"format": "ade20k", "root": str(ade20k_root)}
    else:
        pairs = list_pairs(images_dir, labels_dir)
        base = Path(images_dir)
        source = {"format": "folders", "images": str(images_dir), "labels": str(labels_dir)}
    sch = load_scheme(scheme, ignore_index)
    out = Path(out_dir)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    names = _unique_names(pairs, base)
    num_classes = len(sch.class_names) or None
    kept: list[dict] = []
    dropped: list[dict] = []
    found_max = -1
    label_arrays: list[np.ndarray] = []
    for (image, label), name in zip(pairs, names, strict=True):
        labels, (h, w), rule, reason = _check(image, label, sch, rules, ignore_index, num_classes)
        if reason is not None:
            dropped.append({"image": str(image), "label": str(label), "rule": rule, "reason": reason})
            log.info("dropped %s: %s", image, reason)
        else:
            valid = labels[labels != ignore_index]
            present = sorted(int(c) for c in np.unique(valid))
            found_max = max(found_max, present[-1] if present else -1)
            kept.append({"image": image, "label_out": out / "labels" / f"{name}.png", "height": h, "width": w,
                         "labelled": round(float(valid.size / labels.size), 6), "classes": present})
            label_arrays.append(labels)
        if progress is not None:
            progress(1)
    class_names = list(sch.class_names) or [f"class {i}" for i in range(found_max + 1)]
    splits = _split(len(kept), val_fraction, seed)
    counts = {s: np.zeros(len(class_names), dtype=np.int64) for s in SPLITS}
    records = []
    manifest = out / MANIFEST
    for rec, labels, split in zip(kept, label_arrays, splits, strict=True):
        write_label_png(labels, rec["label_out"])
        valid = labels[labels != ignore_index].astype(np.int64)
        counts[split] += np.bincount(valid, minlength=len(class_names))[:len(class_names)]
        records.append({"image": os.path.relpath(Path(rec["image"]).resolve(), out.resolve()),
                        "label": os.path.relpath(rec["label_out"].resolve(), out.resolve()),
                        "split": split, "height": rec["height"], "width": rec["width"],
                        "labelled": rec["labelled"], "classes": rec["classes"]})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "dropped.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dropped))
    pixel_counts = {s: counts[s].tolist() for s in SPLITS}
    info = {"source": source, "scheme": sch.name, "class_names": class_names, "ignore_index": ignore_index,
            "rules": asdict(rules), "val_fraction": val_fraction, "seed": seed, "inputs": len(pairs),
            "kept": len(records), "dropped": len(dropped),
            "splits": {s: sum(1 for r in records if r["split"] == s) for s in SPLITS},
            "pixel_counts": pixel_counts}
    (out / INFO).write_text(json.dumps(info, indent=1))
    chart = _plot_frequencies(out / "class_frequencies.png", class_names, pixel_counts)
    report = _write_report(out / "report.md", info, dropped, chart)
    log.info("kept %d of %d images (%d dropped) -> %s", len(records), len(pairs), len(dropped), manifest)
    return PreparedDataset(out, manifest, report, chart, records, dropped, class_names, pixel_counts)


def _plot_frequencies(path: Path, class_names: list[str], pixel_counts: dict[str, list[int]]) -> Path:
    from caffe2tf.segmentation.report import _pyplot, _save

    plt = _pyplot()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * n + 2), 4.0))
    x = np.arange(n)
    width = 0.4
    for k, split in enumerate(SPLITS):
        c = np.asarray(pixel_counts[split], dtype=np.float64)
        share = c / c.sum() if c.sum() > 0 else c
        ax.bar(x + (k - 0.5) * width, 100 * share, width, label=split)
    ax.set_xticks(x, class_names, rotation=90 if n > 12 else 45, ha="right" if n <= 12 else "center",
                  fontsize=7 if n > 40 else 9)
    ax.set_ylabel("share of labelled pixels (%)")
    ax.set_title("class frequencies after remapping")
    ax.legend()
    return _save(plt, fig, path)


def _write_report(path: Path, info: dict, dropped: list[dict], chart: Path) -> Path:
    rules = info["rules"]
    lines = [
        "# Dataset preparation", "",
        f"- source: `{json.dumps(info['source'])}`",
        f"- class scheme: {info['scheme']} ({len(info['class_names'])} classes, ignore index {info['ignore_index']})",
        f"- rules: at least {100 * rules['min_labelled']:g}% of pixels labelled, at least "
        f"{rules['min_classes']} classes present, shorter side at least {rules['min_side']} px",
        f"- {info['inputs']} images in, {info['kept']} kept "
        f"(train {info['splits']['train']}, val {info['splits']['val']}, seed {info['seed']}, "
        f"val fraction {info['val_fraction']:g}), {info['dropped']} dropped", "",
        f"![class frequencies]({chart.name})", "",
        "| class | train pixels | val pixels |", "|---|---:|---:|",
    ]
    for i, name in enumerate(info["class_names"]):
        lines.append(f"| {name} | {info['pixel_counts']['train'][i]} | {info['pixel_counts']['val'][i]} |")
    lines += ["", f"## Dropped ({len(dropped)})", ""]
    if dropped:
        rules_hit: dict[str, int] = {}
        for d in dropped:
            rules_hit[d["rule"]] = rules_hit.get(d["rule"], 0) + 1
        lines += ["| rule | images |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in sorted(rules_hit.items())]
        lines += ["", "| image | reason |", "|---|---|"]
        lines += [f"| {d['image']} | {d['reason']} |" for d in dropped]
    else:
        lines.append("none")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_dataset_info(manifest: str | Path) -> dict:
    """``dataset.json`` beside the manifest ({} when absent)."""
    info = Path(manifest).parent / INFO
    return json.loads(info.read_text()) if info.is_file() else {}


def read_manifest(manifest: str | Path, split: str | None = None) -> list[tuple[Path, Path]]:
    """(image, label) pairs of a manifest (all, or one ``split``); relative paths are
    taken from the manifest's folder."""
    path = Path(manifest)
    if not path.is_file():
        raise SegmentationInputError("no such manifest", file=str(path))
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, received {split!r}")
    pairs = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            image, label, rec_split = rec["image"], rec["label"], rec.get("split")
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SegmentationInputError("expected a JSON object with image, label, split",
                                         file=str(path), line=number) from None
        if split is not None and rec_split != split:
            continue
        pairs.append((path.parent / image, path.parent / label))
    if not pairs:
        raise SegmentationInputError(f"no entries{f' in split {split}' if split else ''}", file=str(path))
    return pairs
