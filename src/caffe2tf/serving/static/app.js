// caffe2tf serve — the page: upload a photo, show the overlay and the classes found (a segmentation
// model) or the boxes and their labels (a detection model, /healthz says which), and the timing.
// Talks only to this service (same origin); no external URLs, no build step.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const drop = $("drop"), fileInput = $("file"), statusEl = $("status");
  let model = null, busy = false, photoURL = null;

  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", !!isError);
  }

  function ms(v) { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(1) + " ms"; }

  async function loadInfo() {
    try {
      const r = await fetch("/healthz", { cache: "no-store" });
      const info = await r.json();
      model = info.model;
      $("model").classList.add("up");
      $("model-name").innerHTML = "";
      const b = document.createElement("b");
      b.textContent = model.name;
      $("model-name").append("model ", b, " · v" + model.version);
      if (model.kind === "detection") {
        $("api").textContent = "/v1/models/" + model.name + ":predict, :detect";
        $("drop-title").textContent = "Drop a photo here";
        $("result-caption").textContent = "Detections";
        $("legend-title").textContent = "Objects found";
        $("overlay").alt = "the photo with the detected boxes";
        document.title = "caffe2tf · detect objects in a photo";
      } else if (!model.segmentation) {
        $("api").textContent = "/v1/models/" + model.name + ":predict";
        drop.classList.add("disabled");
        setStatus("This model neither segments nor detects in photos: " + (model.segmentation_unavailable || ""), true);
      } else {
        $("api").textContent = "/v1/models/" + model.name + ":predict, :segment";
      }
    } catch (e) {
      $("model").classList.add("down");
      $("model-name").textContent = "service unreachable";
      setStatus("Cannot reach the service: " + e, true);
    }
  }

  function renderLegend(classes) {
    const list = $("legend");
    list.innerHTML = "";
    const shown = classes.slice(0, 40);
    for (const c of shown) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = c.color;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name;
      name.title = c.name + " (class " + c.index + ")";
      const share = document.createElement("span");
      share.className = "share";
      share.textContent = (100 * c.share).toFixed(c.share >= 0.1 ? 1 : 2) + "%";
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = Math.max(1, 100 * c.share) + "%";
      fill.style.background = c.color;
      bar.append(fill);
      li.append(sw, name, share, bar);
      list.append(li);
    }
    if (classes.length > shown.length) {
      const li = document.createElement("li");
      li.innerHTML = '<span></span><span class="more"></span>';
      li.lastChild.textContent = "+ " + (classes.length - shown.length) + " more classes";
      list.append(li);
    }
  }

  function renderTiming(doc, roundTrip, serverTiming) {
    const t = $("timing");
    t.innerHTML = "";
    const rows = [["Model", ms(doc.timing_ms.model)], ["Server", ms(doc.timing_ms.total)],
                  ["Round trip", ms(roundTrip)]];
    const q = /queue;dur=([\d.]+)/.exec(serverTiming || "");
    if (q && parseFloat(q[1]) >= 1) rows.splice(2, 0, ["Queue", ms(parseFloat(q[1]))]);
    rows.push(["Image", doc.width + " × " + doc.height]);
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      t.append(dt, dd);
    }
  }

  function pct(v, total) { return (100 * v / total).toFixed(3) + "%"; }

  // Boxes as elements over the photo, placed in percent of the image: they scale with it.
  function renderBoxes(doc) {
    const layer = $("boxes");
    layer.innerHTML = "";
    for (const d of doc.detections) {
      const b = d.box, el = document.createElement("div");
      el.className = "box" + (b.ymin < 0.06 * doc.height ? " inside" : "");
      el.style.left = pct(b.xmin, doc.width);
      el.style.top = pct(b.ymin, doc.height);
      el.style.width = pct(b.xmax - b.xmin, doc.width);
      el.style.height = pct(b.ymax - b.ymin, doc.height);
      el.style.borderColor = d.color;
      el.dataset.label = d.name;
      el.dataset.score = d.score;
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.style.background = d.color;
      tag.textContent = d.name + " " + d.score.toFixed(2);
      el.append(tag);
      layer.append(el);
    }
  }

  function renderDetections(detections) {
    const list = $("legend");
    list.innerHTML = "";
    for (const d of detections.slice(0, 100)) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = d.color;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = d.name;
      name.title = d.name + " (label " + d.label + ")";
      const score = document.createElement("span");
      score.className = "share";
      score.textContent = d.score.toFixed(3);
      const where = document.createElement("span");
      where.className = "where";
      const b = d.box;
      where.textContent = "(" + Math.round(b.xmin) + ", " + Math.round(b.ymin) + ") – (" +
        Math.round(b.xmax) + ", " + Math.round(b.ymax) + ") px";
      li.append(sw, name, score, where);
      list.append(li);
    }
    if (!detections.length) {
      const li = document.createElement("li");
      li.innerHTML = '<span></span><span class="more"></span>';
      li.lastChild.textContent = "nothing above the threshold";
      list.append(li);
    }
  }

  async function detect(file, t0) {
    $("overlay").src = photoURL;
    const url = "/v1/models/" + encodeURIComponent(model.name) + ":detect?format=json";
    const r = await fetch(url, { method: "POST", body: file, headers: { "Content-Type": file.type } });
    const roundTrip = performance.now() - t0;
    const doc = await r.json().catch(() => ({ error: "HTTP " + r.status }));
    if (!r.ok) throw new Error(doc.error || ("HTTP " + r.status));
    renderBoxes(doc);
    renderDetections(doc.detections);
    renderTiming(doc, roundTrip, r.headers.get("Server-Timing"));
    const n = doc.detections.length;
    setStatus(file.name + " — " + n + " detection" + (n === 1 ? "" : "s") + " (score ≥ " + doc.threshold + ").");
  }

  async function segment(file) {
    if (!model || !(model.segmentation || model.detection) || busy) return;
    if (!/^image\/(jpeg|png)$/.test(file.type)) {
      setStatus("Please choose a JPEG or PNG image (got " + (file.type || "an unknown type") + ").", true);
      return;
    }
    busy = true;
    if (photoURL) URL.revokeObjectURL(photoURL);
    photoURL = URL.createObjectURL(file);
    $("result").hidden = false;
    $("photo").src = photoURL;
    $("overlay").removeAttribute("src");
    $("boxes").innerHTML = "";
    $("spinner").hidden = false;
    $("legend").innerHTML = "";
    $("timing").innerHTML = "";
    document.body.classList.remove("done");
    const detecting = model.kind === "detection";
    setStatus((detecting ? "Detecting in " : "Segmenting ") + file.name + "…");
    const t0 = performance.now();
    try {
      if (detecting) {
        await detect(file, t0);
        document.body.classList.add("done");
        return;
      }
      const url = "/v1/models/" + encodeURIComponent(model.name) + ":segment?output=json&include=overlay";
      const r = await fetch(url, { method: "POST", body: file, headers: { "Content-Type": file.type } });
      const roundTrip = performance.now() - t0;
      const doc = await r.json().catch(() => ({ error: "HTTP " + r.status }));
      if (!r.ok) throw new Error(doc.error || ("HTTP " + r.status));
      $("overlay").src = "data:image/png;base64," + doc.overlay_png;
      renderLegend(doc.classes);
      renderTiming(doc, roundTrip, r.headers.get("Server-Timing"));
      setStatus(file.name + " — " + doc.classes.length + " class" + (doc.classes.length === 1 ? "" : "es") + " found.");
      document.body.classList.add("done");
    } catch (e) {
      setStatus("Could not " + (detecting ? "detect in " : "segment ") + file.name + ": " + e.message, true);
    } finally {
      $("spinner").hidden = true;
      busy = false;
    }
  }

  drop.addEventListener("click", () => fileInput.click());
  $("choose").addEventListener("click", (e) => { e.stopPropagation(); fileInput.click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } });
  fileInput.addEventListener("change", () => { if (fileInput.files[0]) segment(fileInput.files[0]); fileInput.value = ""; });
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { const f = e.dataTransfer.files[0]; if (f) segment(f); });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  loadInfo();
})();
