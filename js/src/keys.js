// Keys pressed inside the widget are the widget's. Without this, JupyterLab's command-mode
// shortcuts act on keys meant for a control: ArrowLeft/Right on the Duration slider move
// the notebook's selection (and collapse a heading), "a" on a checkbox inserts a cell.

/**
 * JupyterLab and Notebook 7 (Lumino) skip their shortcuts for a key whose target sits
 * below an element with data-lm-suppress-shortcuts; other hosts (marimo, Voilà) get no
 * keydown from inside the widget at all. The widget's own key handlers sit on elements
 * inside the root, so they still run.
 * @param {HTMLElement} root
 * @returns {() => void} the cleanup
 */
export function keepKeysInside(root) {
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  /** @param {Event} e */
  const stop = (e) => e.stopPropagation();
  for (const type of ["keydown", "keypress"]) root.addEventListener(type, stop);
  return () => {
    for (const type of ["keydown", "keypress"]) root.removeEventListener(type, stop);
  };
}
