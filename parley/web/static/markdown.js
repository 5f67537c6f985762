// Markdown of the chat page: marked renders it (raw HTML in a message is shown as text),
// DOMPurify sanitises the result before it reaches the DOM, and `MarkdownBlock` renders an
// answer that grows without doing the work again for what is finished.

import { escapeHtml, h, morph } from "./dom.js";
import { frames } from "./frames.js";

const markdown = new marked.Marked({ gfm: true, breaks: false });
markdown.use({
  renderer: {
    // Raw HTML in a message is shown as the text it is, never as markup.
    html(token) {
      const text = escapeHtml(token.text);
      return token.block ? `<p>${text.replace(/\n/g, "<br>")}</p>\n` : text;
    },
  },
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option"],
  FORBID_ATTR: ["style"],
};
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Markdown → a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(markdown.parse(text), PURIFY);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const BLANK = /^[ \t\r]*$/;
// A list item goes on the same list after a blank line: no split before one.
const LIST_ITEM = /^(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)/;
// A link reference definition is used by text before and after it.
const DEFINITION = /^ {0,3}\[[^\]]+\]:/;

/**
 * How much text one frame freezes, in characters: about 6 ms of rendering on this machine
 * (measured as it goes). A burst that brought more is rendered over the next frames.
 */
const freezeBudget = {
  chars: 4096,
  learn(chars, ms) {
    if (ms > 0.5) freezeBudget.chars = Math.min(32768, Math.max(1024, (chars * 6) / ms));
  },
};

/**
 * Markdown that grows: `append` adds text, `render` (once a frame) updates the DOM.
 *
 * A blank line outside a code fence followed by an unindented line that is not a list
 * item ends the blocks before it (a split): they are rendered once into `frozen` and never
 * again. Only the text after the last split is rendered each frame into `tail` (and
 * `morph`ed into it, so a paragraph that only grew gets only its new characters). Lines
 * are scanned once each. A frame freezes at most `freezeBudget.chars`: when a burst brought
 * more, the tail waits until the frozen part has caught up, which may be after the stream
 * ended (`finish` calls back once it has). When the text defines a link reference (used
 * across splits), the whole text is rendered once more at the end, so it comes out as it
 * will after a reload.
 */
export class MarkdownBlock {
  constructor(node) {
    this.node = node;
    this.text = "";
    this.frozen = h("div", { class: "md-frozen" });
    this.tail = h("div", { class: "md-tail" });
    node.append(this.frozen, this.tail);
    this.frozenTo = 0; // text[0:frozenTo] is in `frozen`
    this.splits = []; // confirmed splits after frozenTo, in order
    this.scanned = 0; // complete lines before this offset are scanned
    this.fence = null; // the open fence's marker at `scanned`, e.g. "```"
    this.blankAt = -1; // just after a blank line outside a fence, not yet confirmed
    this.definitions = false; // a link reference definition was seen
    this.renderedLength = 0; // text length the tail was last rendered for
    this.settled = null; // called once the stream is over and all is rendered
  }

  append(text) {
    this.text += text;
  }

  /** Update the DOM; answers the milliseconds spent on the tail (the part not incremental). */
  render() {
    if (this.renderedLength === this.text.length) return 0;
    this.scan();
    if (this.splits.length === 0) return this.renderTail(false);
    let count = 1;
    const budget = freezeBudget.chars;
    while (count < this.splits.length && this.splits[count] - this.frozenTo <= budget) {
      count += 1;
    }
    const upTo = this.splits[count - 1];
    this.splits.splice(0, count);
    const started = performance.now();
    this.frozen.append(renderMarkdown(this.text.slice(this.frozenTo, upTo)));
    freezeBudget.learn(upTo - this.frozenTo, performance.now() - started);
    this.frozenTo = upTo;
    if (this.splits.length === 0) return this.renderTail(true);
    // Still behind: what the tail showed is partly frozen now; it comes back when caught up.
    this.tail.replaceChildren();
    this.renderedLength = -1;
    frames.mark(this);
    return 0;
  }

  renderTail(replace) {
    const started = performance.now();
    const tail = renderMarkdown(this.text.slice(this.frozenTo));
    if (replace) this.tail.replaceChildren(tail);
    else morph(this.tail, tail);
    this.renderedLength = this.text.length;
    if (this.settled !== null) this.settle();
    return performance.now() - started;
  }

  /** The stream is over: `settled()` once everything is rendered (maybe frames later). */
  finish(settled) {
    this.settled = settled;
    this.scan();
    // The last line has no newline to end it: a split before it still counts.
    if (this.renderedLength === this.text.length) this.settle();
    else frames.mark(this);
  }

  settle() {
    if (this.definitions && this.frozenTo > 0) this.renderWhole();
    const settled = this.settled;
    this.settled = null;
    settled();
  }

  /** All the text at once (a message from the history). */
  renderWhole() {
    this.frozen.replaceChildren();
    this.tail.replaceChildren(renderMarkdown(this.text));
    this.splits = [];
    this.frozenTo = 0;
    this.renderedLength = this.scanned = this.text.length;
  }

  scan() {
    const text = this.text;
    let start = this.scanned;
    for (let end = text.indexOf("\n", start); end >= 0; end = text.indexOf("\n", start)) {
      this.scanLine(text.slice(start, end), start);
      start = end + 1;
    }
    this.scanned = start;
  }

  scanLine(line, start) {
    const fence = FENCE.exec(line);
    if (this.fence !== null) {
      const closes =
        fence !== null &&
        fence[1][0] === this.fence[0] &&
        fence[1].length >= this.fence.length &&
        BLANK.test(line.slice(fence[0].length));
      if (closes) this.fence = null;
      return;
    }
    if (BLANK.test(line)) {
      if (this.blankAt < 0) this.blankAt = start;
      return;
    }
    // A line after blank lines: unindented, it starts a new block.
    if (this.blankAt >= 0 && !/^[ \t]/.test(line) && !LIST_ITEM.test(line)) {
      this.splits.push(start);
    }
    this.blankAt = -1;
    if (fence !== null) this.fence = fence[1];
    else if (DEFINITION.test(line)) this.definitions = true;
  }
}
