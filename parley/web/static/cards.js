// The calls the Parley server runs itself (hosted tools) on the page: one card per item
// `type`, in one table (`HOSTED_CARDS`). A `hosted_tool` event carries an item once as its
// call starts and once as it has ended; a thread's history carries the ended item.
//
//   mcp_list_tools         "Listed 3 tools of docs" once listed (or why it could not)
//   mcp_call               "server · tool", its arguments, then its output or its error
//   mcp_approval_request   nothing: the question comes as an `approval` event
//   file_search_call       its queries, then each passage found with its file
//   web_search_call        its query, then each page found
//   code_interpreter_call  its code, then its logs, figures and the files it wrote
//   compaction             nothing: the context was summed up, no call was made
//
// Any other type shows through `unknownCard`: its type and its status. A new kind of hosted
// tool is one more entry in the table. Everything a call carries reaches the DOM as text or
// an attribute: nothing of it is parsed as HTML.

import { CodeCard } from "./code_card.js";
import { h } from "./dom.js";

/** A tool call's arguments as indented JSON (a JSON text is read first). */
export function prettyArguments(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value; // not JSON: shown as the model sent it
    }
  }
  return JSON.stringify(value ?? {}, null, 2);
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
export class HostedCard {
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

/** Its query, then each page found: its title and snippet. */
class WebSearchCard {
  constructor(parent, item) {
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status", text: "searching…" });
    this.query = h("p", { class: "search-queries", "data-testid": "search-queries" });
    this.results = h("ol", { class: "search-results", "data-testid": "search-results" });
    this.node = h(
      "div",
      {
        class: "tool-call hosted web-search",
        "data-testid": "web-search-call",
        "data-item-id": item.id || "",
      },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-name", text: "web_search" }),
        this.mark,
      ),
      this.query,
      this.results,
    );
    this.showQuery(item);
    parent.append(this.node);
  }

  showQuery(item) {
    const query = item.action && typeof item.action.query === "string" ? item.action.query : "";
    this.query.textContent = query ? `Searched for: ${query}` : "Searching…";
  }

  /** The search ended: the pages it found (or its error). */
  finish(item) {
    this.showQuery(item);
    const failed = item.error || item.status === "failed" || item.status === "incomplete";
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
    const pages = Array.isArray(item.pages) ? item.pages.filter((p) => p && typeof p === "object") : [];
    this.mark.textContent = `✓ ${pages.length} page${pages.length === 1 ? "" : "s"}`;
    const rows = pages.map((page) =>
      h(
        "li",
        { class: "search-result", "data-testid": "search-result", title: String(page.url || "") },
        h("span", { class: "search-file", text: String(page.title || page.url || "") }),
        h("p", { class: "search-passage", text: String(page.snippet || "") }),
      ),
    );
    this.results.replaceChildren(...rows);
  }
}

/** A call of a kind this page does not know: its type, then its status (and error). */
class UnknownCard {
  constructor(parent, item) {
    this.mark = h("span", { class: "tool-mark", "data-testid": "tool-status" });
    this.result = h("pre", { class: "tool-result pending", "data-testid": "tool-result" });
    this.node = h(
      "div",
      {
        class: "tool-call hosted",
        "data-testid": "hosted-unknown",
        "data-item-type": String(item.type || ""),
      },
      h(
        "div",
        { class: "tool-call-head" },
        h("span", { class: "tool-name", text: String(item.type || "hosted tool") }),
        this.mark,
      ),
      this.result,
    );
    this.show(item);
    parent.append(this.node);
  }

  show(item) {
    const status = typeof item.status === "string" && item.status ? item.status : "";
    const error = errorText(item.error);
    const failed = Boolean(error) || ["failed", "incomplete", "cancelled"].includes(status);
    const ok = !failed && status === "completed";
    this.node.dataset.status = failed ? "error" : ok ? "ok" : "running";
    this.node.classList.toggle("ok", ok);
    this.node.classList.toggle("reported-error", failed);
    this.mark.textContent = failed ? "⚠ error" : ok ? "✓" : "…";
    this.result.textContent = error ? `${status || "failed"}: ${error}` : status || "running…";
  }

  finish(item) {
    this.result.classList.remove("pending");
    this.show(item);
  }
}

/**
 * The card of `item` in `view` (an `AssistantView`): the one its id already has, or a new one
 * that `make()` makes; finished once the call has ended.
 */
function keptCard(view, phase, item, make) {
  let card = view.hosted.get(item.id);
  if (card === undefined) card = make(item);
  if (item.id) view.hosted.set(item.id, card);
  if (phase === "done") card.finish(item);
  return true;
}

/** A server's tool list: one line once listed. */
function listed(view, phase, item) {
  if (phase !== "done") return false;
  const server = item.server_label || "the server";
  const count = Array.isArray(item.tools) ? item.tools.length : 0;
  const failed = item.error || item.status === "failed";
  const text = failed
    ? `Could not list the tools of ${server}: ${errorText(item.error) || "it failed"}`
    : `Listed ${count} tool${count === 1 ? "" : "s"} of ${server}`;
  const node = h("div", { class: "hosted-list", "data-testid": "hosted-list", text });
  node.dataset.server = item.server_label || "";
  if (failed) node.classList.add("failed");
  view.node.append(node);
  return true;
}

/** An MCP call: the card its approval request made, if any. */
function mcpCall(view, phase, item) {
  let card = view.hosted.get(item.id) || view.hosted.get(item.approval_request_id);
  if (card === undefined) {
    card = new HostedCard(view.node, {
      server: item.server_label,
      name: item.name,
      arguments: item.arguments,
    });
  }
  if (item.id) view.hosted.set(item.id, card);
  if (phase === "done") card.finish(item);
  return true;
}

/** A code interpreter call: its card replaces the history's card of the model's call. */
function codeCall(view, phase, item) {
  return keptCard(view, phase, item, () => {
    const stale = item.call_id ? view.cards.get(item.call_id) : undefined;
    if (stale) stale.node.remove();
    return new CodeCard(view.node, item, view.threadId);
  });
}

const nothing = () => false;

/**
 * The card of each kind of hosted item, by its `type`: `render(view, phase, item)` shows the
 * item in `view` (an `AssistantView`) as its call starts (`phase` "started") or once it has
 * ended ("done"), and answers whether it put something on the page.
 */
export const HOSTED_CARDS = {
  mcp_list_tools: listed,
  mcp_call: mcpCall,
  mcp_approval_request: nothing,
  file_search_call: (view, phase, item) =>
    keptCard(view, phase, item, () => new FileSearchCard(view.node, item)),
  web_search_call: (view, phase, item) =>
    keptCard(view, phase, item, () => new WebSearchCard(view.node, item)),
  code_interpreter_call: codeCall,
  compaction: nothing,
};

/** The card of a type not in `HOSTED_CARDS`: its type and its status. */
export function unknownCard(view, phase, item) {
  return keptCard(view, phase, item, () => new UnknownCard(view.node, item));
}

/** Show a hosted item through its card; whether something went on the page. */
export function renderHosted(view, phase, item) {
  const type = typeof item.type === "string" ? item.type : "";
  const render = Object.hasOwn(HOSTED_CARDS, type) ? HOSTED_CARDS[type] : unknownCard;
  return render(view, phase, item);
}
