// Parley's chat page (plain JavaScript modules, no build step): threads, history, sending a
// message and reading its event stream (the HTTP interface is in docs/web.md). The other
// modules: page.js the page's elements, state and requests to the web app, models.js the
// model picker, files.js the attached files, drawer.js the thread list on a narrow window,
// views.js the messages on the page, cards.js (and code_card.js) the cards of the calls the
// server runs, markdown.js renders and sanitises Markdown and the answer that grows,
// frames.js the frame clock (the DOM changes at most once per animation frame), sse.js the
// event stream, dom.js small DOM helpers.
//
// The address keeps the state a reload needs: `#thread=<id>` is the conversation on screen,
// `?model=<provider/model>` picks a model (added to the picker when the server does not
// list it). `window.__parleyTimings` gets one entry per answer, in wall-clock milliseconds:
// `firstEventAt` (its first `content` event parsed), `firstRenderedAt` (the frame that put
// it in the DOM), `firstVisibleAt` (that frame painted).
//
// An empty conversation offers example prompts (buttons: a click sends one as if typed).
// The status line says "Waiting for the model…" (`data-state="waiting"`, with a typing
// indicator in the answer) from the start of each turn until its first reasoning, text or
// tool call arrives, then "Streaming the answer…" (`data-state="streaming"`).
//
// The calls the Parley server runs show as cards as they run (`hosted_tool` events, one
// card per item type: cards.js). A call that waits for the user's approval (`approval`
// event; the exchange then ends, its run `action_required`) shows a card with Approve and
// Deny: a click posts the answer to `/api/runs/<run>/approval`, whose stream goes on in the
// same message. A reload while a call waits shows its card again (`pending` in the thread's
// messages).
//
// The answers search the conversation's files: a search shows as a card (its queries, each
// passage with its file), and the answer's citations (`citations` event) link to the
// passage they cite. The code interpreter's calls show as cards too: their code and
// "Running…", then their output, figures and the files they wrote (links to
// `/api/threads/<id>/code-files/...`). When the server cannot run code, one `notice` says
// so and the page goes on without it.
import { h } from "./dom.js";
import { bindDrawer, closeDrawer } from "./drawer.js";
import { bindFiles, refreshFiles, showFiles } from "./files.js";
import { frames, now, scroller } from "./frames.js";
import { bindModels, loadModels } from "./models.js";
import {
  api,
  CSRF,
  el,
  httpError,
  networkError,
  PageError,
  setStatus,
  showError,
  state,
  threadById,
} from "./page.js";
import { pane, AssistantView, renderHistory, userMessage } from "./views.js";
import { readEvents } from "./sse.js";

/** Timings of each stream's first content, for the bench: wall-clock milliseconds. */
window.__parleyTimings = [];

const WAITING_TEXT = "Waiting for the model…";

// -------------------------------------------------------------------------- threads

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
  bindFiles(setCurrentThread);
  bindModels();
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
