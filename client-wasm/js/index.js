// gapless-wasm's JavaScript entry: the wasm-bindgen classes, plus `for await` and
// `subscribe(fn)` on streams and sessions.
import init, { GaplessStream, GaplessSession, GaplessProducer } from "./gapless_wasm.js";

for (const Class of [GaplessStream, GaplessSession]) {
  Class.prototype[Symbol.asyncIterator] = function () {
    return {
      next: async () => {
        const value = await this.next();
        return value === null ? { done: true, value: undefined } : { done: false, value };
      },
      return: async () => {
        this.close();
        return { done: true, value: undefined };
      },
    };
  };
  // After the returned unsubscribe function is called, the callback is not called again
  // (not even with what was queued before).
  Class.prototype.subscribe = function (callback) {
    let live = true;
    // The callback's own exception is its own: reported as an uncaught error, as an
    // event listener's would be, never handed back to it as the stream's, and the
    // reading goes on.
    const tell = (error, update) => {
      if (!live) return;
      try {
        callback(error, update);
      } catch (thrown) {
        queueMicrotask(() => {
          throw thrown;
        });
      }
    };
    (async () => {
      try {
        for await (const update of this) tell(null, update);
        tell(null, null);
      } catch (error) {
        tell(error, null);
      }
    })();
    return () => {
      live = false;
      this.close();
    };
  };
}

export default init;
export { init, GaplessStream, GaplessSession, GaplessProducer };
