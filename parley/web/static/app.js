// Parley's chat page (plain JavaScript modules, no build step): threads, history, the model
// picker, sending a message and reading its event stream (the HTTP interface is in
// docs/web.md). The other modules: markdown.js renders and sanitises Markdown and the answer
// that grows, views.js the messages on the page, frames.js the frame clock (the DOM changes
// at most once per animation frame), sse.js the event stream, dom.js small DOM helpers.
//
// The address keeps the state a reload needs: `#thread=<id>` is the conversation on screen,
// `?model=<provider/model>` picks a model (added to the picker when the server does not
// list it). `window.__parleyTimings` gets one entry per answer, in wall-clock milliseconds:
// `firstEventAt` (its first `content` event parsed), `firstRenderedAt` (the frame that put
// it in the DOM), `firstVisibleAt` (that frame painted).
//
// An empty conversation offers example prompts (buttons: a click sends one as if typed).
// On a narrow window (a phone) the thread list is a drawer the header's ☰ button opens.
// The status line says "Waiting for the model…" (`data-state="waiting"`, with a typing
// indicator in the answer) from the start of each turn until its first reasoning, text or
// tool call arrives, then "Streaming the answer…" (`data-state="streaming"`).
//
// The calls of the MCP servers the Parley server runs show as cards as they run
// (`hosted_tool` events). A call that waits for the user's approval (`approval` event; the
// exchange then ends, its run `action_required`) shows a card with Approve and Deny: a click
// posts the answer to `/api/runs/<run>/approval`, whose stream goes on in the same message.
// A reload while a call waits shows its card again (`pending` in the thread's messages).
//
// Files: the Attach button (a file chooser) or a drop anywhere on the page attaches files to the
// conversation (a new one starts with its first file). Each shows as a chip above the
// composer whose status goes from "indexing" to "ready" (or "failed", with the reason); the
// page asks for the conversation's files again while one is indexing. The answers then
// search them: a search shows as a card (its queries, each passage with its file), and the
// answer's citations (`citations` event) link to the passage they cite.
//
// The code interpreter: each call the Parley server runs shows as a card (`hosted_tool`
// events with a `code_interpreter_call` item): its code and "Running…", then its output,
// figures and the files it wrote (links to `/api/threads/<id>/code-files/...`). When the
// server cannot run it, one `notice` says so and the page goes on without it.

import { h } from "./dom.js";
import { frames, now, scroller } from "./frames.js";
import { pane, AssistantView, renderHistory, userMessage } from "./views.js";
import { readEvents } from "./sse.js";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const MAX_UPLOAD = Number(document.querySelector('meta[name="max-upload-bytes"]').content);
/** How often the page looks at files that are still being indexed, in milliseconds. */
const INDEX_POLL_MS = 700;
const MODEL_KEY = "parley.model";

/** Timings of each stream's first content, for the bench: wall-clock milliseconds. */
window.__parleyTimings = [];

const el = {
  threads: document.querySelector('[data-testid="threads"]'),
  newThread: document.querySelector('[data-testid="new-thread"]'),
  title: document.querySelector('[data-testid="thread-title"]'),
  model: document.querySelector('[data-testid="model"]'),
  messages: document.querySelector('[data-testid="messages"]'),
  empty: document.querySelector('[data-testid="empty"]'),
  form: document.querySelector(".composer-form"),
  composer: document.querySelector('[data-testid="composer"]'),
  send: document.querySelector('[data-testid="send"]'),
  stop: document.querySelector('[data-testid="stop"]'),
  status: document.querySelector('[data-testid="status"]'),
  examples: [...document.querySelectorAll('[data-testid="example"]')],
  sidebar: document.querySelector('[data-testid="sidebar"]'),
  drawerToggle: document.querySelector('[data-testid="threads-toggle"]'),
  scrim: document.querySelector('[data-testid="scrim"]'),
  attachments: document.querySelector('[data-testid="attachments"]'),
  attach: document.querySelector('[data-testid="attach"]'),
  attachInput: document.querySelector('[data-testid="attach-input"]'),
  dropHint: document.querySelector('[data-testid="drop-hint"]'),
};

/** The width at which the thread list becomes a drawer (as in style.css). */
const NARROW = window.matchMedia("(max-width: 700px)");
const WAITING_TEXT = "Waiting for the model…";

const state = {
  threads: [], // [{id, title, created_at}], newest first
  threadId: null, // the thread on screen (null: a new conversation)
  stream: null, // the running exchange, see send()
  loadToken: 0, // the newest openThread() call: older answers are dropped
  files: [], // the chips of the conversation on screen: {key, id, filename, status, error}
  filesTimer: null, // the next look at files still indexing
};

/** A failure to show on the page: `type` as the server named it, `message` for people. */
class PageError extends Error {
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

function describeHttpError(status, error) {
  const type = (error && error.type) || `http_${status}`;
  const detail = (error && error.message) || "";
  if (type === "server_unreachable") {
    return new PageError(type, detail || "The Parley server cannot be reached.");
  }
  if (type === "csrf_failed") {
    return new PageError(type, "The page's session has expired: reload the page and try again.");
  }
  if (status >= 500 && !detail) {
    return new PageError(type, `The web app failed (HTTP ${status}).`);
  }
  return new PageError(type, detail || `The request failed (HTTP ${status}).`);
}

async function httpError(response) {
  let error = null;
  try {
    error = (await response.json()).error;
  } catch {
    // Not JSON: a proxy's or the server's own error page.
  }
  return describeHttpError(response.status, error);
}

function networkError() {
  return new PageError(
    "network",
    "Cannot reach the Parley web app: check that `parley web` is still running, then try again.",
  );
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw networkError();
  }
  if (!response.ok) throw await httpError(response);
  return response.json();
}

/** The status line: its words, and `state` for the style (`waiting` shows a spinner). */
function setStatus(text, state = "") {
  el.status.textContent = text || "";
  el.status.dataset.state = state;
}

/** An error in the conversation (not tied to an answer). */
function showError(error) {
  el.empty.hidden = true;
  const node = h("div", { class: "error", "data-testid": "error", role: "alert" });
  node.textContent = error.message || String(error);
  if (error.type) node.dataset.errorType = error.type;
  el.messages.append(node);
  scroller.toBottom();
}

// -------------------------------------------------------------------------- threads

function threadById(id) {
  return state.threads.find((t) => t.id === id);
}

function renderThreads() {
  const items = state.threads.map((thread) => {
    const open = h("button", {
      type: "button",
      class: "thread-open",
      title: thread.title || "Untitled",
      text: thread.title || "Untitled",
    });
    open.addEventListener("click", () => {
      closeDrawer();
      openThread(thread.id);
    });
    const remove = h("button", {
      type: "button",
      class: "thread-delete",
      "data-testid": "delete-thread",
      "aria-label": `Delete “${thread.title || "Untitled"}”`,
      title: "Delete this conversation",
      text: "×",
    });
    remove.addEventListener("click", () => deleteThread(thread.id));
    const item = h(
      "li",
      { class: "thread", "data-testid": "thread-item", "data-thread-id": thread.id },
      open,
      remove,
    );
    if (thread.id === state.threadId) {
      item.classList.add("current");
      item.setAttribute("aria-current", "true");
    }
    return item;
  });
  el.threads.replaceChildren(...items);
  const current = threadById(state.threadId);
  el.title.textContent = current ? current.title || "Untitled" : "New conversation";
}

/** The session's threads from the server (throws a PageError). */
async function loadThreads() {
  state.threads = (await api("GET", "/api/threads")).data || [];
  renderThreads();
}

function setCurrentThread(id) {
  state.threadId = id;
  const hash = id ? `#thread=${encodeURIComponent(id)}` : "";
  if (location.hash !== hash) {
    history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
  }
  renderThreads();
}

function threadFromHash() {
  const match = /^#thread=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function clearConversation() {
  el.messages.replaceChildren(el.empty);
  el.empty.hidden = false;
  scroller.stick = true;
}

async function openThread(id) {
  const token = ++state.loadToken;
  const stream = state.stream;
  if (stream && stream.visible) {
    // Leaving a conversation whose answer still streams: keep its nodes for coming back.
    stream.pane = [...el.messages.children].filter((node) => node !== el.empty);
    stream.visible = false;
  }
  setCurrentThread(id);
  clearConversation();
  if (stream && id !== null && id === stream.threadId) {
    el.messages.append(...stream.pane);
    el.empty.hidden = true;
    stream.visible = true;
    setStatus(stream.status, stream.phase);
    scroller.toBottom();
    return;
  }
  setStatus("");
  showFiles([]);
  if (id === null) {
    el.composer.focus();
    return;
  }
  refreshFiles(id);
  let messages;
  let pending;
  try {
    const answer = await api("GET", `/api/threads/${encodeURIComponent(id)}/messages`);
    messages = answer.data || [];
    pending = answer.pending;
  } catch (error) {
    if (token !== state.loadToken) return;
    if (error.type === "not_found") {
      setCurrentThread(null);
      showError(new PageError("not_found", "This conversation no longer exists."));
    } else {
      showError(error);
    }
    return;
  }
  if (token !== state.loadToken) return; // another thread was opened meanwhile
  const last = renderHistory(messages, id);
  if (pending && Array.isArray(pending.approvals) && pending.approvals.length) {
    const view = last || new AssistantView({ live: false });
    for (const data of pending.approvals) {
      view.approval(data, (approve) => answerApproval(view, data, approve));
    }
    setStatus("Waiting for your approval.");
  }
  scroller.toBottom();
}

async function deleteThread(id) {
  if (state.stream && state.stream.threadId === id) await stop();
  try {
    await api("DELETE", `/api/threads/${encodeURIComponent(id)}`);
  } catch (error) {
    showError(error);
    return;
  }
  state.threads = state.threads.filter((t) => t.id !== id);
  if (state.threadId === id) openThread(null);
  else renderThreads();
}

// --------------------------------------------------------------------------- models

/** The model picker, filled from the server (throws a PageError). */
async function loadModels() {
  const answer = await api("GET", "/api/models");
  const requested = new URLSearchParams(location.search).get("model");
  const saved = localStorage.getItem(MODEL_KEY);
  const models = [...(answer.models || [])];
  for (const extra of [answer.default, requested]) {
    if (extra && !models.includes(extra)) models.unshift(extra);
  }
  const groups = new Map();
  for (const model of models) {
    const provider = model.includes("/") ? model.split("/")[0] : "";
    if (!groups.has(provider)) groups.set(provider, []);
    groups.get(provider).push(model);
  }
  const children = [];
  for (const [provider, names] of groups) {
    const descriptions = answer.descriptions || {};
    const options = names.map((name) => {
      const about = descriptions[name];
      const text = about ? `${name} (${about})` : name;
      return h("option", { value: name, text, title: about || "" });
    });
    children.push(provider ? h("optgroup", { label: provider }, ...options) : options);
  }
  for (const provider of answer.providers || []) {
    if (provider.ready || groups.has(provider.name)) continue;
    const why = provider.problem ? `: ${provider.problem}` : "";
    const option = h("option", { value: "", text: `${provider.name} (not ready${why})` });
    option.disabled = true;
    children.push(option);
  }
  el.model.replaceChildren(...children.flat());
  const choice = [requested, saved, answer.default].find((m) => m && models.includes(m));
  if (choice) el.model.value = choice;
}

// ------------------------------------------------------------------------ streaming
function setBusy(busy) {
  el.send.hidden = busy;
  el.send.disabled = busy;
  for (const example of el.examples) example.disabled = busy;
  el.stop.hidden = !busy;
  el.stop.disabled = true; // enabled once the run exists
}

function recordFirstContent(block) {
  const timing = {
    firstEventAt: now(),
    firstRenderedAt: null,
    firstVisibleAt: null,
  };
  window.__parleyTimings.push(timing);
  // Visible = the frame that puts the first text into the DOM has been painted.
  frames.afterPaint.push((rendered, painted) => {
    timing.firstRenderedAt = rendered;
    timing.firstVisibleAt = painted;
  });
  frames.mark(block);
}

const handlers = {
  thread(stream, data) {
    stream.threadId = data.thread_id;
    if (!threadById(data.thread_id)) {
      const thread = { id: data.thread_id, title: data.title || "Untitled", created_at: null };
      state.threads.unshift(thread);
    }
    if (stream.visible && state.threadId !== data.thread_id) setCurrentThread(data.thread_id);
    else renderThreads();
  },
  status(stream, data) {
    if (data.state === "done") return; // `done` says how it ended
    if (data.state === "streaming") {
      // A turn starts: nothing moves until its first token, so say that it waits.
      stream.streamingText = data.text || "Streaming the answer…";
      stream.view.waiting(true);
      showPhase(stream, "waiting", WAITING_TEXT);
      return;
    }
    if (data.state === "tools") stream.view.waiting(false); // the tool cards show it
    showPhase(stream, "", data.text || data.state || "");
  },
  run(stream, data) {
    stream.runId = data.run_id;
    if (stream.stopRequested) requestCancel(stream);
    else el.stop.disabled = false;
  },
  "reasoning.delta"(stream, data) {
    firstToken(stream);
    stream.view.reasoning(data.text || "");
  },
  "content.delta"(stream, data) {
    firstToken(stream);
    stream.view.content(data.text || "");
    if (!stream.sawContent) {
      stream.sawContent = true;
      recordFirstContent(stream.view.last);
    }
  },
  tool_calls(stream) {
    firstToken(stream);
  },
  "tool.start"(stream, data) {
    stream.view.toolCall({ id: data.tool_call_id, name: data.name, arguments: data.arguments });
  },
  "tool.result"(stream, data) {
    stream.view.toolResult({ ...data, id: data.tool_call_id });
  },
  hosted_tool(stream, data) {
    firstToken(stream);
    stream.view.threadId = stream.threadId;
    stream.view.hostedTool(data);
  },
  notice(stream, data) {
    stream.view.note("notice", data.text || "");
  },
  approval(stream, data) {
    stream.view.waiting(false);
    const view = stream.view;
    view.approval(data, (approve) => answerApproval(view, data, approve));
  },
  citations(stream, data) {
    stream.view.citations(data.citations);
  },
  usage(stream, data) {
    stream.usage = data;
  },
  error(stream, data) {
    stream.view.waiting(false);
    const message = data.message || "The answer failed.";
    stream.view.error(data.code ? `${message} (${data.code})` : message, data.code);
  },
  done(stream, data) {
    stream.done = data;
  },
};

/** Where the stream is, on the status line if its conversation is on screen. */
function showPhase(stream, phase, text) {
  stream.phase = phase;
  stream.status = text;
  if (stream.visible) setStatus(text, phase);
}

/** The turn's first reasoning, text or tool call: it is streaming now. */
function firstToken(stream) {
  stream.view.waiting(false);
  if (stream.phase !== "waiting") return; // "Stopping…" stays
  showPhase(stream, "streaming", stream.streamingText);
}

function handle(stream, event) {
  const handler = Object.hasOwn(handlers, event.name) ? handlers[event.name] : undefined;
  if (handler === undefined) return; // an event this page does not know
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return; // not JSON: nothing to show
  }
  handler(stream, data);
}

function yieldToBrowser() {
  if (globalThis.scheduler && typeof scheduler.yield === "function") return scheduler.yield();
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A new exchange's state; `view` is where its answer goes. */
function newStream() {
  return {
    threadId: state.threadId,
    visible: true, // its conversation is on screen (see openThread)
    pane: [],
    runId: null,
    stopRequested: false,
    sawContent: false,
    usage: null,
    done: null,
    status: "Sending…",
    phase: "",
    streamingText: "",
    controller: new AbortController(),
  };
}

/** Send the composer's text, or `prompt` (an example) as if it had been typed there. */
async function send(prompt) {
  const typed = prompt === undefined;
  const content = typed ? el.composer.value : prompt;
  if (!content.trim() || state.stream) return;
  if (el.messages.querySelector('[data-testid="hosted-call"][data-status="waiting"]')) {
    // The run waits for that answer: the thread takes no new message until then.
    setStatus("Approve or deny the waiting call first.", "approval");
    return;
  }
  if (typed) el.composer.value = "";
  const stream = newStream();
  state.stream = stream;
  setBusy(true);
  userMessage(content);
  stream.view = new AssistantView({ live: true });
  stream.view.waiting(true);
  scroller.toBottom();
  setStatus("Sending…");
  const body = { content };
  if (stream.threadId) body.thread_id = stream.threadId;
  if (el.model.value) body.model = el.model.value;
  try {
    await runStream(stream, "/api/messages/process", body, () => giveBack(content));
  } finally {
    finishStream(stream);
  }
}

/** The user approved or denied a call that waits: the answer goes on in `view`. */
async function answerApproval(view, data, approve) {
  if (state.stream) {
    view.error("Another answer is still streaming: wait for it, then reload.", "busy");
    return;
  }
  const stream = newStream();
  stream.view = view;
  stream.runId = data.run_id;
  state.stream = stream;
  setBusy(true);
  el.stop.disabled = false;
  view.resume();
  view.waiting(true);
  setStatus(approve ? "Approving…" : "Denying…");
  const path = `/api/runs/${encodeURIComponent(data.run_id)}/approval`;
  try {
    await runStream(stream, path, { action_id: data.action_id, approve }, () => {});
  } finally {
    finishStream(stream);
  }
}

/** POST `body` to `path` and show the event stream it answers; `refused()` when it was
 * not accepted. */
async function runStream(stream, path, body, refused) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        "X-CSRF-Token": CSRF,
      },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: stream.controller.signal,
    });
  } catch {
    stream.view.error(networkError().message, "network");
    refused();
    return;
  }
  if (!response.ok) {
    const error = await httpError(response);
    stream.view.error(error.message, error.type);
    refused();
    return;
  }
  try {
    for await (const batch of readEvents(response.body)) {
      let sliceStart = performance.now();
      for (let i = 0; i < batch.length; i++) {
        handle(stream, batch[i]);
        // A network read can bring thousands of events: let a frame or a key in between.
        if (i % 128 === 127 && performance.now() - sliceStart > 8) {
          await yieldToBrowser();
          sliceStart = performance.now();
        }
      }
    }
  } catch {
    if (stream.controller.signal.aborted) {
      stream.view.note("stopped", "Stopped (the page stopped reading the answer).");
      return;
    }
    stream.view.error(
      "The connection to the web app was lost before the answer finished.",
      "network",
    );
    return;
  }
  if (stream.done === null) {
    stream.view.error("The answer ended early: the web app closed the stream.", "incomplete");
  }
}

/** The message was not sent: back into the composer, unless something new is there. */
function giveBack(content) {
  if (!el.composer.value) el.composer.value = content;
}

function finishStream(stream) {
  stream.view.finish();
  const done = stream.done;
  if (done && done.status === "cancelled") stream.view.note("stopped", "Stopped.");
  const { input_tokens: input = 0, output_tokens: output = 0 } = stream.usage || {};
  if (input || output) stream.view.note("usage", `${input} tokens in · ${output} out`);
  stream.phase = "";
  if (stream.visible) {
    const words = {
      completed: "Done.",
      cancelled: "Stopped.",
      failed: "Failed.",
      action_required: "Waiting for your approval.",
    };
    setStatus(done ? words[done.status] || `Run ${done.status}.` : "");
    if (scroller.stick) scroller.toBottom();
  }
  clearTimeout(stream.abortTimer);
  state.stream = null;
  setBusy(false);
  if (stream.visible) el.composer.focus();
  loadThreads().catch(() => {}); // titles may have changed; a failure shows on the next try
}

async function requestCancel(stream) {
  try {
    await api("POST", `/api/runs/${encodeURIComponent(stream.runId)}/cancel`);
  } catch (error) {
    if (!stream.done) {
      stream.view.error(`Could not stop the run: ${error.message}`, error.type);
      stream.controller.abort();
    }
    return;
  }
  // The stream ends with `done` once the run has stopped; stop reading if it does not.
  stream.abortTimer = setTimeout(() => stream.controller.abort(), 10000);
}

async function stop() {
  const stream = state.stream;
  if (!stream || stream.stopRequested) return;
  stream.stopRequested = true;
  el.stop.disabled = true;
  showPhase(stream, "", "Stopping…");
  if (stream.runId) await requestCancel(stream);
  // Without a run id yet, `run` will cancel as soon as it arrives.
}

// ---------------------------------------------------------------------------- files

const FILE_WORDS = { uploading: "uploading…", indexing: "indexing…", ready: "ready" };
let chipKeys = 0;

function renderFiles() {
  const chips = state.files.map((file) => {
    const status = h("span", {
      class: "file-status",
      "data-testid": "file-status",
      text: FILE_WORDS[file.status] || `failed: ${file.error || "unknown reason"}`,
    });
    const chip = h(
      "span",
      { class: "file-chip", "data-testid": "file-chip", "data-status": file.status },
      h("span", { class: "file-name", "data-testid": "file-name", text: file.filename }),
      status,
    );
    chip.title = file.error ? `${file.filename}: ${file.error}` : file.filename;
    if (file.id) chip.dataset.fileId = file.id;
    return chip;
  });
  el.attachments.replaceChildren(...chips);
  el.attachments.hidden = chips.length === 0;
}

/** The chips of the conversation on screen; a look later if some are still indexing. */
function showFiles(files) {
  state.files = files;
  renderFiles();
  clearTimeout(state.filesTimer);
  state.filesTimer = null;
  if (state.threadId && files.some((file) => file.status === "indexing")) {
    const id = state.threadId;
    state.filesTimer = setTimeout(() => refreshFiles(id), INDEX_POLL_MS);
  }
}

/** The conversation's files from the server (chips still uploading are kept). */
async function refreshFiles(id) {
  let files;
  try {
    files = (await api("GET", `/api/threads/${encodeURIComponent(id)}/files`)).data || [];
  } catch {
    if (state.threadId === id) {
      state.filesTimer = setTimeout(() => refreshFiles(id), INDEX_POLL_MS * 4);
    }
    return; // the next look (or the next message) tells more
  }
  if (state.threadId !== id) return;
  const uploading = state.files.filter((file) => file.status === "uploading");
  showFiles([...files.map((file) => ({ ...file, key: file.id })), ...uploading]);
}

/** A failed chip for a file that never reached the server. */
function refuseFile(chip, reason) {
  chip.status = "failed";
  chip.error = reason;
  renderFiles();
}

/** Upload `files` into the conversation on screen, one after the other (the first one of a
 * new conversation starts it). */
async function attachFiles(files) {
  for (const file of files) {
    const chip = { key: `local-${++chipKeys}`, id: null, filename: file.name, status: "uploading" };
    state.files.push(chip);
    renderFiles();
    if (file.size > MAX_UPLOAD) {
      const mib = (MAX_UPLOAD / 2 ** 20).toFixed(0);
      refuseFile(chip, `larger than ${mib} MiB, the most this page takes`);
      continue;
    }
    await uploadFile(file, chip);
  }
}

async function uploadFile(file, chip) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (state.threadId) form.append("thread_id", state.threadId);
  let response;
  try {
    response = await fetch("/api/files", {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
      body: form,
      credentials: "same-origin",
    });
  } catch {
    refuseFile(chip, networkError().message);
    return;
  }
  if (!response.ok) {
    refuseFile(chip, (await httpError(response)).message);
    return;
  }
  const answer = await response.json();
  const thread = answer.thread;
  if (thread && thread.id !== state.threadId) {
    // The file started a new conversation: it is the one on screen now.
    if (!threadById(thread.id)) state.threads.unshift(thread);
    setCurrentThread(thread.id);
  }
  Object.assign(chip, answer.file, { key: answer.file.id });
  showFiles(state.files);
}

function bindFiles() {
  el.attach.addEventListener("click", () => el.attachInput.click());
  el.attachInput.addEventListener("change", () => {
    const files = [...el.attachInput.files];
    el.attachInput.value = "";
    attachFiles(files);
  });
  let depth = 0; // dragenter/dragleave pairs over the page's elements
  const carriesFiles = (event) => event.dataTransfer && event.dataTransfer.types.includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth += 1;
    el.dropHint.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) el.dropHint.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (carriesFiles(event)) event.preventDefault(); // allows the drop
  });
  document.addEventListener("drop", (event) => {
    depth = 0;
    el.dropHint.hidden = true;
    if (!carriesFiles(event)) return;
    event.preventDefault(); // the browser would open the file instead
    attachFiles([...event.dataTransfer.files]);
  });
}

// --------------------------------------------------------------------------- drawer

/** On a narrow window: the thread list over the conversation, until a choice is made. */
function openDrawer() {
  document.body.classList.add("drawer-open");
  el.drawerToggle.setAttribute("aria-expanded", "true");
  el.scrim.hidden = false;
  const current = el.threads.querySelector(".current .thread-open");
  (current || el.newThread).focus();
}

function closeDrawer({ refocus = false } = {}) {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  el.drawerToggle.setAttribute("aria-expanded", "false");
  el.scrim.hidden = true;
  if (refocus) el.drawerToggle.focus();
}

function bindDrawer() {
  el.drawerToggle.addEventListener("click", () => {
    if (document.body.classList.contains("drawer-open")) closeDrawer({ refocus: true });
    else openDrawer();
  });
  el.scrim.addEventListener("click", () => closeDrawer({ refocus: true }));
  el.sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer({ refocus: true });
  });
  NARROW.addEventListener("change", () => closeDrawer());
}

// ---------------------------------------------------------------------------- start

function bind() {
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  el.composer.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && state.stream) {
      stop();
    }
  });
  el.stop.addEventListener("click", () => stop());
  el.newThread.addEventListener("click", () => {
    closeDrawer();
    openThread(null);
  });
  for (const example of el.examples) {
    example.addEventListener("click", () => send(example.dataset.prompt));
  }
  bindDrawer();
  bindFiles();
  el.model.addEventListener("change", () => localStorage.setItem(MODEL_KEY, el.model.value));
  scroller.attach(el.messages);
  window.addEventListener("hashchange", () => {
    const id = threadFromHash();
    if (id !== state.threadId) openThread(id);
  });
}

/** Errors of the first loads: one message per cause, with what failed when only one did. */
function showLoadErrors(failures) {
  const byMessage = new Map();
  for (const failure of failures) {
    const same = byMessage.get(failure.error.message) || [];
    byMessage.set(failure.error.message, [...same, failure]);
  }
  for (const [message, same] of byMessage) {
    const text = same.length > 1 ? message : `${same[0].what}: ${message}`;
    showError(new PageError(same[0].error.type, text));
  }
}

async function start() {
  pane.messages = el.messages;
  pane.empty = el.empty;
  bind();
  setBusy(false);
  const loads = [
    { what: "Could not load the models", run: loadModels },
    { what: "Could not load your conversations", run: loadThreads },
  ];
  const results = await Promise.allSettled(loads.map((load) => load.run()));
  const failures = results
    .map((result, i) => ({ what: loads[i].what, error: result.reason, status: result.status }))
    .filter((result) => result.status === "rejected");
  showLoadErrors(failures);
  const ok = results[1].status === "fulfilled";
  const id = threadFromHash();
  if (id !== null && ok && !threadById(id)) {
    setCurrentThread(null);
    const why = "it was deleted, or belongs to another browser session";
    showError(new PageError("not_found", `That conversation is not here: ${why}.`));
  } else if (id !== null && ok) {
    await openThread(id);
  }
  document.body.dataset.ready = "true";
  el.composer.focus();
}

start();
