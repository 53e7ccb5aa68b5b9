// What one panel listens to and owns, undone in one call: the reason a closed view leaves no
// listener, timer or blob URL behind.

/**
 * @typedef {object} Scope
 * @property {boolean} closed
 * @property {(target: EventTarget, type: string, fn: (e: any) => void) => void} on
 *   a DOM listener, removed on close
 * @property {(traits: string, fn: () => void) => void} watch
 *   fn on a change of any of these traits ("a b c")
 * @property {(traits: string, fn: () => void) => void} follow
 *   watch, and run fn now to catch up
 * @property {(table: Record<string, import("./types.js").MessageHandler>) => void} messages
 *   kernel -> view messages by type (only the table's own keys, never inherited ones)
 * @property {(fn: () => void) => void} defer     a clean-up to run on close
 * @property {(blob: Blob) => string} url         a blob URL, revoked on close
 * @property {(url: string | null | undefined) => void} drop  revoke one of this scope's URLs now
 * @property {() => void} close
 */

/**
 * @param {import("./types.js").Model} model
 * @returns {Scope}
 */
export function scope(model) {
  const ac = new AbortController();
  /** @type {(() => void)[]} */
  const undo = [];
  /** @type {Set<string>} */
  const urls = new Set();
  /** @param {string} name @param {Function} fn */
  const listen = (name, fn) => {
    model.on(name, fn);
    undo.push(() => model.off(name, fn));
  };
  /** @type {Scope} */
  const s = {
    get closed() {
      return ac.signal.aborted;
    },
    on: (target, type, fn) => target.addEventListener(type, fn, { signal: ac.signal }),
    watch(traits, fn) {
      for (const t of traits.split(" ")) listen(`change:${t}`, fn);
    },
    follow(traits, fn) {
      s.watch(traits, fn);
      fn();
    },
    messages(table) {
      listen("msg:custom", (/** @type {any} */ msg, /** @type {any[]} */ buffers) => {
        if (msg && Object.hasOwn(table, msg.type)) table[msg.type](msg, buffers?.[0]);
      });
    },
    defer(fn) {
      undo.push(fn);
    },
    url(blob) {
      const u = URL.createObjectURL(blob);
      urls.add(u);
      return u;
    },
    drop(u) {
      if (u && urls.delete(u)) URL.revokeObjectURL(u);
    },
    close() {
      ac.abort();
      for (const fn of undo.splice(0).reverse()) fn();
      for (const u of urls) URL.revokeObjectURL(u);
      urls.clear();
    },
  };
  return s;
}

/**
 * A request sent and not yet answered (a double click sends one): given up after a minute
 * (then `onGiveUp()`) in case no answer ever comes.
 * @param {Scope} s
 * @param {string} prefix   of the request ids
 * @param {() => void} onGiveUp
 */
export function inFlight(s, prefix, onGiveUp) {
  /** @type {string | null} */
  let id = null;
  /** @type {any} */
  let timer = 0;
  s.defer(() => clearTimeout(timer));
  return {
    /** The pending request's id, or null. */
    get id() {
      return id;
    },
    /** A new request id, now pending. */
    start() {
      const stamp = Date.now().toString(36);
      id = `${prefix}-${stamp}-${Math.random().toString(36).slice(2, 8)}`;
      clearTimeout(timer);
      timer = setTimeout(() => {
        id = null;
        onGiveUp();
      }, 60000);
      return id;
    },
    /**
     * Whether `msg` answers the pending request (which it then settles).
     * @param {{ request_id?: string }} msg
     */
    answers(msg) {
      if (!id || msg.request_id !== id) return false;
      id = null;
      clearTimeout(timer);
      return true;
    },
  };
}
