// Code a user of the browser package writes, type-checked against its declarations
// (client-wasm/js/index.d.ts) with `tsc --strict`: each known event `type` narrows to
// its data, an unknown one keeps its kind, and each `@ts-expect-error` below must be
// an error (tsc fails on one that is not), so that the declarations cannot widen to
// `any` or `unknown` unseen.

import init, {
  GaplessProducer,
  GaplessSession,
  GaplessStream,
  type GaplessError,
  type SessionEvent,
  type StreamUpdate,
} from "../../js/index.js";

/** What a task board shows of one event: every branch reads its own data's fields. */
export function describe(event: SessionEvent): string {
  switch (event.type) {
    case "container-agent:token":
      return event.data.delta;
    case "container-agent:tool:start":
      return `${event.data.toolName} ${event.data.toolId}`;
    case "container-agent:tool:result":
      return event.data.isError ? `failed in ${event.data.durationMs} ms` : event.data.result;
    case "container-agent:complete":
      return `${event.data.status} after ${event.data.turnCount} turns`;
    case "container-agent:error":
      return `${event.data.error} (${event.data.code ?? "no code"})`;
    case "plan:interaction":
      return event.data.questions.map((q) => q.options.map((o) => o.label).join()).join();
    case "sandbox:stopping":
      return event.data.reason;
    case "topology:agent_spawned":
      return event.data.parentId ?? "root";
    case "unknown":
      return `${event.kind}: ${JSON.stringify(event.data)}`;
    default:
      return event.channel;
  }
}

/** Known types narrow; the data of an unknown one is `unknown` until checked. */
export function mistakes(event: SessionEvent): void {
  if (event.type === "container-agent:token") {
    // @ts-expect-error a token's delta is a string
    const n: number = event.data.delta;
    void n;
    // @ts-expect-error a token has no tool name
    void event.data.toolName;
  }
  if (event.type === "container-agent:tool:start") {
    // @ts-expect-error a tool's input may be any JSON value, not only an object
    void event.data.input.command;
  }
  if (event.type === "sandbox:stopping") {
    // The listed reasons are hints: the schema takes any string there.
    if (event.data.reason === "a reason added later") return;
    // @ts-expect-error so it is not one of them for certain
    const known: "idle_timeout" | "manual" | "error" = event.data.reason;
    void known;
  }
  if (event.type === "unknown") {
    // @ts-expect-error the data of an event of an unknown kind is not typed
    void event.data.delta;
  }
  // @ts-expect-error only an unknown event has a kind
  void event.kind;
  // @ts-expect-error channels are named in camel case
  if (event.channel === "container-agent") return;
  // @ts-expect-error no such event type
  if (event.type === "container-agent:tokens") return;
}

/** Reading a session and a stream, producing, and the errors' codes. */
export async function read(url: string): Promise<string[]> {
  await init();
  const shown: string[] = [];
  const session = new GaplessSession(url, { headers: { authorization: "Bearer t" }, stallAfterMs: 60_000 });
  for await (const update of session) {
    if (update.type === "events") shown.push(...update.events.map(describe));
    if (update.type === "reconnecting") shown.push(update.reason);
    if (update.type === "up-to-date") break;
  }
  const view = session.view();
  if (view.status.state === "failed") shown.push(view.status.error);
  if (view.status.state === "stalled") shown.push(`${view.status.silent_ms}`);
  // @ts-expect-error the status as the events left it is never "stalled"
  if (view.view.status.state === "stalled") return shown;
  shown.push(view.view.lastOffset ?? "no offset", ...view.view.turns.map((t) => t.text));
  session.free();

  const stream = new GaplessStream(url, { offset: "now", live: "long-poll" });
  const stop = stream.subscribe((error: GaplessError | null, update: StreamUpdate | null) => {
    if (error?.code === "CONTINUITY_LOST") shown.push(error.message);
    // @ts-expect-error a failed connection is retried (a "reconnecting" update), no error
    if (error?.code === "NETWORK") shown.push(error.message);
    if (update?.type === "batch") {
      // A batch holds either parsed messages (a JSON stream) or bytes.
      const count = update.messages !== undefined ? update.messages.length : update.bytes.byteLength;
      shown.push(`${count} at ${update.offset} (${update.messages?.length ?? 0} messages)`);
      // @ts-expect-error a batch of messages has no bytes
      if (update.messages !== undefined) shown.push(`${update.bytes.byteLength}`);
    }
  });
  stop();

  const producer = new GaplessProducer(url, { producerId: "p", contentType: "application/json" });
  shown.push((await producer.append({ hello: "world" })) ?? "no offset");
  return shown;
}
