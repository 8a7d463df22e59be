// The tinylm playground: plain JavaScript over the server's own HTTP API (no external network).
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;       // the /v1/models entry
let running = null;     // AbortController of the generation in flight
let viewChosen = false; // true once the user picked a tab: reloading the model keeps their choice

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error ? body.error.message : JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModel() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (!r.ok) { $("model").textContent = "model: ?"; showError(await errorMessage(r)); return; }
  showError("");
  model = (await r.json()).data[0];
  $("model").textContent = `${model.id} · context ${model.context_length} tokens`;
  const maxTokens = $("max_tokens");
  maxTokens.max = String(model.context_length);
  if (Number(maxTokens.value) > model.context_length) maxTokens.value = String(model.context_length);
  syncOutputs();
  const code2 = model.tasks.includes("code2");
  $("code2-note").textContent = code2 ? "" : "This model is not a CODE-2 model: translation is unavailable.";
  $("translate").disabled = !code2;
  // Open on the view of the task the model was trained for, when the playground has one.
  if (!viewChosen && model.task && $("tab-" + model.task)) showView(model.task);
}

function showView(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === name);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + name;
}

function syncOutputs() {
  for (const id of ["temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty", "max_tokens"]) {
    $(id + "-value").textContent = $(id).value;
  }
}

function requestBody() {
  const body = {
    model: model ? model.id : undefined,
    prompt: $("prompt").value,
    max_tokens: Number($("max_tokens").value),
    temperature: Number($("temperature").value),
    top_p: Number($("top_p").value),
    top_k: Number($("top_k").value),
    presence_penalty: Number($("presence_penalty").value),
    frequency_penalty: Number($("frequency_penalty").value),
    stream: true,
    stream_options: { include_usage: true },
  };
  const seed = $("seed").value.trim();
  if (seed !== "") body.seed = Number(seed);
  // Written escapes (\n, \t) in the stop box mean the characters.
  const stop = $("stop-text").value.replace(/\\n/g, "\n").replace(/\\t/g, "\t");
  if (stop) body.stop = [stop];
  return body;
}

async function generate() {
  showError("");
  const body = requestBody();
  $("out-prompt").textContent = body.prompt;
  $("out-text").textContent = "";
  $("stats").textContent = "";
  $("generate").disabled = true;
  $("stop").disabled = false;
  running = new AbortController();
  const started = performance.now();
  let first = null, tokens = 0, finish = null;
  try {
    const r = await fetch("/v1/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: running.signal,
    });
    if (!r.ok) { showError(await errorMessage(r)); return; }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) { showError(chunk.error.message); continue; }
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        for (const choice of chunk.choices) {
          if (first === null) first = performance.now();
          $("out-text").textContent += choice.text;
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const ttft = first === null ? 0 : (first - started);
    $("stats").textContent = `${tokens} tokens in ${seconds.toFixed(2)} s · ` +
      `${(tokens / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s · first token ${ttft.toFixed(0)} ms · ` +
      `finish: ${finish}`;
    $("stats").dataset.done = "1";
  } catch (e) {
    if (e.name !== "AbortError") showError(String(e));
    else $("stats").textContent = "stopped";
  } finally {
    running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

function badge(el, ok, yes, no) {
  el.textContent = ok ? yes : no;
  el.className = "badge " + (ok ? "ok" : "bad");
}

async function translate() {
  showError("");
  $("translate").disabled = true;
  $("assembly").textContent = "…";
  try {
    const r = await fetch("/v1/code2/translate", {
      method: "POST", headers: headers(), body: JSON.stringify({ text: $("spanish").value }),
    });
    if (!r.ok) { $("assembly").textContent = ""; showError(await errorMessage(r)); return; }
    const t = await r.json();
    $("assembly").textContent = t.assembly;
    badge($("validity"), t.valid, "valid CODE-2", "invalid syntax");
    badge($("assembles"), t.assembles, "assembles", "does not assemble");
    $("run-status").textContent = t.message;
    $("problems").replaceChildren(...t.problems.map((p) => Object.assign(document.createElement("li"), { textContent: p })));
    const names = Object.keys(t.registers);
    const regRows = [];
    for (let i = 0; i < names.length; i += 4) {
      const tr = document.createElement("tr");
      for (const name of names.slice(i, i + 4)) {
        const value = t.registers[name];
        const start = parseInt(name.slice(1), 16);
        const td = document.createElement("td");
        td.dataset.register = name;
        td.textContent = `${name}=${value.toString(16).toUpperCase().padStart(4, "0")}`;
        if (value !== start) td.className = "changed";
        tr.appendChild(td);
      }
      regRows.push(tr);
    }
    $("registers").tBodies[0].replaceChildren(...regRows);
    $("flags").textContent = Object.entries(t.flags).map(([k, v]) => `${k}=${v ? 1 : 0}`).join(" ") || "–";
    $("memory").tBodies[0].replaceChildren(...Object.entries(t.memory).map(([addr, word]) => {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${addr}</td><td>${word.toString(16).toUpperCase().padStart(4, "0")}</td>`;
      return tr;
    }));
    $("outputs").textContent = t.outputs.map((o) => `OP${o.port.toString(16).toUpperCase()}=${o.value}`).join(" ") || "(none)";
    $("assembly").dataset.done = "1";
  } catch (e) {
    showError(String(e));
  } finally {
    $("translate").disabled = !(model && model.tasks.includes("code2"));
  }
}

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => { viewChosen = true; showView(tab.dataset.view); });
}
for (const input of document.querySelectorAll(".controls input[type=range]")) input.addEventListener("input", syncOutputs);
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => running && running.abort());
$("translate").addEventListener("click", translate);
$("api-key").addEventListener("change", loadModel);
$("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate(); });
syncOutputs();
loadModel();
