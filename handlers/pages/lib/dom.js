// Small DOM helpers both pages' views use. ES module.
//
// API
//   byId(id) -> Element
//   mk(tag, cls, text) -> Element        text (if given) goes in as textContent, never as markup
//   setText(node, text)                  only when it changed (cheap for thousands of cells)

export const byId = (id) => document.getElementById(id);

export function mk(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
