// DOM helpers of the chat page: building elements, and merging a rendered fragment into
// what is on screen while touching only what changed.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Make `target`'s children look like `source`'s, touching only what differs: a text that
 * grew gets the new characters appended, so the browser lays out and paints only those.
 * (`source` is a sanitised fragment; its nodes are moved into `target` where needed.)
 */
export function morph(target, source) {
  let have = target.firstChild;
  for (const next of [...source.childNodes]) {
    if (have === null) {
      target.append(next);
    } else if (have.nodeType === next.nodeType && have.nodeName === next.nodeName) {
      if (have.nodeType === Node.ELEMENT_NODE) {
        syncAttributes(have, next);
        morph(have, next);
      } else if (have.nodeValue !== next.nodeValue) {
        const old = have.nodeValue;
        if (have.nodeType === Node.TEXT_NODE && next.nodeValue.startsWith(old)) {
          have.appendData(next.nodeValue.slice(old.length));
        } else {
          have.nodeValue = next.nodeValue;
        }
      }
      have = have.nextSibling;
    } else {
      const after = have.nextSibling;
      target.replaceChild(next, have);
      have = after;
    }
  }
  while (have !== null) {
    const after = have.nextSibling;
    have.remove();
    have = after;
  }
}

function syncAttributes(target, source) {
  for (const { name } of [...target.attributes]) {
    if (!source.hasAttribute(name)) target.removeAttribute(name);
  }
  for (const { name, value } of source.attributes) {
    if (target.getAttribute(name) !== value) target.setAttribute(name, value);
  }
}
