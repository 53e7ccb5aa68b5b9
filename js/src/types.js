// Shared JSDoc types (no code): what a panel receives and what it may rely on.

/**
 * The anywidget model as the views use it (Backbone-like: get/set/on/off, custom messages).
 * @typedef {object} Model
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} set
 * @property {() => void} save_changes
 * @property {(event: string, fn: Function) => void} on
 * @property {(event: string, fn: Function) => void} off
 * @property {(content: object, callbacks?: any, buffers?: ArrayBuffer[]) => void} send
 */

/**
 * A kernel -> view message's handler: the JSON part and the first binary buffer, if any.
 * @typedef {(msg: any, buffer?: DataView | ArrayBuffer) => void} MessageHandler
 */

/**
 * The media store of one view (media.js): videos and posters as blob URLs it owns.
 * @typedef {object} MediaStore
 * @property {(id: string) => string | undefined} video    blob URL of a run's (or timeline's) video
 * @property {(id: string) => string | undefined} poster   blob URL of a run's poster
 * @property {(id: string) => string | undefined} error    the kernel's video_error message, if any
 * @property {(id: string) => void} request                ask the kernel for the video (once)
 * @property {(id: string) => void} retry                  forget an error and ask again
 * @property {(fn: (what: string, id: string, message?: string) => void) => () => void} subscribe
 *   arrivals: ("video" | "video_error" | "poster", id, message); returns the unsubscribe
 * @property {() => void} close
 */

/**
 * What the panels of one view share (context.js).
 * @typedef {object} Ctx
 * @property {Model} model
 * @property {HTMLElement} root          the view's root element (.fpw-root)
 * @property {string} id                 unique per view: prefixes element ids and requests
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} save     set a trait and sync it
 * @property {(msg: object, buffers?: ArrayBuffer[]) => void} send
 * @property {() => object[]} runs       run cards: the history trait, then older pages
 * @property {object[]} older            older pages of run cards, paged in by History
 * @property {MediaStore} media
 * @property {UrlRules} [urlRules]       which URLs may reach a video's src (default: blob, http(s))
 */

/**
 * @typedef {object} UrlRules
 * @property {boolean} [blob]   blob: URLs (default true)
 * @property {boolean} [local]  plain relative paths inside the page's folder (default false)
 * @property {boolean} [web]    http(s) URLs (default true)
 */

/**
 * A panel builds its part inside `box`, keeps it in step with the model, and returns the
 * cleanup that undoes everything it did.
 * @typedef {(ctx: Ctx, box: HTMLElement) => () => void} Panel
 */

export {};
