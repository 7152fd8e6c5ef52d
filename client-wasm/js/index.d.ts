// TypeScript declarations of gapless-wasm.

/** Where the WebAssembly module comes from (by default, beside this file). */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
/** Loads the WebAssembly module; call (and await) once before anything else:
 * `init()`, or `init({ module_or_path })` (the bare form is deprecated). */
export default function init(
  input?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<unknown>;
export { init };

/** Options of a stream or session read. */
export interface ReadOptions {
  /** Start offset: "-1" (default) is the beginning, "now" the tail. */
  offset?: string;
  /** Headers sent on every request (Authorization works: reads use fetch). */
  headers?: Record<string, string>;
  /** Live mode after catching up: "sse" (default), "long-poll", or false (history only). */
  live?: "sse" | "long-poll" | false;
}

/** The stable error code on every Error the package's own checks and reads throw or
 * reject with (a call before `init()` or after `free()` throws the glue's own Error,
 * without one). A read's failed connection is no error: it is retried, and told as a
 * `reconnecting` update (an append's is retried too, and ends as OUTCOME_UNKNOWN
 * when no answer comes). */
export type ErrorCode = "NOT_FOUND" | "AUTH" | "CONTINUITY_LOST" | "CLOSED" | "PROTOCOL" | "STATUS" | "INVALID_ARGUMENT" | "OUTCOME_UNKNOWN" | "FENCED";
export interface GaplessError extends Error { code: ErrorCode; status?: number }

/** A read failed (the connection, a time-out, a status such as 503, an answer with
 * nothing to read: `reason` says which, in words) and is made again from `offset`
 * after a back-off: for showing connection state; nothing is lost or repeated. */
export type Reconnecting = { type: "reconnecting"; offset: string; reason: string };

export type StreamUpdate =
  /** A JSON stream's messages, each parsed. */
  | { type: "batch"; messages: unknown[]; bytes?: never; offset: string; upToDate: boolean }
  /** Any other stream's bytes. */
  | { type: "batch"; bytes: Uint8Array; messages?: never; offset: string; upToDate: boolean }
  | { type: "up-to-date"; offset: string }
  | { type: "closed"; offset: string }
  | Reconnecting;

export class GaplessStream implements AsyncIterable<StreamUpdate> {
  constructor(url: string, options?: ReadOptions);
  /** The next update, or null once the reading has ended: after "closed", after
   * "up-to-date" when `live` is false, after `close()`, or after an error. */
  next(): Promise<StreamUpdate | null>;
  /** Stops reading; aborts the request in flight. Updates not yet taken are dropped:
   * the next is null. */
  close(): void;
  /** Stops reading (as `close()`) and frees the object's memory. */
  free(): void;
  [Symbol.asyncIterator](): AsyncIterator<StreamUpdate>;
  /** Calls back with each update (null at the end) or an error; returns an unsubscribe
   * function. Several callbacks may subscribe: each hears the updates from when it
   * subscribed (use either `subscribe` or `next`/`for await`, not both). Once the last
   * one unsubscribes the stream is closed, unless another subscribes at once. An
   * exception the callback throws is reported as uncaught (as an event listener's
   * is) and the reading goes on. */
  subscribe(callback: (error: GaplessError | null, update: StreamUpdate | null) => void): () => void;
}

interface Ids { taskId: string; sessionId: string }
/** The channel of an event's kind (`default` for a kind of no known channel). */
export type Channel = "containerAgent" | "plan" | "sandbox" | "taskCreation" | "topology" | "terraform" | "default";
/** The values a field is known to take, or any other string: the schema a kind's data
 * is checked against takes any string there (later producers may send new values). */
export type Open<T extends string> = T | (string & {});
/** Every session event kind, as a discriminated union on `type` (`"unknown"` for an
 * event that is not of a known kind with data that fits it, see {@link UnknownEvent}). */
export type SessionEvent = { channel: Channel; timestamp: number | null } & (
  | { type: "container-agent:status"; data: Ids & { stage: Open<"initializing" | "validating" | "credentials" | "injecting_skills" | "creating_sandbox" | "executing" | "running">; message: string } }
  | { type: "container-agent:started"; data: Ids & { model: string; maxTurns: number; sandboxProvider?: string; sandboxContainerId?: string } }
  | { type: "container-agent:token"; data: Ids & { delta: string } }
  | { type: "container-agent:turn"; data: Ids & { turn: number; maxTurns: number; remaining: number } }
  | { type: "container-agent:tool:start"; data: Ids & { toolName: string; toolId: string; input: unknown } }
  | { type: "container-agent:tool:result"; data: Ids & { toolName: string; toolId: string; result: string; isError: boolean; durationMs: number } }
  | { type: "container-agent:message"; data: Ids & { role: Open<"user" | "assistant" | "system">; content: string } }
  | { type: "container-agent:complete"; data: Ids & { status: Open<"completed" | "turn_limit" | "cancelled">; turnCount: number; result?: string } }
  | { type: "container-agent:error"; data: Ids & { error: string; code?: string; turnCount: number } }
  | { type: "container-agent:cancelled"; data: Ids & { turnCount: number } }
  | { type: "container-agent:plan_ready"; data: Ids & { plan: string; turnCount: number; sdkSessionId: string; allowedPrompts?: { tool: Open<"Bash">; prompt: string }[] } }
  | { type: "container-agent:task-update-failed"; data: Ids & { error: string; attemptedStatus: string } }
  | { type: "container-agent:worktree"; data: Ids & { worktreeId: string; branch: string; containerPath: string } }
  | { type: "container-agent:file_changed"; data: Ids & { path: string; action: Open<"create" | "modify" | "delete">; toolName: string; additions?: number; deletions?: number } }
  | { type: "plan:started"; data: { sessionId: string; taskId: string; codespaceId: string } }
  | { type: "plan:turn"; data: { sessionId: string; turnId: string; role: Open<"user" | "assistant">; content: string } }
  | { type: "plan:token"; data: { sessionId: string; delta: string } }
  | { type: "plan:interaction"; data: { sessionId: string; interactionId: string; questions: { question: string; header: string; options: { label: string; description: string }[]; multiSelect: boolean }[] } }
  | { type: "plan:completed"; data: { sessionId: string; issueUrl?: string; issueNumber?: number } }
  | { type: "plan:error"; data: { sessionId: string; error: string; code?: string } }
  | { type: "plan:cancelled"; data: { sessionId: string } }
  | { type: "sandbox:creating"; data: { sandboxId: string; codespaceId?: string; image: string } }
  | { type: "sandbox:ready"; data: { sandboxId: string; codespaceId?: string; containerId: string } }
  | { type: "sandbox:idle"; data: { sandboxId: string; codespaceId?: string; idleSince: number; timeoutMinutes: number } }
  | { type: "sandbox:stopping"; data: { sandboxId: string; codespaceId?: string; reason: Open<"idle_timeout" | "manual" | "error"> } }
  | { type: "sandbox:stopped"; data: { sandboxId: string; codespaceId?: string } }
  | { type: "sandbox:error"; data: { sandboxId: string; codespaceId?: string; error: string; code?: string } }
  | { type: "sandbox:tmux:created"; data: { sandboxId: string; codespaceId?: string; sessionName: string; taskId?: string } }
  | { type: "sandbox:tmux:destroyed"; data: { sandboxId: string; codespaceId?: string; sessionName: string } }
  | { type: "task-creation:started"; data: { sessionId: string; codespaceId: string } }
  | { type: "task-creation:message"; data: { sessionId: string; messageId: string; role: Open<"user" | "assistant">; content: string } }
  | { type: "task-creation:token"; data: { sessionId: string; delta: string } }
  | { type: "task-creation:suggestion"; data: { sessionId: string; suggestion: Suggestion } }
  | { type: "task-creation:questions"; data: { sessionId: string; questions: { id: string; questions: { header: string; question: string; options: { label: string; description?: string }[] }[]; round: number; totalAsked: number; maxQuestions: number } } }
  | { type: "task-creation:processing"; data: { sessionId: string; message?: string } }
  | { type: "task-creation:completed"; data: { sessionId: string; taskId: string; suggestion: Suggestion } }
  | { type: "task-creation:cancelled"; data: { sessionId: string } }
  | { type: "task-creation:error"; data: { sessionId: string; error: string; code?: string } }
  | { type: "topology:agent_spawned"; data: { agentId: string; taskId?: string; name: string; role: string; agentType?: string; parentId: string | null; sdkTaskId?: string } }
  | { type: "topology:agent_progress"; data: { agentId: string; sdkTaskId: string; tokens: number; toolUses: number; durationMs: number; summary?: string; lastToolName?: string } }
  | { type: "topology:agent_completed"; data: { agentId: string; sdkTaskId?: string; status: Open<"completed" | "failed" | "stopped">; summary?: string; tokens?: number; toolUses?: number; durationMs?: number } }
  | { type: "terraform:status"; data: { jobId: string; stage: string; message?: string } }
  | { type: "terraform:text"; data: { jobId: string; delta: string } }
  | { type: "terraform:modules"; data: { jobId: string; modules: Record<string, unknown>[] } }
  | { type: "terraform:questions"; data: { jobId: string; questions: Record<string, unknown>[] } }
  | { type: "terraform:code"; data: { jobId: string; code: string; files?: Record<string, unknown>[] } }
  | { type: "terraform:done"; data: { jobId: string; generatedCode?: string; matchedModules?: unknown; validationResult?: unknown; generatedFiles?: unknown; usage?: { inputTokens: number; outputTokens: number } } }
  | { type: "terraform:error"; data: { jobId: string; error: string; code?: string } }
  | UnknownEvent
);
/** An event of a kind this package does not know, or of a known kind whose data does
 * not fit it (kept as it arrived; the view does not fold it as its kind, but lists a
 * known kind's in `view.errors`, and a malformed terminal event still ends the
 * session): its `kind` is the type it was sent with. A message that is no event envelope at all comes as one too, with
 * `kind` "gapless:not-an-envelope" and the whole message as `data`. Every other
 * `type` promises the shape of its `data`. */
export type UnknownEvent = { type: "unknown"; kind: string; data: unknown };
interface Suggestion { title: string; description: string; labels: string[]; priority: Open<"high" | "medium" | "low"> }

export type SessionUpdate =
  | { type: "events"; events: SessionEvent[]; offset: string }
  | { type: "up-to-date"; offset: string }
  | { type: "closed"; offset: string }
  | Reconnecting;

export type SessionStatus =
  | { state: "pending" } | { state: "running" } | { state: "turn_limit" } | { state: "cancelled" }
  | { state: "initializing"; stage: string; message: string }
  | { state: "completed"; result: string | null }
  | { state: "failed"; error: string; code: string | null }
  | { state: "stalled"; silent_ms: number };

export interface SessionSnapshot {
  /** The status now: "stalled" when a running session has been silent too long. */
  status: SessionStatus;
  view: {
    /** The status as the events left it (never "stalled"). */
    status: Exclude<SessionStatus, { state: "stalled" }>;
    stages: { stage: string; message: string; at: number }[];
    model: string | null; maxTurns: number | null;
    turns: { number: number; text: string }[];
    messages: { role: string; content: string }[];
    tools: { id: string; name: string; input: unknown; turn: number; result: string | null; isError: boolean; durationMs: number | null }[];
    files: { path: string; action: string; additions: number; deletions: number }[];
    errors: { kind: string; error: string; code: string | null }[];
    /** `lastOffset`: the `offset` of the last event that carried one (the server's
     * session API gives each event its offset; events read from the stream itself carry
     * none, unless their producer wrote one). `lastActivity`: when the session was
     * last active, in milliseconds since the epoch (a live event counts when it
     * arrives, one from history at its timestamp, at most now). */
    events: number; lastOffset: string | null; lastActivity: number | null;
  };
}

export class GaplessSession implements AsyncIterable<SessionUpdate> {
  constructor(url: string, options?: ReadOptions & { stallAfterMs?: number });
  next(): Promise<SessionUpdate | null>;
  /** The view folded so far, with "stalled" evaluated now. Events are folded as their
   * updates are taken (`subscribe`, `for await` or `next()`): reading waits while 16
   * updates are not taken, so a page that only polls `view()` must also consume them. */
  view(): SessionSnapshot;
  close(): void;
  /** Stops reading (as `close()`) and frees the object's memory. */
  free(): void;
  [Symbol.asyncIterator](): AsyncIterator<SessionUpdate>;
  subscribe(callback: (error: GaplessError | null, update: SessionUpdate | null) => void): () => void;
}

export class GaplessProducer {
  /** Each producer object takes a new epoch (the time in milliseconds), which fences
   * any earlier object with its `producerId`: keep one object per id and append
   * through it (two made with one id in the same millisecond would share an epoch,
   * and the second's first append would be taken for the first's). */
  constructor(url: string, options?: { producerId?: string; contentType?: string; headers?: Record<string, string> });
  /** Appends one message; resolves to the offset after it once durable (null when the
   * server's answer does not say it). With a JSON content type (the default), any
   * value `JSON.stringify` writes; otherwise a string. Rejects with INVALID_ARGUMENT
   * for another value. Appends are sent one at a time, in call order (those waiting
   * are held in memory: no bound). An append is tried 41 times (the retries paced as
   * the reads' back-off, or by `Retry-After`), then rejects with OUTCOME_UNKNOWN
   * (fetch cannot tell a connection never made from an answer lost): about two
   * minutes when each try is answered or refused at once, longer when tries wait for
   * an answer that does not come (each waits at most 30 s). A redirect is not followed: it rejects with STATUS (status 0 in a
   * browser, where fetch hides the redirect's own). A stream that is gone rejects
   * with NOT_FOUND (status 404, or 410 for one deleted). */
  append(value: unknown): Promise<string | null>;
  /** Frees the object's memory. */
  free(): void;
}
