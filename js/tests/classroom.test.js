// The widget in a class (panels/classroom.js) and the teacher's page (teacher.js).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush } from "./fake.js";

setupDom();
const widget = (await import("../src/widget.js")).default;
const { mountTeacher, teacherApi, dollars } = await import("../src/teacher.js");

let el, cleanup;
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });
function mount(state) {
  const model = new FakeModel(state);
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return { model, root: el };
}
const card = (id, extra = {}) => ({ id, seq: 1, task_id: `task-${id}`, stage: "completed", final: true, prompt: "zoom in",
  negative_prompt: "", duration: 10, cost: 0.3, wall: 12, created: 1, backend: "piapi", has_video: true, ...extra });
const CLASS = { active: true, left: 2.1, total: 3, paused: false, shared: [], v: 1 };

test("outside a class nothing of it shows", async () => {
  const { root } = mount({ backend: "piapi", _history: [card("a")], _history_total: 1, _class: {} });
  await flush();
  assert.equal(root.querySelector(".fpw-class").textContent, "");
  assert.equal(root.querySelectorAll(".fpw-class-share").length, 0);
  assert.equal(byName(root, "Share with class").length, 0);
});

test("in a class: the class budget in the header, Share with class on finished cards", async () => {
  const { model, root } = mount({
    backend: "piapi", _class: CLASS, _history_total: 3,
    _history: [card("a"), card("b", { stage: "processing", has_video: false }), card("c", { task_id: null })],
  });
  await flush();
  assert.equal(root.querySelector(".fpw-class").textContent, "Class budget: $2.10 of $3.00 left");
  const buttons = root.querySelectorAll(".fpw-class-share");
  assert.equal(buttons.length, 1, "only a finished run with a task can be shared");
  const share = byName(root, "Share with class")[0];
  assert.ok(root.querySelector('[data-run-id="a"]').contains(share));
  assert.equal(share.getAttribute("aria-pressed"), "false");
  share.click();
  assert.deepEqual(model.messages("class_share").map((m) => m.content),
    [{ type: "class_share", run_id: "a", shared: true }]);
  assert.equal(share.disabled, true, "until the kernel answers");
  model.update({ _class: { ...CLASS, shared: ["task-a"], v: 2 } });
  await flush();
  assert.equal(share.textContent, "Shared with class");
  assert.equal(share.getAttribute("aria-pressed"), "true");
  assert.equal(share.disabled, false);
  share.click();
  assert.equal(model.messages("class_share")[1].content.shared, false, "a second click takes it out");
  model.update({ _class: { ...CLASS, left: 0, paused: true, v: 3 } });
  await flush();
  assert.match(root.querySelector(".fpw-class").textContent, /\$0\.00 of \$3\.00 left \(class paused\)/);
  model.update({ _history: [card("a"), card("b")] }); // b finished: it can be shared now
  await flush();
  assert.equal(root.querySelectorAll(".fpw-class-share").length, 2);
});

// ------------------------------------------------------------------ the teacher's page

const STUDENTS = [
  { name: "ana", budget_usd: 3, own_budget: false, spent_usd: 0.9, reserved_usd: 0.3, left_usd: 1.8, running: 1, unknown: 0 },
  { name: "<img src=x onerror=alert(1)>", budget_usd: 5, own_budget: true, spent_usd: 0, reserved_usd: 0, left_usd: 5, running: 0, unknown: 1 },
];
function classData(extra = {}) {
  return {
    budget_usd: 3, default_budget_usd: 3, paused: false, max_running: 2, simulated: true, students: STUDENTS,
    running: [{ owner: "ana", task_id: "t-9", prompt: "pan left", duration: 10, status: "processing", state: "active", price_usd: 0.3 }],
    unknown: [{ owner: "<img src=x onerror=alert(1)>", prompt: "zoom", reserved_usd: 0.3, created_ns: 1e18, error: "reset" }],
    ...extra,
  };
}
const GALLERY = {
  title: "Class gallery: 2 shared runs", exported_at: "2026-12-07T10:00:00+00:00", fps: 30, max_compared: 4,
  runs: [
    { run_id: "r1", p: 0, prompt: "zoom in", owner: "ana", stage: "completed", duration: 10, cost_usd: 0.3,
      video: "http://hub/services/framepack/videos/t-1.mp4?sig=ab", simulated: true },
    { run_id: "r2", p: 1, prompt: "pan left", owner: "ben", stage: "completed", duration: 10, cost_usd: 0.3,
      video: "http://hub/services/framepack/videos/t-2.mp4?sig=cd", simulated: true },
  ],
  diffs: { "0,1": [["-", "zoom in"], ["+", "pan left"]], "1,0": [["-", "pan left"], ["+", "zoom in"]] },
};

function fakeApi(state) {
  const calls = [];
  return {
    calls,
    async get(path) {
      calls.push(["GET", path]);
      if (path === "teacher/api/class") return state.cls;
      if (path === "teacher/api/gallery") return state.gallery;
      if (path.endsWith("export")) return new Blob(["zip"]);
      throw new Error(`no ${path}`);
    },
    async post(path, body) { calls.push(["POST", path, body]); if (path.endsWith("pause")) state.cls = { ...state.cls, paused: true }; },
    async put(path, body) {
      calls.push(["PUT", path, body]);
      if (body.budget_usd === -1) throw new Error("budget_usd is a number of dollars >= 0");
    },
  };
}
async function showTeacher(state) {
  el = document.createElement("main");
  document.body.append(el);
  const api = fakeApi(state);
  const downloads = [];
  cleanup = mountTeacher(el, { api, refreshMs: 3_600_000, download: (blob, name) => downloads.push(name) });
  for (let i = 0; i < 5 && el.dataset.loaded !== "true"; i++) await flush();
  return { root: el, api, downloads };
}

test("the teacher sees each student's spend, budget and running tasks, as text", async () => {
  const { root } = await showTeacher({ cls: classData(), gallery: GALLERY });
  const rows = [...root.querySelectorAll(".fpw-teacher-students tbody tr")].map((r) => [...r.cells].map((c) => c.textContent));
  assert.deepEqual(rows[0].slice(0, 7), ["ana", "$3.00 (class)", "$0.90", "$0.30", "$1.80", "1", "0"]);
  assert.equal(rows[1][0], "<img src=x onerror=alert(1)>", "a name is text, never HTML");
  assert.equal(root.querySelectorAll("img").length, 0);
  assert.match(root.querySelector(".fpw-teacher-students").textContent, /2 students · spent \$0\.90 in all/);
  assert.match(root.querySelector(".fpw-teacher-running").textContent, /pan left/);
  assert.match(root.querySelector(".fpw-teacher-unknown").textContent, /reset/);
  assert.match(root.querySelector(".fpw-badge-sim").textContent, /synthetic/);
  assert.equal(root.querySelector(".fpw-teacher-state").textContent, "The class is running");
});

test("the teacher changes budgets, pauses the class and cancels a task", async () => {
  const state = { cls: classData(), gallery: GALLERY };
  const { root, api } = await showTeacher(state);
  const field = byName(root, "Budget of ana (dollars; empty: the class's)")[0];
  field.value = "4.50";
  byName(root, "Save the budget of ana")[0].click();
  await flush();
  assert.deepEqual(api.calls.find((c) => c[0] === "PUT"), ["PUT", "teacher/api/students/ana/budget", { budget_usd: 4.5 }]);
  assert.match(root.querySelector(".fpw-notice").textContent, /ana's budget is \$4\.50/);
  const classBudget = byName(root, "Class budget per student (dollars)")[0];
  classBudget.value = "2";
  byName(root, "Save class budget")[0].click();
  await flush();
  assert.deepEqual(api.calls.filter((c) => c[0] === "PUT")[1], ["PUT", "teacher/api/class", { budget_usd: 2 }]);
  byName(root, "Pause the class")[0].click();
  for (let i = 0; i < 5; i++) await flush();
  assert.ok(api.calls.some((c) => c[0] === "POST" && c[1] === "teacher/api/class/pause"));
  assert.equal(root.querySelector(".fpw-teacher-state").textContent, "The class is paused: no new runs");
  assert.equal(byName(root, "Resume the class").length, 1);
  byName(root, "Cancel the task of ana: pan left")[0].click();
  await flush();
  assert.ok(api.calls.some((c) => c[0] === "POST" && c[1] === "teacher/api/tasks/t-9/cancel"));
  const again = byName(root, "Budget of ana (dollars; empty: the class's)")[0];
  again.value = "lots";
  byName(root, "Save the budget of ana")[0].click();
  assert.match(root.querySelector(".fpw-notice").textContent, /must be dollars/);
});

test("the class gallery: the service's signed video URLs, the lock-step comparison, the export", async () => {
  const { root, downloads } = await showTeacher({ cls: classData(), gallery: GALLERY });
  const videos = root.querySelectorAll(".fpw-gallery-card video");
  assert.deepEqual([...videos].map((v) => v.getAttribute("src")), GALLERY.runs.map((r) => r.video));
  assert.match(root.querySelector(".fpw-gallery-card").textContent, /Studentana/);
  for (const box of root.querySelectorAll(".fpw-gallery-card .fpw-card-check")) { box.checked = true; box.dispatchEvent(new Event("change")); }
  byName(root, "Compare").find((b) => !b.disabled).click();
  const grid = root.querySelector(".fpw-compare");
  assert.equal(grid.hidden, false);
  assert.equal(grid.querySelectorAll("video").length, 2);
  byName(root, "Export gallery (zip)")[0].click();
  await flush();
  assert.deepEqual(downloads, ["class-gallery.zip"]);
});

test("a gallery nobody shared to yet says how students share", async () => {
  const { root } = await showTeacher({ cls: classData({ students: [], running: [], unknown: [] }), gallery: { ...GALLERY, runs: [] } });
  assert.match(root.querySelector(".fpw-teacher-gallery").textContent, /Share with class/);
  assert.equal(byName(root, "Export gallery (zip)")[0].disabled, true);
  assert.match(root.textContent, /No student has used the class service yet/);
});

test("the teacher API sends the xsrf token and says the service's refusals", async () => {
  const seen = [];
  const fetcher = async (path, init) => {
    seen.push([path, init]);
    if (init.method === "PUT") return new Response(JSON.stringify({ code: 400, message: "budget_usd is a number" }), { status: 400 });
    return new Response(JSON.stringify({ code: 200, data: { ok: 1 } }), { status: 200 });
  };
  const api = teacherApi(fetcher, "tok-xsrf");
  assert.deepEqual(await api.get("teacher/api/class"), { ok: 1 });
  await assert.rejects(api.put("teacher/api/class", { budget_usd: -1 }), /budget_usd is a number/);
  assert.ok(seen.every(([, init]) => init.headers["X-XSRFToken"] === "tok-xsrf" && init.credentials === "same-origin"));
  assert.equal(seen[1][1].body, JSON.stringify({ budget_usd: -1 }));
  assert.deepEqual(["3", "$2.50", "", "-1", "x"].map(dollars), [3, 2.5, null, undefined, undefined]);
});
