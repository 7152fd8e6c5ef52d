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
  Class.prototype.subscribe = function (callback) {
    (async () => {
      try {
        for await (const update of this) callback(null, update);
        callback(null, null);
      } catch (error) {
        callback(error, null);
      }
    })();
    return () => this.close();
  };
}

export default init;
export { init, GaplessStream, GaplessSession, GaplessProducer };
