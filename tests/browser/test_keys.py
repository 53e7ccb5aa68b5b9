"""Keys pressed inside the widget stay in the widget, and its text follows the content font size.

A newcomer's report (issue 16): with the Duration slider focused, ArrowLeft/ArrowRight moved
JupyterLab's notebook selection and collapsed the heading above (the widget vanished); with a
run card's checkbox focused, "a" inserted a cell, so "d d" would have deleted the widget's
cell. Here every control of the widget (text fields, sliders, checkboxes, the select, buttons,
the file inputs behind the image slots' labels) gets the focus in turn and the keys of
JupyterLab's command mode; the controls must act on them (the slider moves, text lands in the
text fields) and the notebook must not (same cells, same active cell, the widget still shown).

Also here: a presenter raising JupyterLab's content font size (Settings > Theme > Increase
Content Font Size, which sets --jp-content-font-size1) makes the widget's text grow, and at
the default size no text in the widget is smaller than 12 px.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from fpw_browser import (
    ARTIFACTS,
    UI_TIMEOUT_MS,
    JupyterServer,
    NotebookPage,
    click_generate,
    select_and_compare,
    wait_stage,
)

# Command-mode shortcuts of JupyterLab and Notebook 7 (a, b: insert a cell; d d: delete it;
# m, y: markdown or code; c, x, v: copy, cut, paste; z: undo) and marimo (a, b, c, x, v).
LETTERS = ["a", "b", "m", "y", "d", "d", "c", "x", "v", "z"]
ARROWS = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"]

# What the notebook around the widget looks like: any key that reached its shortcuts shows here.
NOTEBOOK_STATE_JS = """(root) => {
  const panel = root.closest('.jp-NotebookPanel') || document;
  const cells = [...panel.querySelectorAll('.jp-Cell')];
  return {
    cells: cells.length,
    active: cells.findIndex((c) => c.classList.contains('jp-mod-active')),
    markdown: cells.filter((c) => c.classList.contains('jp-MarkdownCell')).length,
    widgetShown: root.isConnected && root.getClientRects().length > 0,
  };
}"""

# Every control a person can focus in the widget, tagged so the test can find it again.
CONTROLS_JS = """(root) => {
  const out = [];
  for (const e of root.querySelectorAll('button, input, select, textarea, summary, a[href]')) {
    // A file input is visually hidden: its slot's drop zone (with the label) is what shows.
    const shownBy = e.matches('input[type=file]') ? e.closest('.fpw-drop') : e;
    if (e.disabled || !shownBy || !shownBy.getClientRects().length) continue;
    const label = e.getAttribute('aria-label') || (e.labels && e.labels[0] ? e.labels[0].textContent : '')
      || e.textContent || e.title || '';
    e.dataset.fpwKeyTest = String(out.length);
    out.push({tag: e.tagName.toLowerCase(), type: e.getAttribute('type') || '', name: label.trim().replace(/\\s+/g, ' ')});
  }
  return out;
}"""


def kind(control: dict) -> str:
    if control["tag"] == "textarea" or (control["tag"] == "input" and control["type"] in ("url", "text")):
        return "text"
    if control["tag"] == "input" and control["type"] in ("range", "number"):
        return "number"
    if control["tag"] == "input":
        return control["type"]  # checkbox, file
    return control["tag"]  # button, select, summary, a


@pytest.fixture(scope="module")
def nb(browser: Any, lab_server: JupyterServer) -> Iterator[NotebookPage]:
    """The quickstart in JupyterLab with its cells run: one page for the whole module."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    console: list[str] = []
    ctx.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page = ctx.new_page()
    try:
        lab = NotebookPage(page, lab_server).open_lab("quickstart.ipynb")
        lab.run_all()
        lab.widget().wait_for()
        yield lab
    except BaseException:
        (ARTIFACTS / "FAILED-test_keys-console.log").write_text("\n".join(console))
        raise
    finally:
        ctx.close()


def notebook_state(root: Any) -> dict:
    return root.evaluate(NOTEBOOK_STATE_JS)


def focused_inside(root: Any) -> bool:
    return root.evaluate("r => r.contains(document.activeElement)")


def test_no_key_pressed_in_the_widget_reaches_the_notebook(nb: NotebookPage) -> None:
    page = nb.page
    root = nb.widget()
    # Two runs (run cards with checkboxes), their comparison (a select, a seek slider, the
    # Loop checkbox, player buttons) and the Timeline panel open (its own fields): every
    # kind of control the widget has is on screen.
    runs = []
    for prompt in ("the camera zooms in slowly", "the camera pans left"):
        run_id = click_generate(nb, root, prompt)
        wait_stage(nb, root, run_id, ["completed"], idle=False)
        runs.append(run_id)
    select_and_compare(nb, root, runs)
    root.locator("details.fpw-timeline > summary").click()
    root.get_by_label("Segment 1 prompt", exact=True).wait_for()

    controls = root.evaluate(CONTROLS_JS)
    kinds = {kind(c) for c in controls}
    assert {"text", "number", "checkbox", "file", "button", "select", "summary"} <= kinds, kinds
    names = {c["name"] for c in controls}
    for name in ("Prompt", "Negative prompt", "Duration", "Start image", "End image", "Seek", "Playback speed",
                 "Segment 1 prompt", "Segment 1 duration", "Generate", "Compare"):
        assert name in names, f"{name!r} not among the focusable controls: {sorted(names)}"
    assert sum(c["type"] == "checkbox" for c in controls) >= 3, "run cards' checkboxes and Loop"

    root.get_by_label("Duration", exact=True).focus()
    before = notebook_state(root)
    assert before["widgetShown"] and before["active"] >= 0, before
    checked = []
    for index, control in enumerate(controls):
        what = f"{control['tag']}[{control['type']}] {control['name']!r}"
        target = root.locator(f'[data-fpw-key-test="{index}"]')
        if kind(control) == "text":
            original = target.input_value()
            target.fill("")
        target.focus()
        assert target.evaluate("e => e === document.activeElement"), f"{what} did not take the focus"
        for key in LETTERS:
            page.keyboard.press(key)
        if kind(control) == "text":
            assert "".join(LETTERS) in target.input_value(), f"the letters typed did not land in {what}"
        page.keyboard.press("Escape")
        values = [target.input_value()] if kind(control) == "number" else []
        for key in ARROWS[1:2] + ARROWS[:1] + ARROWS[2:]:  # right first: a slider may start at its minimum
            page.keyboard.press(key)
            if kind(control) == "number":
                values.append(target.input_value())
        if kind(control) == "number":
            assert len(set(values)) > 1, f"the arrow keys did not move {what}: {values}"
        if kind(control) in ("text", "number", "checkbox"):
            page.keyboard.press("Enter")  # safe here: a new line, nothing, or a refused URL
        after = notebook_state(root)
        assert after == before, f"keys pressed on {what} reached the notebook: {before} -> {after}"
        assert focused_inside(root), f"the keys pressed on {what} took the focus out of the widget"
        if kind(control) == "text":
            target.fill(original)  # e.g. the prompt, which Generate needs to stay focusable
        checked.append(what)
    print(f"{len(checked)} controls, none let a key through: " + "; ".join(checked))


def test_notebook_7_gets_no_key_from_the_widget_either(page: Any, notebook7_server: JupyterServer) -> None:
    nb = NotebookPage(page, notebook7_server).open_notebook7_from_tree("quickstart.ipynb")
    page = nb.page  # the notebook's own tab
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    slider = root.get_by_label("Duration", exact=True)
    slider.focus()
    before = notebook_state(root)
    start = slider.input_value()
    page.keyboard.press("ArrowRight")
    assert slider.input_value() != start, "the slider did not move"
    for key in [*LETTERS, "Escape", *ARROWS]:
        page.keyboard.press(key)
    prompt = root.get_by_label("Prompt", exact=True)
    prompt.focus()
    for key in ["Escape", *LETTERS]:
        page.keyboard.press(key)
    assert "".join(LETTERS) in prompt.input_value()
    assert notebook_state(root) == before
    assert focused_inside(root)


# The widget's text as a presenter sees it: the root's font size and the smallest text in it.
FONT_SIZES_JS = r"""(root) => {
  const sizes = [];
  for (const e of root.querySelectorAll('*')) {
    if (!e.getClientRects().length) continue;
    const text = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (text) sizes.push([parseFloat(getComputedStyle(e).fontSize), e.className || e.tagName]);
  }
  sizes.sort((a, b) => a[0] - b[0]);
  const hint = root.querySelector('.fpw-card-meta') || root.querySelector('.fpw-session');
  return {root: parseFloat(getComputedStyle(root).fontSize), smallest: sizes[0], hint: parseFloat(getComputedStyle(hint).fontSize),
          content: getComputedStyle(document.documentElement).getPropertyValue('--jp-content-font-size1').trim()};
}"""


def content_font(nb: NotebookPage, root: Any, item: str) -> float:
    """Settings > Theme > `item` (e.g. "Increase Content Font Size"); waits until the widget's
    text size changed and returns it."""
    page = nb.page
    size = root.evaluate("r => parseFloat(getComputedStyle(r).fontSize)")
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.locator(".lm-Menu .lm-Menu-item").filter(has_text=re.compile(r"^\s*Theme\s*$")).first.click()
    page.get_by_role("menuitem", name=item, exact=True).click()
    page.wait_for_function("([r, px]) => parseFloat(getComputedStyle(r).fontSize) !== px",
                           arg=[root.element_handle(), size], timeout=UI_TIMEOUT_MS)
    return root.evaluate("r => parseFloat(getComputedStyle(r).fontSize)")


def test_the_widget_follows_the_content_font_size_a_presenter_raises(nb: NotebookPage) -> None:
    root = nb.widget()
    start = root.evaluate(FONT_SIZES_JS)
    assert start["smallest"][0] >= 12, f"text smaller than 12 px at the default size: {start['smallest']}"
    raised = 0
    try:
        for _ in range(3):
            content_font(nb, root, "Increase Content Font Size")
            raised += 1
        big = root.evaluate(FONT_SIZES_JS)
        print(f"content font {start['content']} -> {big['content']}: widget text {start['root']} -> {big['root']} px, "
              f"card details {start['hint']} -> {big['hint']} px, smallest text {start['smallest'][0]} -> {big['smallest'][0]} px")
        assert big["root"] >= start["root"] + 3, (start, big)
        assert big["hint"] > start["hint"], (start, big)
        assert big["smallest"][0] > start["smallest"][0], (start, big)
    finally:
        for _ in range(raised):
            content_font(nb, root, "Decrease Content Font Size")
    assert root.evaluate(FONT_SIZES_JS)["root"] == start["root"]
