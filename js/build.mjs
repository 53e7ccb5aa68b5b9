// Builds the shipped frontend into framepack_widgets/static/ (ignored by git): the widget's
// ES module and CSS for anywidget, the gallery page's script and CSS, and the classroom
// service's teacher page (its own bundle: none of it weighs on the widget), all minified.
// Run by the Python build (js/hatch_build.py) and by `npm run build`; `--watch` rebuilds on
// every change to js/src/.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const outdir = here("../framepack_widgets/static");

/** @type {import("esbuild").BuildOptions} */
const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  // What anywidget's hosts run on: JupyterLab 4, Notebook 7, marimo, Voilà in a current browser.
  target: ["chrome109", "firefox115", "safari16"],
  outdir,
};

const builds = [
  // anywidget imports the widget's module and reads its default export {initialize, render}.
  { ...common, entryPoints: { widget: here("src/widget.js") }, format: "esm" },
  // The gallery page inlines this script after the elements it reads (a classic script:
  // Chromium loads no module file from a file:// page, and an inline one needs no import).
  { ...common, entryPoints: { gallery: here("src/gallery-page.js") }, format: "iife" },
  // The teacher's page, served by the classroom service (a classic script too: one file).
  { ...common, entryPoints: { teacher: here("src/teacher.js") }, format: "iife" },
  {
    ...common,
    entryPoints: {
      widget: here("src/widget.css"), gallery: here("src/gallery.css"), teacher: here("src/teacher.css"),
    },
  },
];

if (process.argv.includes("--watch")) {
  for (const options of builds) await (await esbuild.context(options)).watch();
  console.log(`watching js/src/, writing ${outdir}`);
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
