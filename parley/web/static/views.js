// The messages of a conversation on the page: the user's, and the assistant's side of an
// exchange (reasoning, Markdown text, tool calls with their results, the calls of the MCP
// servers the Parley server runs, its file searches and code interpreter calls, and the calls
// that wait for the user's approval) from the live stream or from the history. Model and tool text only ever reaches the DOM as
// sanitised Markdown or as textContent (an MCP server's output and arguments included: they
// are untrusted).

import { h } from "./dom.js";
import { frames } from "./frames.js";
import { MarkdownBlock } from "./markdown.js";

/** Where the messages go: the conversation pane and its "empty" placeholder. */
export const pane = { messages: null, empty: null };

function messageNode(role) {
  pane.empty.hidden = true;
  const node = h("div", {
    class: `message ${role}`,
    "data-testid": "message",
    "data-role": role,
  });
  pane.messages.append(node);
  return node;
}

export function userMessage(text) {
  messageNode("user").textContent = text;
}

function prettyArguments(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value; // not JSON: shown as the model sent it
    }
  }
  return JSON.stringify(value ?? {}, null, 2);
}

/** A reasoning block: a collapsible <details>, plain text. */
class ReasoningBlock {
  constructor(parent, { open }) {
    this.text = h("div", { class: "reasoning-text", "data-testid": "reasoning-text" });
    this.summary = h("summary", { text: "Reasoning" });
    this.node = h(
      "details",
      { class: "reasoning", "data-testid": "reasoning" },
      this.summary,
      this.text,
    );
    this.node.open = open;
    this.touched = false; // the reader opened or closed it: leave it as it is
    this.summary.addEventListener("click", () => {
      this.touched = true;
    });
    this.pending = "";
    parent.append(this.node);
  }

  append(text) {
    this.pending += text;
  }

  render() {
    if (this.pending) {
      this.text.append(this.pending);
      this.pending = "";
    }
  }

  flush() {
    this.render();
  }

  collapse() {
    if (!this.touched) this.node.open = false;
  }
}

/**
 * A tool call inline: its name, arguments, and (once it ran) its result, marked ✓; or, when
 * the tool reported an error (it raised: the model got "Error: <message>" as its output),
 * "<name> reported an error" and the message, in the card's amber style. That is the
 * tool's answer, not a failure of the page or the run (those are red `.error` alerts).
 */
class ToolCard {
  constructor(parent, call) {
    this.name = call.name || "";
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status", text: "…" });
    this.result = h("pre", {
      class: "tool-result pending",
      "data-testid": "tool-result",
      text: "running…",
    });
    this.node = h(
      "div",
      { class: "tool-call", "data-testid": "tool-call", "data-tool-name": call.name || "" },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-name", text: call.name || "tool" }),
        this.mark,
      ),
      h("pre", {
        class: "tool-arguments",
        "data-testid": "tool-arguments",
        text: prettyArguments(call.arguments),
      }),
      this.result,
    );
    if (call.id) this.node.dataset.toolCallId = call.id;
    parent.append(this.node);
  }

  finish(output, isError) {
    this.result.classList.remove("pending");
    this.node.dataset.status = isError ? "error" : "ok";
    if (!isError) {
      this.node.classList.add("ok");
      this.mark.textContent = "✓";
      this.result.textContent = output ?? "";
      return;
    }
    this.node.classList.add("reported-error");
    this.mark.textContent = "⚠ error";
    const label = h("div", {
      class: "tool-error-label",
      "data-testid": "tool-error-label",
      text: `${this.name || "The tool"} reported an error`,
    });
    this.result.before(label);
    // The label says it is an error: the message without the "Error: " the model got.
    this.result.textContent = (output ?? "").replace(/^Error:\s*/, "");
  }
}

/**
 * The text of an MCP call's or list's error: a string; or an object with a `message`, or
 * with the tool's own `content` (its text parts, as a tool error that the server reported).
 */
function errorText(error) {
  if (typeof error === "string") return error;
  if (error && typeof error.message === "string") return error.message;
  if (error && Array.isArray(error.content)) {
    const texts = error.content.filter((part) => part && typeof part.text === "string");
    if (texts.length) return texts.map((part) => part.text).join("\n");
  }
  return error ? JSON.stringify(error) : "";
}

/**
 * A call of an MCP server the Parley server runs: "server · tool", its arguments, then its
 * output (✓) or its error (amber, as a client tool's). While the call waits for the user's
 * approval (`ask`), the card holds Approve and Deny; the answer goes to `onAnswer(approve)`
 * and the card then shows the call as it runs.
 */
class HostedCard {
  constructor(parent, { server, name, arguments: args }) {
    this.name = name || "tool";
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status", text: "…" });
    this.result = h("pre", {
      class: "tool-result pending",
      "data-testid": "tool-result",
      text: "running…",
    });
    this.node = h(
      "div",
      {
        class: "tool-call hosted",
        "data-testid": "hosted-call",
        "data-server": server || "",
        "data-tool-name": name || "",
      },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-server", "data-testid": "tool-server", text: server || "" }),
        h("span", { class: "tool-name", text: this.name }),
        this.mark,
      ),
      h("pre", {
        class: "tool-arguments",
        "data-testid": "tool-arguments",
        text: prettyArguments(args),
      }),
      this.result,
    );
    parent.append(this.node);
  }

  /** Wait for the user: the question and its two buttons in place of the result. */
  ask(onAnswer) {
    this.node.dataset.status = "waiting";
    this.node.classList.add("waiting");
    this.mark.textContent = "needs approval";
    const approve = h("button", {
      type: "button",
      class: "approve",
      "data-testid": "approve",
      text: "Approve",
    });
    const deny = h("button", { type: "button", class: "deny", "data-testid": "deny", text: "Deny" });
    this.question = h(
      "div",
      { class: "approval", "data-testid": "approval" },
      h("span", {
        class: "approval-text",
        text: "The server wants to run this tool. Run it?",
      }),
      approve,
      deny,
    );
    this.result.replaceWith(this.question);
    const answer = (yes) => {
      approve.disabled = true;
      deny.disabled = true;
      this.answered(yes);
      onAnswer(yes);
    };
    approve.addEventListener("click", () => answer(true));
    deny.addEventListener("click", () => answer(false));
  }

  /** The user answered: the card shows the call running, or denied. */
  answered(approved) {
    this.node.classList.remove("waiting");
    if (this.question) this.question.replaceWith(this.result);
    this.question = null;
    if (approved) {
      this.node.dataset.status = "approved";
      this.mark.textContent = "approved";
      return;
    }
    this.node.dataset.status = "denied";
    this.node.classList.add("denied");
    this.mark.textContent = "denied";
    this.result.classList.remove("pending");
    this.result.textContent = "Not run: you denied this call.";
  }

  /** The call ended: `item` is its `mcp_call` item (output, or error). */
  finish(item) {
    this.result.classList.remove("pending");
    if (!item.error && item.status !== "failed") {
      this.node.dataset.status = "ok";
      this.node.classList.add("ok");
      this.mark.textContent = "✓";
      this.result.textContent = item.output ?? "";
      return;
    }
    this.node.dataset.status = "error";
    this.node.classList.add("reported-error");
    this.mark.textContent = "⚠ error";
    this.result.before(
      h("div", {
        class: "tool-error-label",
        "data-testid": "tool-error-label",
        text: `${this.name} reported an error`,
      }),
    );
    this.result.textContent = errorText(item.error) || "The call failed.";
  }
}

/** The most characters of a passage a card shows (the whole passage is its title). */
const PASSAGE_SHOWN = 600;

/**
 * A search of the conversation's files (a `file_search_call` item): its queries, then each
 * result: the file's name and the passage found. Each result has an id, so that a citation
 * of the answer can link to it.
 */
class FileSearchCard {
  constructor(parent, item) {
    this.id = item.id || "";
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status", text: "searching…" });
    this.queries = h("p", { class: "search-queries", "data-testid": "search-queries" });
    this.results = h("ol", { class: "search-results", "data-testid": "search-results" });
    this.node = h(
      "div",
      {
        class: "tool-call hosted file-search",
        "data-testid": "file-search-call",
        "data-item-id": this.id,
      },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-name", text: "file_search" }),
        this.mark,
      ),
      this.queries,
      this.results,
    );
    this.showQueries(item.queries);
    parent.append(this.node);
  }

  showQueries(queries) {
    const list = Array.isArray(queries) ? queries.filter((q) => typeof q === "string") : [];
    this.queries.textContent = list.length ? `Searched for: ${list.join(" · ")}` : "Searching…";
  }

  /** The search ended: its results (or its error). */
  finish(item) {
    this.showQueries(item.queries);
    const failed = item.status === "failed" || item.error;
    const results = Array.isArray(item.results) ? item.results : null;
    this.node.dataset.status = failed ? "error" : "ok";
    if (failed) {
      this.node.classList.add("reported-error");
      this.mark.textContent = "⚠ error";
      this.results.replaceChildren(
        h("li", { class: "search-result", text: errorText(item.error) || "The search failed." }),
      );
      return;
    }
    this.node.classList.add("ok");
    if (results === null) {
      this.mark.textContent = "✓";
      return;
    }
    this.mark.textContent = `✓ ${results.length} passage${results.length === 1 ? "" : "s"}`;
    const rows = results.map((result, n) => {
      const text = typeof result.text === "string" ? result.text : "";
      const shown = text.length > PASSAGE_SHOWN ? `${text.slice(0, PASSAGE_SHOWN)}…` : text;
      const score = typeof result.score === "number" ? result.score.toFixed(2) : "";
      const row = h(
        "li",
        {
          class: "search-result",
          "data-testid": "search-result",
          "data-file-id": result.file_id || "",
          id: `result-${this.id}-${n}`,
        },
        h("span", { class: "search-file", "data-testid": "search-file", text: result.filename || "" }),
        h("span", { class: "search-score", text: score }),
        h("p", { class: "search-passage", "data-testid": "search-passage", text: shown }),
      );
      if (shown !== text) row.title = text;
      return row;
    });
    this.results.replaceChildren(...rows);
  }
}

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
class CodeCard {
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

/**
 * The assistant's side of one exchange: reasoning, text and tool calls in the order they
 * came, over one or more turns (a tool round trip starts the next turn).
 */
export class AssistantView {
  constructor({ live }) {
    this.node = messageNode("assistant");
    this.node.dataset.state = live ? "streaming" : "done";
    this.live = live;
    this.last = null; // the newest block: text or reasoning goes on in it
    this.blocks = [];
    this.cards = new Map();
    this.hosted = new Map(); // MCP calls by item id, and by approval request id
    this.threadId = null; // the conversation (the code cards' file links name it)
    this.typing = null; // the typing indicator while the answer waits for its first token
  }

  /** Show (at the end of the answer) or remove the typing indicator. */
  waiting(on) {
    if (!on) {
      if (this.typing) this.typing.remove();
      this.typing = null;
      return;
    }
    if (!this.typing) {
      const dots = [1, 2, 3].map(() => h("span", { class: "typing-dot" }));
      this.typing = h(
        "div",
        { class: "typing", "data-testid": "typing", "aria-hidden": "true" },
        ...dots,
      );
    }
    this.node.append(this.typing);
  }

  reasoning(text) {
    if (!(this.last instanceof ReasoningBlock)) {
      this.last = new ReasoningBlock(this.node, { open: this.live });
      this.blocks.push(this.last);
    }
    this.last.append(text);
    if (this.live) frames.mark(this.last);
    else this.last.render();
  }

  content(text) {
    if (!(this.last instanceof MarkdownBlock)) {
      for (const block of this.blocks) if (block instanceof ReasoningBlock) block.collapse();
      const node = h("div", { class: "content", "data-testid": "content" });
      this.node.append(node);
      this.last = new MarkdownBlock(node);
      this.blocks.push(this.last);
    }
    this.last.append(text);
    if (this.live) frames.mark(this.last);
    else this.last.renderWhole();
  }

  toolCall(call) {
    this.last = null;
    const card = new ToolCard(this.node, call);
    if (call.id) this.cards.set(call.id, card);
  }

  toolResult(result) {
    let card = this.cards.get(result.id);
    if (card === undefined) card = new ToolCard(this.node, { id: result.id, name: result.name });
    card.finish(result.output, Boolean(result.is_error));
    this.last = null;
  }

  /** A `hosted_tool` event: a tool list (one line once listed) or an MCP call. */
  hostedTool({ phase, item }) {
    if (!item || typeof item !== "object") return;
    if (item.type === "mcp_list_tools") {
      if (phase !== "done") return;
      const server = item.server_label || "the server";
      const count = Array.isArray(item.tools) ? item.tools.length : 0;
      const failed = item.error || item.status === "failed";
      const text = failed
        ? `Could not list the tools of ${server}: ${errorText(item.error) || "it failed"}`
        : `Listed ${count} tool${count === 1 ? "" : "s"} of ${server}`;
      const node = h("div", { class: "hosted-list", "data-testid": "hosted-list", text });
      node.dataset.server = item.server_label || "";
      if (failed) node.classList.add("failed");
      this.node.append(node);
      this.last = null;
      return;
    }
    if (item.type === "file_search_call") {
      let search = this.hosted.get(item.id);
      if (search === undefined) search = new FileSearchCard(this.node, item);
      if (item.id) this.hosted.set(item.id, search);
      if (phase === "done") search.finish(item);
      this.last = null;
      return;
    }
    if (item.type === "code_interpreter_call") {
      let code = this.hosted.get(item.id);
      if (code === undefined) {
        // The history's card of the model's call, when there is one: the code card replaces it.
        const stale = item.call_id ? this.cards.get(item.call_id) : undefined;
        if (stale) stale.node.remove();
        code = new CodeCard(this.node, item, this.threadId);
      }
      if (item.id) this.hosted.set(item.id, code);
      if (phase === "done") code.finish(item);
      this.last = null;
      return;
    }
    if (item.type !== "mcp_call") return; // approval requests come as `approval` events
    let card = this.hosted.get(item.id) || this.hosted.get(item.approval_request_id);
    if (card === undefined) {
      card = new HostedCard(this.node, {
        server: item.server_label,
        name: item.name,
        arguments: item.arguments,
      });
    }
    if (item.id) this.hosted.set(item.id, card);
    if (phase === "done") card.finish(item);
    this.last = null;
  }

  /** A call that waits for approval (`approval` event): a card with Approve and Deny; a
   * call already asked for keeps its card. */
  approval(data, onAnswer) {
    if (this.hosted.has(data.action_id)) return;
    const stale = data.tool_call_id ? this.cards.get(data.tool_call_id) : undefined;
    if (stale) stale.node.remove(); // the history's card of the same call
    const card = new HostedCard(this.node, {
      server: data.server_label,
      name: data.name,
      arguments: data.arguments,
    });
    card.ask(onAnswer);
    this.hosted.set(data.action_id, card);
    this.last = null;
  }

  /** The answer's citations of the conversation's files: "Sources", each a link to the
   * passage of that file in this answer's search card (the first one found). */
  citations(list) {
    if (!Array.isArray(list) || !list.length) return;
    const links = [];
    const seen = new Set();
    for (const citation of list) {
      if (!citation || typeof citation.file_id !== "string" || seen.has(citation.file_id)) continue;
      seen.add(citation.file_id);
      const selector = `[data-testid="search-result"][data-file-id="${CSS.escape(citation.file_id)}"]`;
      const target = this.node.querySelector(selector);
      const name = citation.filename || (target && target.querySelector(".search-file").textContent);
      const link = h("a", {
        "data-testid": "citation",
        "data-file-id": citation.file_id,
        text: `[${links.length + 1}] ${name || citation.file_id}`,
      });
      if (target) {
        link.href = `#${target.id}`;
        link.addEventListener("click", (event) => {
          event.preventDefault(); // the address keeps the conversation, not the passage
          for (const lit of this.node.querySelectorAll(".search-result.highlight")) {
            lit.classList.remove("highlight");
          }
          target.classList.add("highlight");
          target.scrollIntoView({ block: "nearest" });
        });
      }
      links.push(link);
    }
    if (!links.length) return;
    this.node.append(
      h("div", { class: "citations", "data-testid": "citations" }, h("span", { text: "Sources:" }), ...links),
    );
    this.last = null;
  }

  /** The answer goes on in this message (after an approval): it streams again. */
  resume() {
    this.live = true;
    this.node.dataset.state = "streaming";
    this.last = null;
  }

  error(message, code) {
    this.waiting(false);
    const node = h("div", {
      class: "error",
      "data-testid": "error",
      role: "alert",
      text: message,
    });
    if (code) node.dataset.errorType = code;
    this.node.append(node);
    this.last = null;
  }

  note(className, text) {
    this.node.append(h("div", { class: className, "data-testid": className, text }));
  }

  /**
   * The stream is over: the final rendering of every block. The message's `data-state`
   * becomes "done" once all of it is on screen (a burst may still be rendering).
   */
  finish() {
    this.waiting(false);
    frames.flush();
    const markdown = this.blocks.filter((block) => block instanceof MarkdownBlock);
    let waiting = markdown.length + 1;
    const settled = () => {
      waiting -= 1;
      if (waiting === 0) this.node.dataset.state = "done";
    };
    for (const block of this.blocks) if (block instanceof ReasoningBlock) block.collapse();
    for (const block of markdown) block.finish(settled);
    settled();
  }
}

/** A thread's messages from the server, as the live stream showed them. */
export function renderHistory(messages, threadId) {
  let view = null;
  let answer = null;
  for (const m of messages) {
    if (m.role === "user") {
      userMessage(m.content || "");
      view = null;
      continue;
    }
    if (m.role !== "assistant" && m.role !== "tool") continue;
    if (view === null) {
      view = answer = new AssistantView({ live: false });
      view.threadId = threadId || null;
    }
    if (m.item && (m.item.type === "file_search_call" || m.item.type === "code_interpreter_call")) {
      view.hostedTool({ phase: "done", item: m.item }); // a search or code the server ran
      continue;
    }
    if (m.role === "tool") {
      // The history keeps a tool's output only: a failure is the text the app sent for it.
      const output = m.content || "";
      view.toolResult({ id: m.tool_call_id, output, is_error: output.startsWith("Error:") });
      continue;
    }
    if (m.reasoning) view.reasoning(m.reasoning);
    if (m.content) view.content(m.content);
    for (const call of m.tool_calls || []) view.toolCall(call);
    if (m.citations) view.citations(m.citations);
  }
  return answer;
}
