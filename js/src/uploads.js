// Images from the browser to the kernel: downscaled here (a 12 MP photo is not sent whole)
// and cut into chunks (some front-ends drop messages around 1 MB).

/**
 * Downscale an image (long side <= maxSide) to a JPEG, at a lower quality if needed to fit
 * in `targetBytes` (one message chunk). A file the browser cannot decode goes as it is,
 * for the kernel to try (or explain).
 * @param {File | Blob} file
 * @param {number} maxSide
 * @param {number} [targetBytes]
 * @returns {Promise<{ buffer: ArrayBuffer, mime: string, width?: number, height?: number }>}
 */
export async function downscale(file, maxSide, targetBytes = Infinity) {
  const asIs = async () => ({
    buffer: await file.arrayBuffer(),
    mime: file.type || "application/octet-stream",
  });
  if (typeof createImageBitmap !== "function") return asIs();
  let bmp;
  try {
    bmp = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return asIs();
  }
  const scale = Math.min(1, maxSide / Math.max(bmp.width, bmp.height));
  const w = Math.max(1, Math.round(bmp.width * scale));
  const hgt = Math.max(1, Math.round(bmp.height * scale));
  /** @type {any} */
  const canvas = typeof OffscreenCanvas === "function"
    ? new OffscreenCanvas(w, hgt)
    : Object.assign(document.createElement("canvas"), { width: w, height: hgt });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, hgt);
  ctx.drawImage(bmp, 0, 0, w, hgt);
  bmp.close?.();
  /** @param {number} quality @returns {Promise<Blob>} */
  const encode = (quality) => canvas.convertToBlob
    ? canvas.convertToBlob({ type: "image/jpeg", quality })
    : new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  let blob;
  for (const quality of [0.9, 0.8, 0.7, 0.55]) {
    blob = await encode(quality);
    if (blob && blob.size <= targetBytes) break;
  }
  return { buffer: await blob.arrayBuffer(), mime: "image/jpeg", width: w, height: hgt };
}

/**
 * Bytes to the kernel in messages of at most `size` bytes; the kernel joins them by
 * upload_id, index and count.
 * @param {(msg: object, buffers: ArrayBuffer[]) => void} send
 * @param {object} head       what every chunk's message carries
 * @param {ArrayBuffer} buffer
 * @param {number} size
 */
export function sendInChunks(send, head, buffer, size) {
  const total = buffer.byteLength;
  const count = Math.max(1, Math.ceil(total / size));
  const upload_id = Math.random().toString(36).slice(2, 10);
  for (let index = 0; index < count; index++) {
    const chunk = buffer.slice(index * size, (index + 1) * size);
    send({ ...head, upload_id, index, count, total }, [chunk]);
  }
}
