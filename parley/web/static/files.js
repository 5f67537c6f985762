// Files: the Attach button (a file chooser) or a drop anywhere on the page attaches files to
// the conversation (a new one starts with its first file). Each shows as a chip above the
// composer whose status goes from "indexing" to "ready" (or "failed", with the reason); the
// page asks for the conversation's files again while one is indexing.

import { h } from "./dom.js";
import { api, CSRF, el, httpError, MAX_UPLOAD, networkError, state, threadById } from "./page.js";

/** How often the page looks at files that are still being indexed, in milliseconds. */
const INDEX_POLL_MS = 700;

/** What the page does when an upload started a new conversation: it is the one on screen
 * now (set by `bindFiles`). */
let showThread = () => {};
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
export function showFiles(files) {
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
export async function refreshFiles(id) {
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
    showThread(thread.id);
  }
  Object.assign(chip, answer.file, { key: answer.file.id });
  showFiles(state.files);
}

/** Attach by the button or by a drop; `openedThread(id)` when an upload starts a new
 * conversation. */
export function bindFiles(openedThread) {
  showThread = openedThread;
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
