// gapless-wasm's JavaScript entry: the wasm-bindgen classes, plus `for await` and
// `subscribe(fn)` on streams and sessions.
import init, { GaplessStream, GaplessSession, GaplessProducer } from "./gapless_wasm.js";

// The subscribers of each stream or session (see `subscribe`), and the error that
// ended one, which a later subscriber hears too (its reading would end quietly).
const hubs = new WeakMap();
const failures = new WeakMap();

for (const Class of [GaplessStream, GaplessSession]) {
  Class.prototype[Symbol.asyncIterator] = function () {
    return {
      next: async () => {
        const value = await this.next();
        return value === null ? { done: true } : { done: false, value };
      },
      return: async () => {
        this.close();
        return { done: true };
      },
    };
  };
  // Every callback subscribed to one object hears each update from when it
  // subscribed: one reading feeds them all. Once the last one unsubscribes, the
  // object is closed, unless another subscribes at once (as React's StrictMode
  // does: subscribe, unsubscribe, subscribe). After a callback's unsubscribe, it is
  // not called again (not even with what was queued before).
  Class.prototype.subscribe = function (callback) {
    let hub = hubs.get(this);
    if (!hub && failures.has(this)) {
      queueMicrotask(() => callback(failures.get(this), null));
      return () => {};
    }
    if (!hub) {
      hub = new Set();
      hubs.set(this, hub);
      // A callback's own exception is its own: reported as an uncaught error, as an
      // event listener's would be, never handed back to it as the stream's, and the
      // reading goes on.
      const tell = (error, update) => {
        for (const listener of [...hub]) {
          if (!listener.live) continue;
          try {
            listener.callback(error, update);
          } catch (thrown) {
            queueMicrotask(() => {
              throw thrown;
            });
          }
        }
      };
      (async () => {
        try {
          for await (const update of this) tell(null, update);
          tell(null, null);
        } catch (error) {
          failures.set(this, error);
          tell(error, null);
        } finally {
          // A later subscriber reads again, and so hears the end at once.
          if (hubs.get(this) === hub) hubs.delete(this);
        }
      })();
    }
    const listener = { callback, live: true };
    hub.add(listener);
    return () => {
      if (!listener.live) return;
      listener.live = false;
      hub.delete(listener);
      // (Not once the object was freed meanwhile: `unsubscribe(); obj.free()`.)
      queueMicrotask(() => {
        if (hub.size === 0 && this.__wbg_ptr) this.close();
      });
    };
  };
}

export default init;
export { init, GaplessStream, GaplessSession, GaplessProducer };
