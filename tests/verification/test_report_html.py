"""The HTML diff report: valid, self-contained (no network), and it shows the plot.

The browser test renders the page in Debian's headless Chromium through Playwright
(never a downloaded browser), checks what a user sees and that no request leaves
file://, and saves screenshots under tests/.artifacts/.
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from caffe2tf.verification.diff import DiffReport, LayerDiff
from caffe2tf.verification.report_html import error_plot_svg, render_html, write_html

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VOID = {"meta", "input", "br", "hr", "img", "link", "circle", "line", "rect", "polyline", "path"}


def _resnet_like_names() -> list[tuple[str, str, str]]:
    names = [("conv1", "Convolution", "kernel 7 stride 2 pad 3, 64 outputs"), ("conv1/bn", "BN", "eps 1e-5"),
             ("conv1/relu", "ReLU", ""), ("pool1", "Pooling", "MAX, kernel 3 stride 2 pad 1")]
    for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3)):
        for b in range(1, blocks + 1):
            for part, k in (("1x1_reduce", 1), ("3x3", 3), ("1x1_increase", 1)):
                base = f"conv{stage}_{b}_{part}"
                names += [(base, "Convolution", f"kernel {k} stride 1, {64 * 2 ** (stage - 2)} outputs"),
                          (f"{base}/bn", "BN", "eps 1e-5")]
                if part != "1x1_increase":
                    names.append((f"{base}/relu", "ReLU", ""))
            names += [(f"conv{stage}_{b}", "Eltwise", "SUM"), (f"conv{stage}_{b}/relu", "ReLU", "")]
    names += [("conv5_4", "Convolution", "kernel 3 stride 1 pad 1, 512 outputs"), ("conv6", "Convolution",
              "kernel 1 stride 1, 150 outputs"), ("conv6_interp", "Interp", "60x60 -> 473x473")]
    return names


def make_report(culprit_at: int | None = 120, shape_mismatch_at: int | None = None) -> DiffReport:
    rows = []
    names = _resnet_like_names()
    err = 2e-7
    for depth, (name, type_, detail) in enumerate(names):
        # float32 rounding growing along the depth (2e-7 -> ~5e-5), a BN bump now and then
        e_in = err
        err = 2e-7 * 10 ** (2.4 * depth / len(names)) * (1.6 if type_ == "BN" else 1.0) * (1 + 0.4 * math.sin(depth))
        status = "ok"
        shape = [1, 64, 60, 60]
        actual_shape = shape
        if culprit_at is not None and depth == culprit_at:
            err, status = 3.1e-2, "culprit"
        elif culprit_at is not None and depth > culprit_at:
            err, status = 3.1e-2 * (1 + 0.5 * math.sin(depth)), "propagated"
        if shape_mismatch_at is not None and depth == shape_mismatch_at:
            err, status, actual_shape = math.inf, "culprit", [1, 64, 59, 59]
        amp = 100.0 if type_ in ("BN", "Eltwise") else 30.0
        rows.append(LayerDiff(depth=depth, name=name, type=type_, detail=detail, top=name.split("/")[0], value=name,
                              shape=shape, actual_shape=actual_shape, status=status, max_abs=err * 40,
                              max_rel=err, mean_abs=err * 3, cosine=1 - err * err, argmax_agreement=1 - err / 3,
                              input_rel=e_in, allowed=amp * e_in + 1e-6, amplification=amp,
                              sampled=depth % 4 == 0, n_compared=4096))
    rows[5] = replace(rows[5], status="not_compared", max_rel=None, max_abs=None, mean_abs=None, cosine=None,
                      argmax_agreement=None, note="the model does not expose it")
    return DiffReport(net="pspnet50_ade20k (net.prototxt)", source="reference.h5 (BVLC Caffe, CPU, float32)",
                      source_kind="file", inputs="the inputs recorded in the reference (data 1x3x473x473)",
                      tolerance=2e-4, tolerance_origin="default for nets of 50+ layers; this one has "
                      f"{len(rows)}", num_layers=len(rows), folded=False, layers=rows,
                      label_maps=[{"top": "conv6_interp", "agreement": 0.9999, "violations": 0, "passes": True}])


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def test_html_is_valid_and_self_contained() -> None:
    report = make_report()
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    # nothing to fetch: no external resources of any kind
    assert all(t not in ("link", "img", "iframe", "object", "embed") for t, _ in checker.tags)
    assert all("src" not in a and "href" not in a for _, a in checker.tags)
    assert "@import" not in page and "url(" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}  # a namespace name
    ids = [a.get("id") for _, a in checker.tags if a.get("id")]
    assert len(ids) == len(set(ids))
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert len(json.loads(data)) == len(report.layers)


def test_plot_is_wellformed_svg_with_tolerance_and_culprit() -> None:
    report = make_report()
    svg = ET.fromstring(error_plot_svg(report))
    ns = "{http://www.w3.org/2000/svg}"
    points = [c for c in svg.iter(f"{ns}circle") if "pt" in c.get("class", "").split()]
    assert len(points) == len(report.compared)
    texts = [t.text for t in svg.iter(f"{ns}text")]
    assert "tolerance 2e-4" in texts and "1e-7" in texts
    assert any(c.get("id") == "culprit-mark" for c in svg.iter(f"{ns}circle"))
    assert any(t and t.startswith(report.first_divergence.name) for t in texts)


def test_ok_report_and_shape_mismatch_band() -> None:
    ok = make_report(culprit_at=None)
    page = render_html(ok)
    assert 'class="verdict ok"' in page and "culprit-mark" not in page
    bad = make_report(culprit_at=None, shape_mismatch_at=40)
    svg = error_plot_svg(bad)
    assert "shape mismatch / not finite" in svg and 'id="culprit-mark"' in svg


@pytest.mark.browser
@pytest.mark.parametrize("culprit_at", [120, None], ids=["divergence", "ok"])
def test_report_in_headless_chromium(tmp_path, culprit_at) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium); the browser test needs Debian's "
                    "Chromium and never downloads one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    report = make_report(culprit_at=culprit_at)
    path = write_html(report, tmp_path / "report.html")
    outside: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})

            def route(r):
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.resolve().as_uri())
            verdict = page.locator("#verdict")
            sync_api.expect(verdict).to_be_visible()
            sync_api.expect(verdict).to_have_text(report.headline.replace("`", ""))
            plot = page.locator("svg#error-plot")
            sync_api.expect(plot).to_be_visible()
            box = plot.bounding_box()
            assert box is not None and box["width"] > 800 and box["height"] > 250
            assert page.locator("svg#error-plot circle.pt").count() == len(report.compared)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = "diff_report_divergence" if culprit_at is not None else "diff_report_ok"
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
            if culprit_at is not None:
                sync_api.expect(page.locator("#culprit-mark")).to_be_visible()
                page.locator("svg#error-plot circle.st-culprit").first.click()
                sync_api.expect(page.locator(f"#row-{culprit_at}")).to_be_in_viewport()
                page.screenshot(path=str(ARTIFACTS / f"{name}_table.png"))
            page.locator("#only-over").check()
            hidden = page.locator("#layers tbody tr[data-status='ok']").first
            sync_api.expect(hidden).to_be_hidden()
            assert not errors, errors
        finally:
            browser.close()
    assert not outside, f"requests outside file://: {outside}"
