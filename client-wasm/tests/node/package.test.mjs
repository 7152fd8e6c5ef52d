// The built gapless-wasm package (client-wasm/pkg) under Node, against a running
// gapless-server whose URL is in GAPLESS_URL and which accepts the bearer token in
// GAPLESS_TOKEN (started by scripts/test-wasm). Run with `node --test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const pkg = new URL("../../pkg/", import.meta.url);
const { default: init, GaplessStream, GaplessSession, GaplessProducer } = await import(new URL("index.js", pkg));
await init({ module_or_path: readFileSync(fileURLToPath(new URL("gapless_wasm_bg.wasm", pkg))) });

const base = process.env.GAPLESS_URL;
const headers = { Authorization: `Bearer ${process.env.GAPLESS_TOKEN}` };
const unique = (name) => `${base}/v1/stream/wasm-${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

async function create(url, contentType = "application/json") {
  const r = await fetch(url, { method: "PUT", headers: { ...headers, "content-type": contentType } });
  assert.ok(r.status === 201 || r.status === 200, `create ${r.status}`);
}

/** Reads {i} messages until `n` arrived, asserting each exactly once and in order. */
async function readSequence(stream, n, onUpToDate) {
  let next = 0;
  let offset = null;
  const timer = setTimeout(() => stream.close(), 30000);
  for await (const u of stream) {
    if (u.type === "batch") {
      for (const m of u.messages) {
        assert.equal(m.i, next, `message ${next} exactly once, in order`);
        next += 1;
      }
      offset = u.offset;
    } else if (u.type === "up-to-date" && onUpToDate) {
      await onUpToDate();
      onUpToDate = null;
    }
    if (next >= n) break;
  }
  clearTimeout(timer);
  assert.equal(next, n, "all messages arrived");
  return offset;
}

for (const live of ["sse", "long-poll"]) {
  test(`history then live without gap (${live}), across server-side connection cuts`, async () => {
    const url = unique(live);
    await create(url);
    const producer = new GaplessProducer(url, { producerId: `p-${live}`, headers });
    for (let i = 0; i < 50; i++) await producer.append({ i });
    const stream = new GaplessStream(url, { live, headers });
    // Once caught up, keep appending for ~2.5 s: the server recycles SSE connections
    // every second, so the stream resumes several times.
    const writer = async () => {
      for (let i = 50; i < 150; i++) {
        await producer.append({ i });
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    // Counts the live reads the package makes (its requests go through fetch).
    const realFetch = globalThis.fetch;
    let liveReads = 0;
    globalThis.fetch = (input, init) => {
      const target = String(input?.url ?? input);
      if (target.startsWith(url) && target.includes(`live=${live}`)) liveReads++;
      return realFetch(input, init);
    };
    let writing;
    try {
      await readSequence(stream, 150, () => { writing = writer(); });
      await writing;
    } finally {
      globalThis.fetch = realFetch;
    }
    stream.close();
    // The reading went on across cut connections (SSE: recycled every second),
    // or polls (long-poll): it was made again and again.
    assert.ok(liveReads >= 2, `${liveReads} live reads`);
  });
}

test("headers reach the server: without the token the read fails with AUTH", async () => {
  const url = unique("auth");
  await create(url);
  await assert.rejects(
    (async () => { for await (const _ of new GaplessStream(url, { live: false })) { /* nothing */ } })(),
    // The message says what failed, whatever the refusal's body held.
    (e) => e.code === "AUTH" && e.status === 401 && e.message.includes("401"),
  );
});

test("an offset that is not a string is refused, not read as the start", () => {
  assert.throws(
    () => new GaplessStream(unique("offset"), { offset: 5, headers }),
    (e) => e.code === "INVALID_ARGUMENT",
  );
});

test("a URL or a header fetch cannot send is refused at once, not retried for ever", () => {
  const invalid = (e) => e.code === "INVALID_ARGUMENT";
  for (const url of ["http://[::1/s", unique("fragment") + "#top", unique("bare") + "#"]) {
    assert.throws(() => new GaplessStream(url, { headers }), invalid, url);
    assert.throws(() => new GaplessProducer(url, { headers }), invalid, url);
  }
  const bad = [{ "X-User": "\u0141ukasz" }, { "X-Line": "a\nb" }, { "Bad Name": "x" }];
  for (const extra of bad) {
    const all = { ...headers, ...extra };
    assert.throws(() => new GaplessStream(unique("headers"), { headers: all }), invalid);
    assert.throws(() => new GaplessProducer(unique("headers"), { headers: all }), invalid);
  }
  assert.throws(
    () => new GaplessProducer(unique("ct"), { headers, contentType: "text/plain\nx: y" }),
    invalid,
  );
});

test("a read that fails is told as reconnecting, from where reading will go on", async () => {
  // Nothing listens there: every read fails to connect, and is retried.
  const stream = new GaplessStream("http://127.0.0.1:9/v1/stream/nowhere", { headers, offset: "-1" });
  const first = await stream.next();
  stream.close();
  assert.equal(first.type, "reconnecting");
  assert.equal(first.offset, "-1");
  assert.equal(typeof first.reason, "string");
  assert.ok(first.reason.length > 0 && !first.reason.includes("undefined"), first.reason);
  assert.equal(await stream.next(), null, "closed: nothing more");
});

test("after unsubscribing, the callback is not called again", async () => {
  const url = unique("unsubscribe");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  for (let i = 0; i < 3; i++) await producer.append({ i });
  const stream = new GaplessStream(url, { headers, live: "long-poll" });
  const calls = [];
  let unsubscribe;
  const first = new Promise((resolve) => {
    unsubscribe = stream.subscribe((error, update) => {
      calls.push(error ?? update);
      resolve();
    });
  });
  await first;
  unsubscribe();
  const seen = calls.length;
  for (let i = 3; i < 6; i++) await producer.append({ i });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(calls.length, seen, `no call after unsubscribing: ${JSON.stringify(calls.slice(seen))}`);
});

test("two subscribers both hear every update, and a subscribe-unsubscribe-subscribe keeps reading", async () => {
  const url = unique("two-subscribers");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  await producer.append({ i: 0 });
  const stream = new GaplessStream(url, { headers, live: "long-poll" });
  // As React's StrictMode runs an effect: subscribe, unsubscribe, subscribe again.
  const dropped = [];
  stream.subscribe((error, update) => dropped.push(update))();
  const heard = [[], []];
  const both = heard.map(
    (list) =>
      new Promise((resolve) => {
        stream.subscribe((error, update) => {
          assert.equal(error, null);
          if (update?.type === "batch") list.push(...update.messages.map((m) => m.i));
          if (list.length === 3) resolve();
        });
      }),
  );
  for (let i = 1; i < 3; i++) await producer.append({ i });
  const late = new Promise((r) => setTimeout(() => r("late"), 5000));
  for (const one of both) assert.notEqual(await Promise.race([one, late]), "late", JSON.stringify(heard));
  stream.close();
  assert.deepEqual(heard, [[0, 1, 2], [0, 1, 2]]);
  assert.deepEqual(dropped, [], "an unsubscribed callback is not called");
});

test("a subscriber that comes after the reading ended hears the end", async () => {
  const url = unique("late-subscriber");
  await create(url);
  const stream = new GaplessStream(url, { headers, live: false });
  const ended = new Promise((resolve) => stream.subscribe((error, update) => { if (update === null) resolve(error); }));
  assert.equal(await ended, null);
  const late = new Promise((resolve) => stream.subscribe((error, update) => resolve({ error, update })));
  const timeout = new Promise((r) => setTimeout(() => r("late"), 5000));
  assert.deepEqual(await Promise.race([late, timeout]), { error: null, update: null });
});

test("a callback that throws is not told its own error, and the reading goes on", async () => {
  const url = unique("throwing");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  await producer.append({ i: 0 });
  const stream = new GaplessStream(url, { headers, live: "long-poll" });
  const uncaught = [];
  const listeners = process.listeners("uncaughtException");
  process.removeAllListeners("uncaughtException");
  process.on("uncaughtException", (e) => uncaught.push(e));
  const calls = [];
  try {
    const batches = new Promise((resolve) => {
      stream.subscribe((error, update) => {
        calls.push(error ? `error: ${error.message}` : update?.type);
        if (update?.type === "batch" && calls.filter((c) => c === "batch").length === 2) resolve();
        if (update?.type === "batch") throw new Error("the callback's own");
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    await producer.append({ i: 1 });
    const late = new Promise((r) => setTimeout(() => r("late"), 5000));
    assert.notEqual(await Promise.race([batches, late]), "late", `second batch: ${JSON.stringify(calls)}`);
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    stream.close();
    process.removeAllListeners("uncaughtException");
    for (const l of listeners) process.on("uncaughtException", l);
  }
  assert.ok(!calls.some((c) => String(c).startsWith("error")), JSON.stringify(calls));
  assert.equal(uncaught.length, 2, "each throw reported as uncaught");
  assert.equal(uncaught[0].message, "the callback's own");
});

test("a closed stream ends the iteration", async () => {
  const url = unique("closed");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  await producer.append({ i: 0 });
  const stream = new GaplessStream(url, { headers });
  const seen = [];
  const reading = (async () => { for await (const u of stream) seen.push(u.type); })();
  await new Promise((r) => setTimeout(r, 200));
  const r = await fetch(url, { method: "POST", headers: { ...headers, "Stream-Closed": "true" } });
  assert.equal(r.status, 204);
  await reading;
  assert.equal(seen.at(-1), "closed");
  await assert.rejects(producer.append({ i: 1 }), (e) => e.code === "CLOSED");
});

test("a stream whose data is gone surfaces CONTINUITY_LOST", async () => {
  const source = unique("gone");
  await create(source);
  await new GaplessProducer(source, { headers }).append({ i: 0 });
  const fork = unique("fork");
  const f = await fetch(fork, { method: "PUT", headers: { ...headers, "content-type": "application/json", "Stream-Forked-From": new URL(source).pathname } });
  assert.equal(f.status, 201);
  assert.equal((await fetch(source, { method: "DELETE", headers })).status, 204);
  await assert.rejects(
    (async () => { for await (const _ of new GaplessStream(source, { headers })) { /* nothing */ } })(),
    (e) => e.code === "CONTINUITY_LOST",
  );
});

test("a session yields typed events and a session view, stalled when silent", async () => {
  const url = unique("session");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  const ids = { taskId: "t", sessionId: "s" };
  // Ten seconds old: silent for longer than one threshold, not the other (no
  // waiting on the clock).
  const at = Date.now() - 10_000;
  const send = (type, data) => producer.append({ type, data: { ...ids, ...data }, timestamp: at });
  await send("container-agent:started", { model: "m", maxTurns: 2 });
  await send("container-agent:turn", { turn: 1, maxTurns: 2, remaining: 1 });
  await send("container-agent:token", { delta: "Hello " });
  await send("container-agent:token", { delta: "world" });
  // A kind the view does not fold, checked against its schema: its own type.
  await send("sandbox:ready", { sandboxId: "x", containerId: "c" });
  await send("robot:dance", { moves: 3 });
  // Known kinds whose data does not fit them (one the view folds, one it only
  // checks): kept, typed as unknown, listed among the view's errors.
  await send("container-agent:token", { delta: 5 });
  await send("sandbox:ready", { sandboxId: 1, containerId: "c" });
  const read = async (stallAfterMs) => {
    const session = new GaplessSession(url, { headers, stallAfterMs });
    const events = [];
    for await (const u of session) {
      if (u.type === "events") events.push(...u.events);
      if (u.type === "up-to-date") break;
    }
    const known = ["container-agent:started", "container-agent:turn", "container-agent:token", "container-agent:token", "sandbox:ready"];
    assert.deepEqual(events.map((e) => e.type), [...known, "unknown", "unknown", "unknown"]);
    assert.deepEqual(events.map((e) => e.kind), [...known.map(() => undefined), "robot:dance", "container-agent:token", "sandbox:ready"]);
    assert.deepEqual(events[4].data, { ...ids, sandboxId: "x", containerId: "c" });
    assert.deepEqual(events[5].data, { ...ids, moves: 3 });
    assert.deepEqual(events[6].data, { ...ids, delta: 5 });
    assert.equal(events[6].channel, "containerAgent");
    assert.deepEqual(events[7].data, { ...ids, sandboxId: 1, containerId: "c" });
    const snap = session.view();
    session.close();
    return snap;
  };
  const patient = await read(60_000);
  assert.equal(patient.status.state, "running");
  assert.equal(patient.view.turns[0].text, "Hello world");
  assert.equal(patient.view.events, 8);
  assert.deepEqual(patient.view.errors.map((e) => e.kind), ["container-agent:token", "sandbox:ready"]);
  assert.equal((await read(5_000)).status.state, "stalled");
});

test("the error that ended a stream reaches a subscriber that comes later too", async () => {
  const stream = new GaplessStream(unique("missing"), { headers });
  const hear = () => new Promise((resolve) => stream.subscribe((error, update) => resolve({ error, update })));
  const first = await hear();
  assert.equal(first.error?.code, "NOT_FOUND", `the first hears why: ${first.error}`);
  const later = await hear();
  assert.equal(later.error?.code, "NOT_FOUND", `a later one too, not a quiet end: ${later.error}`);
  assert.equal(later.update, null);
});

test("an append redirected elsewhere is refused, never read as stored", async () => {
  const { createServer } = await import("node:http");
  const target = unique("redirect-target");
  await create(target);
  // Followed, fetch would send the POST again as a GET, whose 200 would read as stored.
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(302, { location: target }).end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const moved = `http://127.0.0.1:${server.address().port}/v1/stream/moved`;
  try {
    const producer = new GaplessProducer(moved, { producerId: "redirected", headers });
    await assert.rejects(producer.append({ i: 1 }), (e) => e.code === "STATUS" && e.status === 302);
  } finally {
    server.close();
  }
  const r = await fetch(`${target}?offset=-1`, { headers });
  assert.equal(await r.text(), "[]", "nothing was appended");
});

test("an append answered 410 (its stream deleted) is NOT_FOUND, not CONTINUITY_LOST", async () => {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(410, { "content-type": "text/plain" }).end("stream deleted");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const producer = new GaplessProducer(`http://127.0.0.1:${server.address().port}/v1/stream/gone`, { headers });
    await assert.rejects(producer.append({ i: 1 }), (e) => e.code === "NOT_FOUND" && e.status === 410);
  } finally {
    server.close();
  }
});

test("an object closed as soon as it was made sends no request", async () => {
  const url = unique("closed-at-once");
  await create(url);
  const realFetch = globalThis.fetch;
  let reads = 0;
  globalThis.fetch = (input, init) => {
    if (String(input?.url ?? input).startsWith(url)) reads++;
    return realFetch(input, init);
  };
  try {
    for (const Class of [GaplessStream, GaplessSession]) {
      const object = new Class(url, { headers });
      object.close();
      assert.equal(await object.next(), null, Class.name);
    }
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.equal(reads, 0, "requests sent");
});

test("after close(), updates already queued are not yielded: the next is null", async () => {
  const url = unique("queued");
  await create(url);
  const producer = new GaplessProducer(url, { headers });
  for (let i = 0; i < 3; i++) await producer.append({ i });
  for (const Class of [GaplessStream, GaplessSession]) {
    const object = new Class(url, { headers, live: false });
    // The history is read (its first update taken); the up-to-date that follows it
    // is queued by now, not taken.
    const first = await object.next();
    assert.ok(first && first.type !== "up-to-date", `${Class.name}: ${JSON.stringify(first)}`);
    await new Promise((r) => setTimeout(r, 300));
    object.close();
    assert.equal(await object.next(), null, `${Class.name}: nothing after close()`);
  }
});

test("an append waits out a server that is unavailable for twenty seconds", async () => {
  const { createServer } = await import("node:http");
  const target = unique("outage");
  await create(target);
  // 503 for 20 s (past the few retries an append once had), then the real server.
  const until = Date.now() + 20000;
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (Date.now() < until) return res.writeHead(503).end();
    const r = await fetch(target, { method: req.method, headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(r.status, Object.fromEntries(r.headers)).end(Buffer.from(await r.arrayBuffer()));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const producer = new GaplessProducer(`http://127.0.0.1:${server.address().port}/v1/stream/x`, { producerId: "patient", headers });
    const offset = await producer.append({ i: 1 });
    assert.ok(typeof offset === "string" && offset.length > 0, `stored at ${offset}`);
  } finally {
    server.close();
  }
  const r = await fetch(`${target}?offset=-1`, { headers });
  assert.equal(await r.text(), '[{"i":1}]', "stored once");
});

test("freeing an object right after its last unsubscribe throws nothing later", async () => {
  const url = unique("free");
  await create(url);
  const uncaught = [];
  const onError = (e) => uncaught.push(e);
  process.on("uncaughtException", onError);
  try {
    for (const Class of [GaplessStream, GaplessSession]) {
      const object = new Class(url, { headers });
      const unsubscribe = object.subscribe(() => {});
      unsubscribe();
      object.free(); // as a React cleanup, or `using`, does
    }
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    process.off("uncaughtException", onError);
  }
  assert.deepEqual(uncaught.map(String), []);
});
