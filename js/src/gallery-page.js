// The gallery page's script (bundled into framepack_widgets/static/gallery.js and inlined
// by gallery.py into index.html, after the elements it reads): draws the gallery from the
// page's JSON data.

import { renderGallery } from "./gallery.js";

const root = document.getElementById("fpw-gallery");
const data = document.getElementById("fpw-gallery-data");
if (root && data) renderGallery(root, JSON.parse(data.textContent || "{}"));
