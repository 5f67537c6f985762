// What every part of the chat page shares: its elements, its state, the status line, and
// how it talks to the web app (`api`, with the page's CSRF token; the errors it can show).

import { h } from "./dom.js";
import { scroller } from "./frames.js";

export const CSRF = document.querySelector('meta[name="csrf-token"]').content;
export const MAX_UPLOAD = Number(document.querySelector('meta[name="max-upload-bytes"]').content);

export const el = {
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

export const state = {
  threads: [], // [{id, title, created_at}], newest first
  threadId: null, // the thread on screen (null: a new conversation)
  stream: null, // the running exchange, see send()
  loadToken: 0, // the newest openThread() call: older answers are dropped
  files: [], // the chips of the conversation on screen: {key, id, filename, status, error}
  filesTimer: null, // the next look at files still indexing
};

/** A failure to show on the page: `type` as the server named it, `message` for people. */
export class PageError extends Error {
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

export function describeHttpError(status, error) {
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

export async function httpError(response) {
  let error = null;
  try {
    error = (await response.json()).error;
  } catch {
    // Not JSON: a proxy's or the server's own error page.
  }
  return describeHttpError(response.status, error);
}

export function networkError() {
  return new PageError(
    "network",
    "Cannot reach the Parley web app: check that `parley web` is still running, then try again.",
  );
}

export async function api(method, path, body) {
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
export function setStatus(text, state = "") {
  el.status.textContent = text || "";
  el.status.dataset.state = state;
}

/** An error in the conversation (not tied to an answer). */
export function showError(error) {
  el.empty.hidden = true;
  const node = h("div", { class: "error", "data-testid": "error", role: "alert" });
  node.textContent = error.message || String(error);
  if (error.type) node.dataset.errorType = error.type;
  el.messages.append(node);
  scroller.toBottom();
}

/** The session's thread of that id, if it has one. */
export function threadById(id) {
  return state.threads.find((t) => t.id === id);
}
