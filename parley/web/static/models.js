// The model picker: the server's models by provider, the one chosen kept in the browser.

import { h } from "./dom.js";
import { api, el } from "./page.js";

const MODEL_KEY = "parley.model";

/** The model picker, filled from the server (throws a PageError). */
export async function loadModels() {
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

/** Keep the model chosen for the next visit. */
export function bindModels() {
  el.model.addEventListener("change", () => localStorage.setItem(MODEL_KEY, el.model.value));
}
