// Sensorium web page: search by text or by example, browse results, play from the matched time,
// and follow an indexing job. Plain DOM code, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const API = "/api/v1";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60), s = (seconds % 60).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

async function problemText(response) {
  try { const p = await response.json(); return p.detail || p.title || response.statusText; }
  catch { return response.statusText; }
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showResults(data) {
  const grid = $("results");
  grid.replaceChildren();
  $("item").hidden = true;
  setStatus(`${data.count} result${data.count === 1 ? "" : "s"}`);
  for (const hit of data.results) {
    const when = hit.start !== null ? ` @ ${clock(hit.start)}` : "";
    grid.append(el("article", { class: "hit", "data-item": hit.item_id, "data-kind": hit.modality, tabindex: "0",
                                onclick: () => openItem(hit) },
      el("img", { src: hit.thumbnail_url, alt: hit.name, loading: "lazy" }),
      el("div", { class: "meta" },
        el("span", { class: "score" }, hit.score.toFixed(3)),
        el("div", { class: "name" }, hit.path + when),
        el("div", { class: "why" }, hit.why))));
  }
}

async function searchText(event) {
  if (event) event.preventDefault();
  const q = $("q").value.trim();
  if (!q) return;
  const params = new URLSearchParams({ q, k: "24" });
  if ($("kind").value) params.set("modality", $("kind").value);
  setStatus("searching…");
  const response = await fetch(`${API}/search?${params}`);
  if (!response.ok) return setStatus(await problemText(response), true);
  showResults(await response.json());
}

async function searchExample(file) {
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("k", "24");
  if ($("kind").value) form.append("modality", $("kind").value);
  setStatus(`searching like ${file.name}…`);
  const response = await fetch(`${API}/search`, { method: "POST", body: form });
  if (!response.ok) return setStatus(await problemText(response), true);
  showResults(await response.json());
}

function player(item, start) {
  // Start at the matched time: set once the media knows its duration (and keep #t for good measure).
  const tag = item.modality === "video" ? "video" : "audio";
  const url = start ? `${item.media_url}#t=${start}` : item.media_url;
  const media = el(tag, { controls: "", preload: "metadata", src: url, id: "player" });
  if (start) media.addEventListener("loadedmetadata", () => {
    if (media.currentTime < start) media.currentTime = start;
  }, { once: true });
  return media;
}

async function openItem(hit) {
  const response = await fetch(hit.item_url);
  if (!response.ok) return setStatus(await problemText(response), true);
  const item = await response.json();
  const box = $("item");
  box.replaceChildren(el("h2", {}, item.path));
  if (item.modality === "image") box.append(el("img", { class: "preview", src: item.media_url, alt: item.name }));
  if (item.modality === "audio" || item.modality === "video") box.append(player(item, hit.start || 0));
  if (item.labels.length) {
    box.append(el("h3", {}, "Labels"), el("div", { class: "labels" },
      ...item.labels.slice(0, 12).map((l) => el("span", {}, `${l.label} ${(l.score * 100).toFixed(0)}%`))));
  }
  if (item.transcript.length) {
    box.append(el("h3", {}, "Transcript"), el("ol", { class: "transcript" }, ...item.transcript.map((t) =>
      el("li", {}, el("time", { onclick: () => { const p = $("player"); if (p) { p.currentTime = t.start; p.play(); } } },
        clock(t.start)), t.text))));
  }
  if (item.modality === "image") box.append(describeSection(item));
  if (item.ocr_text) box.append(el("h3", {}, "Text in the image"), el("pre", { class: "ocr" }, item.ocr_text));
  if (item.passages.length) box.append(el("h3", {}, "Text"), ...item.passages.map((p) => el("p", {}, p)));
  box.hidden = false;
  box.scrollIntoView({ behavior: "smooth" });
}

function describeSection(item) {
  // What the experts found, in one sentence (composed, not a learned caption), and a button that reads it aloud.
  const sentence = el("p", { id: "description", class: "description" }, "describing…");
  const speak = el("button", { type: "button", id: "read-aloud", disabled: "" }, "Read aloud");
  speak.addEventListener("click", async () => {
    speak.disabled = true;
    const response = await fetch(`${API}/speak`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: sentence.textContent }),
    });
    speak.disabled = false;
    if (!response.ok) return setStatus(await problemText(response), true);
    const audio = new Audio(URL.createObjectURL(await response.blob()));
    audio.play();
  });
  fetch(`${API}/items/${item.id}/description`).then(async (response) => {
    if (!response.ok) { sentence.textContent = await problemText(response); return; }
    const description = await response.json();
    sentence.textContent = description.sentence;
    sentence.title = description.findings.map((f) => `${f.expert}: ${f.noun} ${(f.confidence * 100).toFixed(0)}%`).join("\n");
    speak.removeAttribute("disabled");
  });
  return el("section", {}, el("h3", {}, "Description"), sentence, speak);
}

function followJob(job) {
  const progress = $("job-progress");
  progress.hidden = false;
  $("cancel-job").hidden = false;
  $("cancel-job").onclick = () => fetch(`${API}/jobs/${job.id}`, {
    method: "DELETE", headers: { Authorization: `Bearer ${$("token").value}` } });
  const events = new EventSource(`${API}/jobs/${job.id}/events`);
  const update = (message) => {
    const state = JSON.parse(message.data);
    progress.max = Math.max(state.total, 1);
    progress.value = state.done;
    $("job-status").textContent = `${state.state}: ${state.done}/${state.total} ${state.current || ""}`;
    return state;
  };
  events.addEventListener("progress", update);
  events.addEventListener("end", (message) => {
    const state = update(message);
    events.close();
    $("cancel-job").hidden = true;
    if (state.error) $("job-status").textContent += ` — ${state.error}`;
  });
}

async function startIndex(event) {
  event.preventDefault();
  sessionStorage.setItem("sensorium-token", $("token").value);
  const response = await fetch(`${API}/jobs/index`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${$("token").value}` },
    body: JSON.stringify({ folder: $("folder").value }),
  });
  if (!response.ok) { $("job-status").textContent = await problemText(response); return; }
  followJob(await response.json());
}

async function imagine(event) {
  // Pictures from words: one PNG grid from a shipped model; its nearest concepts and any warning come as headers.
  event.preventDefault();
  const status = $("imagine-status");
  const number = (id) => Number($(id).value);
  $("imagine-button").disabled = true;
  status.className = "";
  status.textContent = "drawing…";
  try {
    const response = await fetch(`${API}/imagine`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: $("prompt").value, model: $("imagine-model").value, n: number("imagine-n"),
                             steps: number("imagine-steps"), guidance: number("imagine-guidance"),
                             seed: number("imagine-seed") }),
    });
    if (!response.ok) { status.className = "error"; status.textContent = await problemText(response); return; }
    const picture = $("imagined-picture");
    if (picture.src) URL.revokeObjectURL(picture.src);
    picture.src = URL.createObjectURL(await response.blob());
    picture.alt = $("prompt").value;
    const nearest = JSON.parse(response.headers.get("X-Imagine-Nearest") || "[]");
    $("imagined-caption").textContent = `model ${response.headers.get("X-Imagine-Model")}; nearest concepts: ` +
      nearest.map(([concept, similarity]) => `${concept} ${similarity.toFixed(2)}`).join(", ");
    const warning = response.headers.get("X-Imagine-Warning");
    status.className = warning ? "warning" : "";
    status.textContent = warning ? JSON.parse(`"${warning}"`) : "";
    $("imagined").hidden = false;
  } finally {
    $("imagine-button").disabled = false;
  }
}

function setUpDrop() {
  const zone = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    document.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  document.addEventListener("dragleave", () => zone.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) searchExample(e.dataTransfer.files[0]);
  });
}

$("search-form").addEventListener("submit", searchText);
$("example").addEventListener("change", (e) => searchExample(e.target.files[0]));
$("index-form").addEventListener("submit", startIndex);
$("imagine-form").addEventListener("submit", imagine);
$("token").value = sessionStorage.getItem("sensorium-token") || "";
setUpDrop();
fetch(`${API}/health`).then((r) => r.json()).then((h) => {
  if (h.job) followJob({ id: h.job });
});
