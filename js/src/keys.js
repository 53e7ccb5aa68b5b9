// Keys pressed inside the widget are the widget's. Without this, the notebook's command-mode
// shortcuts act on keys meant for a control: ArrowLeft/Right on the Duration slider move
// the notebook's selection (and collapse a heading), "a" on a checkbox inserts a cell.

const SUPPRESS = "data-lm-suppress-shortcuts";
const KEYS = ["keydown", "keypress"];

/**
 * Two hosts, two ways in:
 * - Lumino (JupyterLab, Notebook 7) matches a shortcut's selector against the key's target
 *   and its ancestors, and stops climbing at an element marked data-lm-suppress-shortcuts.
 *   A selector such as `.jp-Notebook.jp-mod-commandMode :focus` matches the focused control
 *   itself, so the mark must be on the control: each one gets it as it takes the focus.
 *   (Notebook 7 reads keys on their way down, before the widget sees them.)
 * - Hosts that read keys on their way up (JupyterLab 4.1+, marimo) get none from the root.
 * The widget's own key handlers sit below the root, so they still run.
 * @param {HTMLElement} root
 * @returns {() => void} the cleanup
 */
export function keepKeysInside(root) {
  root.setAttribute(SUPPRESS, "true");
  /** @param {Event} e */
  const mark = (e) => {
    const target = /** @type {Element} */ (e.target);
    if (target === root || target.hasAttribute?.(SUPPRESS)) return;
    target.setAttribute?.(SUPPRESS, "true");
  };
  /** @param {Event} e */
  const stop = (e) => e.stopPropagation();
  root.addEventListener("focusin", mark);
  for (const type of KEYS) root.addEventListener(type, stop);
  return () => {
    root.removeEventListener("focusin", mark);
    for (const type of KEYS) root.removeEventListener(type, stop);
  };
}
