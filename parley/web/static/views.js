// The messages of a conversation on the page: the user's, and the assistant's side of an
// exchange (reasoning, Markdown text, tool calls with their results, the calls the Parley
// server runs through their cards in cards.js, and the calls that wait for the user's
// approval) from the live stream or from the history. Model and tool text only ever reaches
// the DOM as sanitised Markdown or as textContent (an MCP server's output and arguments
// included: they are untrusted).

import { HostedCard, prettyArguments, renderHosted } from "./cards.js";
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

  /** A `hosted_tool` event: the item of a call the server runs, through its card
   * (cards.js). */
  hostedTool({ phase, item }) {
    if (!item || typeof item !== "object") return;
    if (renderHosted(this, phase, item)) this.last = null;
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
    if (m.item) {
      view.hostedTool({ phase: "done", item: m.item }); // a call the server ran
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
