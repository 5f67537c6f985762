// A call of the code interpreter on the page (its card in cards.js's table): the code, then
// what it printed, its figures and the files it wrote.

import { h } from "./dom.js";

/** Logs longer than this many lines (or characters) fold: the first lines, then "Show all". */
const LOG_LINES_SHOWN = 30;
const LOG_CHARS_SHOWN = 4000;
/** The only images a code card shows: PNG data URLs from the call's item. */
const PNG_DATA_URL = "data:image/png;base64,";

/** A call's logs without the error the server appended to them (the card shows it apart). */
function logsOf(item) {
  const outputs = Array.isArray(item.outputs) ? item.outputs : [];
  let logs = outputs
    .filter((o) => o && o.type === "logs" && typeof o.logs === "string")
    .map((o) => o.logs)
    .join("");
  const error = typeof item.error === "string" ? item.error : "";
  if (error && logs.endsWith(error)) logs = logs.slice(0, -error.length).replace(/\n$/, "");
  return logs;
}

function sizeText(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * A call of the code interpreter (a `code_interpreter_call` item): its code as a block and
 * "Running…"; once it ended, its logs (folded when long), its figures inline (PNG data URLs
 * only), the files it wrote as download links (through the page's own route, for this
 * conversation), and its error. Everything is text or an attribute: nothing of the call is
 * parsed as HTML.
 */
export class CodeCard {
  constructor(parent, item, threadId) {
    this.id = item.id || "";
    this.threadId = threadId || null;
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status", text: "running…" });
    this.code = h("code", { class: "language-python" });
    this.running = h("div", { class: "code-running", "data-testid": "code-running", text: "Running…" });
    this.outputs = h("div", { class: "code-outputs", "data-testid": "code-outputs" });
    this.node = h(
      "div",
      {
        class: "tool-call hosted code-interpreter",
        "data-testid": "code-call",
        "data-item-id": this.id,
        "data-status": "running",
      },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-name", text: "python" }),
        h("span", { class: "tool-server", text: "code interpreter" }),
        this.mark,
      ),
      h("pre", { class: "code-source", "data-testid": "code-source" }, this.code),
      this.running,
      this.outputs,
    );
    this.showCode(item.code);
    parent.append(this.node);
  }

  showCode(code) {
    this.code.textContent = typeof code === "string" ? code : "";
  }

  /** The call ended: its outputs, files and error. */
  finish(item) {
    this.showCode(item.code);
    this.running.remove();
    const error = typeof item.error === "string" ? item.error : "";
    const failed = Boolean(error) || item.status === "failed" || item.status === "incomplete";
    this.node.dataset.status = failed ? "error" : "ok";
    this.node.classList.add(failed ? "reported-error" : "ok");
    const marks = { completed: "⚠ error", failed: "⚠ not run", incomplete: "⚠ stopped" };
    this.mark.textContent = failed ? marks[item.status] || "⚠ error" : "✓";
    const parts = [];
    const logs = logsOf(item);
    if (logs) parts.push(this.logsNode(logs));
    const images = (Array.isArray(item.outputs) ? item.outputs : []).filter(
      (o) => o && o.type === "image",
    );
    for (const [n, image] of images.entries()) parts.push(this.imageNode(image, n));
    const shown = new Set(images.map((image) => image.file_id));
    const files = (Array.isArray(item.files) ? item.files : []).filter(
      (f) => f && typeof f.file_id === "string" && !shown.has(f.file_id),
    );
    if (files.length) parts.push(this.filesNode(item.container_id, files));
    if (error || item.status === "failed" || item.status === "incomplete") {
      parts.push(
        h("pre", {
          class: "code-error",
          "data-testid": "code-error",
          role: "alert",
          text: error || "The code was not run.",
        }),
      );
    }
    if (item.restarted) {
      parts.push(
        h("div", {
          class: "code-restarted",
          "data-testid": "code-restarted",
          text: "The Python process was started again: earlier variables are gone.",
        }),
      );
    }
    this.outputs.replaceChildren(...parts);
  }

  logsNode(logs) {
    const lines = logs.replace(/\n$/, "").split("\n");
    const long = lines.length > LOG_LINES_SHOWN || logs.length > LOG_CHARS_SHOWN;
    if (!long) return h("pre", { class: "code-logs", "data-testid": "code-logs", text: logs });
    const head = lines.slice(0, LOG_LINES_SHOWN).join("\n").slice(0, LOG_CHARS_SHOWN);
    const pre = h("pre", { class: "code-logs", "data-testid": "code-logs", text: head });
    const more = h("button", {
      type: "button",
      class: "code-logs-more",
      "data-testid": "code-logs-more",
      text: `Show all ${lines.length} lines`,
    });
    more.addEventListener("click", () => {
      pre.textContent = logs;
      more.remove();
    });
    return h("div", { class: "code-logs-folded" }, pre, more);
  }

  imageNode(image, n) {
    const url = typeof image.url === "string" ? image.url : "";
    if (!url.startsWith(PNG_DATA_URL)) {
      return h("div", { class: "code-image-missing", text: `Figure ${n + 1}: not shown.` });
    }
    const img = h("img", {
      class: "code-image",
      "data-testid": "code-image",
      alt: `Figure ${n + 1}`,
    });
    img.src = url;
    return img;
  }

  filesNode(containerId, files) {
    const rows = files.map((file) => {
      const name = typeof file.filename === "string" && file.filename ? file.filename : file.file_id;
      const size = sizeText(file.bytes);
      const label = size ? `${name} (${size})` : name;
      const row = h("li", { class: "code-file", "data-testid": "code-file" });
      if (this.threadId && typeof containerId === "string" && containerId) {
        const link = h("a", {
          "data-testid": "code-file-link",
          download: name,
          text: label,
        });
        const [thread, container, id] = [this.threadId, containerId, file.file_id].map(
          encodeURIComponent,
        );
        link.href = `/api/threads/${thread}/code-files/${container}/${id}`;
        row.append(link);
      } else {
        row.textContent = label;
      }
      if (typeof file.path === "string") row.title = file.path;
      return row;
    });
    return h(
      "div",
      { class: "code-files", "data-testid": "code-files" },
      h("span", { text: "Files written:" }),
      h("ul", {}, ...rows),
    );
  }
}
