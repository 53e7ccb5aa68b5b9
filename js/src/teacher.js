// The teacher's page of the classroom service: each student's spend, budget and running
// tasks; budgets to change (per student, and the class's), pause and resume, cancel a task,
// the creates whose outcome is unknown; the class gallery (the runs students shared) with
// the widget's own lock-step comparison (gallery.js, panels/comparison.js, sync.js), and its
// export as the offline gallery. Everything comes from the service's teacher API, with the
// xsrf token the page's shell carries; all text goes in through textContent (dom.js).
// Bundled by js/build.mjs into framepack_widgets/static/teacher.js, served by the service.

import { button, h } from "./dom.js";
import { excerpt, money, plural } from "./format.js";
import { renderGallery } from "./gallery.js";

/** The class service's videos: its own http(s) URLs (signed), never a blob or a local path. */
const CLASS_URLS = { blob: false, local: false, web: true };
/** How often the page reads the class again while it is open. */
export const REFRESH_MS = 5000;

/**
 * The teacher API, relative to the page (the service's root): JSON in and out, the xsrf
 * token on every request (HubOAuth checks it on cookie-authenticated requests).
 * @param {typeof fetch} fetcher
 * @param {string} xsrf
 */
export function teacherApi(fetcher, xsrf) {
  /** @param {string} method @param {string} path @param {any} [body] */
  async function call(method, path, body) {
    const answer = await fetcher(path, {
      method,
      credentials: "same-origin",
      headers: { "X-XSRFToken": xsrf, Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (path.endsWith("export")) {
      if (!answer.ok) throw new Error(await reason(answer));
      return answer.blob();
    }
    const json = await answer.json().catch(() => null);
    if (!answer.ok) throw new Error(json?.message || `HTTP ${answer.status}`);
    return json?.data;
  }
  return {
    /** @param {string} path */
    get: (path) => call("GET", path),
    /** @param {string} path @param {any} [body] */
    post: (path, body) => call("POST", path, body ?? {}),
    /** @param {string} path @param {any} body */
    put: (path, body) => call("PUT", path, body),
  };
}

/** @param {Response} answer */
async function reason(answer) {
  const json = await answer.json().catch(() => null);
  return json?.message || `HTTP ${answer.status}`;
}

/**
 * A dollars field: a number >= 0, or null for "the class's budget" when `empty` allows it.
 * @param {string} text
 * @returns {number | null | undefined} undefined: not a usable figure
 */
export function dollars(text) {
  const t = text.trim().replace(/^\$/, "");
  if (!t) return null;
  const n = Number(t);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * A table with a caption, column heads and rows of cells (strings or elements).
 * @param {string} caption @param {string[]} heads @param {any[][]} rows @param {string} empty
 */
function table(caption, heads, rows, empty) {
  if (!rows.length) return h("p.fpw-teacher-empty", { text: empty });
  return h("table.fpw-teacher-table", {},
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {},
      ...cells.map((c, i) => (i ? h("td", {}, c) : h("th", { scope: "row" }, c)))))));
}

/** @param {number | null | undefined} ns */
const when = (ns) => (ns ? new Date(ns / 1e6).toLocaleTimeString() : "");

/**
 * Draw the teacher's page into `root`; returns its cleanup.
 * @param {HTMLElement} root
 * @param {{ api: ReturnType<typeof teacherApi>, refreshMs?: number, download?: (blob: Blob, name: string) => void }} options
 */
export function mountTeacher(root, { api, refreshMs = REFRESH_MS, download = saveFile }) {
  const ac = new AbortController();
  const on = (/** @type {EventTarget} */ el, /** @type {string} */ type, /** @type {any} */ fn) =>
    el.addEventListener(type, fn, { signal: ac.signal });
  const note = h("p.fpw-notice", { role: "status", "aria-live": "polite" });
  const state = h("span.fpw-teacher-state");
  const badge = h("span.fpw-badge", { hidden: true });
  const pause = button("Pause the class", { class: "fpw-primary" });
  const budget = /** @type {HTMLInputElement} */ (h("input.fpw-teacher-money", {
    type: "text", inputmode: "decimal", "aria-label": "Class budget per student (dollars)",
  }));
  const saveBudget = button("Save class budget");
  const students = h("section.fpw-teacher-students", { "aria-label": "Students" });
  const running = h("section.fpw-teacher-running", { "aria-label": "Running tasks" });
  const unknown = h("section.fpw-teacher-unknown", { "aria-label": "Creates whose outcome is unknown" });
  const exportBtn = button("Export gallery (zip)", {
    title: "The shared runs as the offline gallery: a folder that plays in any browser",
  });
  const galleryBox = h("div.fpw-teacher-gallery-box");
  const gallery = h("section.fpw-teacher-gallery", { "aria-label": "Class gallery" },
    h("div.fpw-history-head", {}, h("h2.fpw-h", { text: "Class gallery" }), exportBtn), galleryBox);
  root.replaceChildren(
    h("header.fpw-head", {}, h("h1.fpw-title", { text: "FramePack class" }), badge, state, pause),
    note,
    h("div.fpw-actions.fpw-teacher-budget", {},
      h("label", { text: "Budget per student: ", for: "fpw-class-budget" }), budget, saveBudget),
    h("h2.fpw-h", { text: "Students" }), students,
    h("h2.fpw-h", { text: "Running tasks" }), running,
    h("h2.fpw-h", { text: "Creates whose outcome is unknown" }), unknown,
    gallery);
  budget.id = "fpw-class-budget";
  /** @type {any} */
  let cls = null;
  /** @type {string | null} the gallery's runs as drawn */
  let galleryKey = null;
  /** @type {(() => void) | null} */
  let closeGallery = null;
  let timer = 0;

  /** @param {string} text */
  const say = (text) => {
    note.textContent = text;
  };
  /**
   * Do something at the service, say how it went, and read the class again.
   * @param {() => Promise<any>} work @param {string} done
   */
  async function act(work, done) {
    try {
      await work();
      say(done);
    } catch (e) {
      say(`Not done: ${/** @type {Error} */ (e).message}`);
    }
    await refresh();
  }

  /** @param {any} s one student's row */
  function studentRow(s) {
    const field = /** @type {HTMLInputElement} */ (h("input.fpw-teacher-money", {
      type: "text", inputmode: "decimal", value: s.own_budget ? String(s.budget_usd) : "",
      placeholder: money(cls?.budget_usd), "aria-label": `Budget of ${s.name} (dollars; empty: the class's)`,
    }));
    const save = button("Save", { "aria-label": `Save the budget of ${s.name}` });
    on(save, "click", () => {
      const value = dollars(field.value);
      if (value === undefined) return say(`The budget of ${s.name} must be dollars, 0 or more.`);
      act(() => api.put(`teacher/api/students/${encodeURIComponent(s.name)}/budget`, { budget_usd: value }),
        value === null ? `${s.name} has the class's budget again.` : `${s.name}'s budget is ${money(value)}.`);
    });
    return [s.name, money(s.budget_usd) + (s.own_budget ? "" : " (class)"), money(s.spent_usd),
      money(s.reserved_usd), money(s.left_usd), String(s.running), String(s.unknown || 0),
      h("span.fpw-actions", {}, field, save)];
  }
  /** @param {any} t a running task */
  function runningRow(t) {
    const cancel = button("Cancel", { "aria-label": `Cancel the task of ${t.owner}: ${excerpt(t.prompt, 40)}` });
    on(cancel, "click", () => {
      cancel.disabled = true;
      act(() => api.post(`teacher/api/tasks/${encodeURIComponent(t.task_id)}/cancel`),
        `Asked PiAPI to cancel the task of ${t.owner}.`);
    });
    return [t.owner, excerpt(t.prompt, 80), `${t.duration} s`, t.status || t.state, money(t.price_usd),
      t.task_id ? cancel : "(being sent)"];
  }

  function draw() {
    const c = cls;
    const paused = !!c.paused;
    state.textContent = paused ? "The class is paused: no new runs" : "The class is running";
    state.classList.toggle("fpw-paused", paused);
    pause.textContent = paused ? "Resume the class" : "Pause the class";
    badge.hidden = !c.simulated;
    badge.className = "fpw-badge fpw-badge-sim";
    badge.textContent = "Offline simulator \u2014 videos are synthetic, not FramePack's";
    if (document.activeElement !== budget) budget.value = String(c.budget_usd);
    running.replaceChildren(table("Tasks running now",
      ["Student", "Prompt", "Duration", "Status", "Price", ""], c.running.map(runningRow),
      "No task is running."));
    unknown.replaceChildren(table(
      "Creates PiAPI may or may not have made: their price stays reserved; look for them in PiAPI's task list",
      ["Student", "Prompt", "Price reserved", "Sent at", "What happened"],
      c.unknown.map((/** @type {any} */ t) => [t.owner, excerpt(t.prompt, 80), money(t.reserved_usd),
        when(t.created_ns), t.error || ""]),
      "None."));
    // A budget being typed is not wiped by the next refresh.
    if (document.activeElement?.matches?.("input") && students.contains(document.activeElement)) return;
    const spent = c.students.reduce((/** @type {number} */ a, /** @type {any} */ s) => a + s.spent_usd, 0);
    students.replaceChildren(
      h("p", { text: `${plural(c.students.length, "student")} · spent ${money(spent)} in all · at most `
        + `${plural(c.max_running, "task")} running at once each` }),
      table("Each student's budget and spend",
        ["Student", "Budget", "Spent", "Reserved", "Left", "Running", "Unknown", "Change budget"],
        c.students.map(studentRow), "No student has used the class service yet."));
  }

  async function drawGallery() {
    const data = await api.get("teacher/api/gallery");
    const key = data.runs.map((/** @type {any} */ r) => r.run_id).join();
    exportBtn.disabled = !data.runs.length;
    if (key === galleryKey) return; // the same runs: leave the cards (and a comparison) as they are
    galleryKey = key;
    closeGallery?.();
    galleryBox.replaceChildren();
    if (!data.runs.length) {
      galleryBox.append(h("p.fpw-teacher-empty", { text: "No run is shared yet: students share runs from their "
        + "widget (\u201cShare with class\u201d on a run's card)." }));
      closeGallery = null;
      return;
    }
    closeGallery = renderGallery(galleryBox, data, CLASS_URLS);
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      cls = await api.get("teacher/api/class");
      draw();
      await drawGallery();
      root.dataset.loaded = "true";
    } catch (e) {
      say(`Could not read the class: ${/** @type {Error} */ (e).message}. Trying again shortly.`);
    }
    if (!ac.signal.aborted) timer = setTimeout(refresh, refreshMs);
  }

  on(pause, "click", () => {
    const to = cls?.paused ? "resume" : "pause";
    act(() => api.post(`teacher/api/class/${to}`),
      to === "pause" ? "The class is paused: new runs are refused until you resume it." : "The class is running again.");
  });
  on(saveBudget, "click", () => {
    const value = dollars(budget.value);
    if (value == null) return say("The class budget must be dollars, 0 or more.");
    act(() => api.put("teacher/api/class", { budget_usd: value }),
      `Each student's budget is ${money(value)} (those with their own keep theirs).`);
  });
  on(exportBtn, "click", async () => {
    try {
      download(await api.get("teacher/api/gallery/export"), "class-gallery.zip");
      say("The class gallery is downloading (class-gallery.zip): unzip it and open index.html.");
    } catch (e) {
      say(`Not exported: ${/** @type {Error} */ (e).message}`);
    }
  });
  refresh();
  return () => {
    ac.abort();
    clearTimeout(timer);
    closeGallery?.();
  };
}

/** Hand a blob to the browser as a download. @param {Blob} blob @param {string} name */
function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const root = typeof document !== "undefined" ? document.getElementById("fpw-teacher") : null;
if (root) mountTeacher(root, { api: teacherApi(fetch.bind(globalThis), root.dataset.xsrf || "") });
