//! The optional subscription APIs of §6–7 under `/v1/stream/__ds/`: subscriptions
//! that link streams (explicitly or by glob), wake a webhook (signed with Ed25519,
//! keys published as JWKS) or a pull-wake worker pool when linked streams have
//! unacknowledged data, with leases and generation fencing.
//!
//! Subscriptions are kept in memory: they do not survive a restart.

mod glob;
mod routes;
mod signing;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{debug, warn};

pub(crate) use routes::route;
use signing::Signer;

use crate::http::auth::TokenDigest;
use crate::http::AppState;
use crate::store::{
    format_offset, now_ms, resolve_offset, AppendReq, BadOffset, Payload, ReadFrom,
};

/// How a subscription is woken.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// POST a signed notification to a URL.
    Webhook { url: String },
    /// Append a wake event to a stream that workers read, then let one claim it.
    PullWake { wake_stream: String },
}

/// One linked stream.
#[derive(Clone, Debug, Default)]
struct Link {
    explicit: bool,
    glob: bool,
    /// The acknowledged position, in the stream of epoch `epoch`.
    acked: u64,
    /// The epoch of the stream `acked` is a position of (see
    /// [`crate::store::StreamMeta::epoch`]): once the path holds another stream,
    /// nothing of it is acknowledged.
    epoch: u64,
}

impl Link {
    /// A link to the stream at `path`, acknowledged up to its tail now.
    fn at_tail(state: &AppState, path: &str) -> Link {
        Link {
            explicit: false,
            glob: false,
            acked: tail_of(state, path),
            epoch: epoch_of(state, path),
        }
    }

    /// The acknowledged position in the stream now at `path`: 0 if it is another
    /// stream than the one acknowledged (created again since).
    fn acked(&self, state: &AppState, path: &str) -> u64 {
        if epoch_of(state, path) == self.epoch {
            self.acked
        } else {
            0
        }
    }
}

#[derive(Debug)]
struct Sub {
    id: String,
    kind: Kind,
    pattern: Option<String>,
    lease_ttl_ms: u64,
    description: Option<String>,
    created_at: String,
    config: String,
    links: BTreeMap<String, Link>,
    failed: bool,
    /// Webhook deliveries failed in a row, across wakes: the back-off goes on
    /// growing when a lease runs out and the next wake is sent.
    failures: u32,
    generation: u64,
    wake_id: Option<String>,
    /// Each linked stream's epoch and tail when the wake began.
    snapshot: BTreeMap<String, (u64, u64)>,
    holder: Option<String>,
    /// When the current wake's lease ends (each ack moves it on).
    lease_until: Option<tokio::time::Instant>,
    /// The generation whose lease timer runs (one task per wake, not per ack).
    lease_timer: Option<u64>,
    /// That timer's task, stopped when its wake ends (else it slept on until the
    /// lease's end: with long leases and quick wakes, tasks piled up).
    lease_task: Option<tokio::task::AbortHandle>,
    /// What the token that made it covers (none without tokens): its pattern links
    /// only streams in it.
    scope: Option<crate::http::auth::Scope>,
}

/// Whether a subscription with `pattern`, made by a token covering `scope`, links the
/// stream at `path` by its pattern: a match, not one of the server's own (`__ds/`),
/// not its own wake stream `wake` (each wake event would wake it again, for good),
/// and in the scope.
fn may_link(
    pattern: &str,
    scope: Option<&crate::http::auth::Scope>,
    wake: Option<&str>,
    path: &str,
) -> bool {
    !path.starts_with("__ds/")
        && wake != Some(path)
        && glob::matches(pattern, path)
        && scope.is_none_or(|s| s.covers(path))
}

impl Kind {
    /// The stream its wake events go to (pull-wake).
    fn wake_stream(&self) -> Option<&str> {
        match self {
            Kind::PullWake { wake_stream } => Some(wake_stream),
            Kind::Webhook { .. } => None,
        }
    }
}

/// Work to do outside the lock after a wake was created.
enum WakeWork {
    Deliver {
        sub: String,
        wake_id: String,
        body: String,
        url: String,
    },
    Append {
        sub: String,
        wake_id: String,
        wake_stream: String,
        event: String,
    },
}

/// How many of a subscription's latest wakes keep their callback tokens once ended.
const KEPT_TOKEN_GENERATIONS: u64 = 16;

/// All subscriptions, the signing key, and the callback tokens issued.
pub struct Registry {
    subs: Mutex<HashMap<String, Sub>>,
    tokens: Mutex<HashMap<TokenDigest, (String, u64)>>,
    signer: Signer,
    http: reqwest::Client,
    /// Webhooks may be `http://` to loopback (`--webhooks-to-loopback`).
    loopback: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kid", &self.signer.kid())
            .finish()
    }
}

/// The current tail of a stream (0 when it does not exist).
fn tail_of(state: &AppState, path: &str) -> u64 {
    state
        .store
        .shared()
        .get(path)
        .map(|l| l.meta())
        .filter(|m| !m.deleted)
        .map_or(0, |m| m.tail)
}

/// The epoch of the stream at `path` (see [`crate::store::StreamMeta::epoch`]); 0
/// when there is none.
pub(crate) fn epoch_of(state: &AppState, path: &str) -> u64 {
    state.store.shared().get(path).map_or(0, |l| l.meta().epoch)
}

/// The offset of `pos` in the stream at `path` (see [`crate::store::StreamMeta::offset`]).
pub(crate) fn offset_of(state: &AppState, path: &str, pos: u64) -> String {
    match state.store.shared().get(path) {
        Some(live) => live.meta().offset(pos),
        None => format_offset(0, pos),
    }
}

/// Reads `offset` as an offset of the stream at `path` (see [`StreamMeta::resolve`]).
///
/// [`StreamMeta::resolve`]: crate::store::StreamMeta::resolve
pub(crate) fn resolve_at(
    state: &AppState,
    path: &str,
    offset: &str,
) -> Result<ReadFrom, BadOffset> {
    match state.store.shared().get(path) {
        Some(live) => live.meta().resolve(offset),
        None => resolve_offset(offset, 0, &[]),
    }
}

fn random_hex(bytes: usize) -> String {
    signing::random_bytes(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The most of a webhook's answer read for its `{"done": true}`.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Whether a webhook's answer says `{"done": true}`; an answer past
/// [`MAX_ANSWER_BYTES`] says nothing (it is not held whole).
async fn said_done(mut answer: reqwest::Response) -> bool {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return false;
        }
    }
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("done").and_then(Value::as_bool))
        == Some(true)
}

/// Whether an address is a public one a webhook may be sent to: not loopback,
/// private, link-local, shared (100.64/10), unspecified, broadcast, documentation,
/// benchmarking (198.18/15), protocol-assignment (192.0.0/24), multicast or
/// reserved (240/4); for IPv6, not unique-local, link-local, site-local or
/// multicast, and one that carries an IPv4 address (mapped, compatible, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) only when that address is public.
pub(super) fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => {
            let [first, second, third, _] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || first == 0
                || first >= 240
                || (first == 100 && (64..128).contains(&second))
                || (first == 198 && (second & 0xfe) == 18)
                || (first == 192 && second == 0 && third == 0))
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // An IPv4 address it carries, which is what it reaches.
            let carried = if let Some(v4) = a.to_ipv4_mapped() {
                Some(v4)
            } else if (s[..6] == [0; 6] && !a.is_loopback() && !a.is_unspecified())
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                // IPv4-compatible, or NAT64.
                Some(embedded(s[6], s[7]))
            } else if s[0] == 0x2002 {
                Some(embedded(s[1], s[2]))
            } else {
                None
            };
            if let Some(v4) = carried {
                return is_public(std::net::IpAddr::V4(v4));
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0)
        }
    }
}

/// The webhook client's resolver: a name's public addresses only (`localhost` keeps
/// its loopback ones when webhooks may go to loopback), so that a public name that
/// resolves to a private address is not called.
struct PublicOnly {
    loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let loopback = self.loopback;
        Box::pin(async move {
            let local = host == "localhost" || host.ends_with(".localhost");
            if local && !loopback {
                return Err(format!("{host}: webhooks may not go to loopback").into());
            }
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<std::net::SocketAddr> = found
                .filter(|a| {
                    if local {
                        a.ip().is_loopback()
                    } else {
                        is_public(a.ip())
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves to no address a webhook may be sent to").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Registry {
    /// A registry with a fresh signing key, whose webhooks may be `http://` to
    /// loopback if `loopback` (otherwise https to public hosts only).
    pub fn new(loopback: bool) -> Result<Registry, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            // A public webhook must not hand the server on to a private address.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly { loopback }))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Registry {
            subs: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            signer: Signer::generate()?,
            http,
            loopback,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sub>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue_token(&self, sub: &str, generation: u64) -> String {
        let token = random_hex(24);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(TokenDigest::of(&token), (sub.to_owned(), generation));
        token
    }

    /// Forgets the callback tokens issued for `sub` up to `generation` (wakes long
    /// ended), or all of them (`None`).
    fn forget_tokens(&self, sub: &str, generation: Option<u64>) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (s, g)| s != sub || generation.is_some_and(|up_to| *g > up_to));
    }

    fn token_generation(&self, sub: &str, token: &str) -> Option<u64> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&TokenDigest::of(token))
            .filter(|(s, _)| s == sub)
            .map(|(_, g)| *g)
    }

    /// Called after the stream at `path` was deleted (or removed for good once
    /// expired, see [`crate::store::Shared::on_removed`]): subscriptions that linked it
    /// only by their pattern let it go (a pattern over streams made and deleted in
    /// turn, one per session say, grew its links without end); an explicit link is
    /// kept, for a stream made again there.
    pub fn on_delete(&self, path: &str) {
        let mut subs = self.lock();
        for sub in subs.values_mut() {
            if sub.links.get(path).is_some_and(|link| !link.explicit) {
                sub.links.remove(path);
                sub.snapshot.remove(path);
            }
        }
    }

    /// Called after every committed append (or create with data) to `path`: links
    /// newly matching streams and wakes subscriptions with pending work.
    pub fn on_append(self: &Arc<Self>, state: &AppState, path: &str) {
        if path.starts_with("__ds/") {
            return;
        }
        let mut work = Vec::new();
        {
            let mut subs = self.lock();
            // A stream removed (or deleted, kept for its forks) since the append is
            // not linked again: looked at (only for a pattern that would link it)
            // under the lock `on_delete` takes, after its removal is marked, so that
            // a removal is either seen here or undoes what is linked here.
            let gone = || {
                state
                    .store
                    .shared()
                    .get(path)
                    .is_none_or(|live| live.current().is_none())
            };
            for sub in subs.values_mut() {
                if sub
                    .pattern
                    .as_deref()
                    .is_some_and(|p| may_link(p, sub.scope.as_ref(), sub.kind.wake_stream(), path))
                    && !gone()
                {
                    sub.links.entry(path.to_owned()).or_default().glob = true;
                }
                if sub.links.contains_key(path)
                    && sub.wake_id.is_none()
                    && sub.holder.is_none()
                    && pending(state, sub)
                {
                    work.push(self.create_wake(state, sub, path));
                }
            }
        }
        self.run(state, work);
    }

    /// Starts a wake for `sub` (which must have none): a new generation, a snapshot of
    /// the tails, and the delivery or wake event to send.
    fn create_wake(self: &Arc<Self>, state: &AppState, sub: &mut Sub, trigger: &str) -> WakeWork {
        sub.generation += 1;
        let wake_id = format!("w_{}", random_hex(12));
        sub.wake_id = Some(wake_id.clone());
        sub.snapshot = sub
            .links
            .keys()
            .map(|p| (p.clone(), (epoch_of(state, p), tail_of(state, p))))
            .collect();
        match sub.kind.clone() {
            Kind::Webhook { url } => {
                let token = self.issue_token(&sub.id, sub.generation);
                self.start_lease(state, sub);
                let body = json!({
                    "subscription_id": sub.id,
                    "wake_id": wake_id,
                    "generation": sub.generation,
                    "streams": listing(state, sub),
                    "callback_url": format!("{}/v1/stream/__ds/subscriptions/{}/callback", state.base_url(), sub.id),
                    "callback_token": token,
                });
                WakeWork::Deliver {
                    sub: sub.id.clone(),
                    wake_id,
                    body: body.to_string(),
                    url,
                }
            }
            Kind::PullWake { wake_stream } => WakeWork::Append {
                sub: sub.id.clone(),
                wake_id: wake_id.clone(),
                wake_stream,
                event: json!({
                    "type": "wake",
                    "subscription_id": sub.id,
                    "stream": trigger,
                    "generation": sub.generation,
                    "wake_id": wake_id,
                    "ts": now_ms(),
                })
                .to_string(),
            },
        }
    }

    /// Carries out wake work: deliveries and wake-stream appends, in the background.
    fn run(self: &Arc<Self>, state: &AppState, work: Vec<WakeWork>) {
        for w in work {
            let registry = Arc::clone(self);
            let state = state.clone();
            tokio::spawn(async move {
                match w {
                    WakeWork::Deliver {
                        sub,
                        wake_id,
                        body,
                        url,
                    } => {
                        registry.deliver(&state, &sub, &wake_id, &body, &url).await;
                    }
                    WakeWork::Append {
                        sub,
                        wake_id,
                        wake_stream,
                        event,
                    } => {
                        let req = AppendReq {
                            path: wake_stream.clone(),
                            content_type: Some("application/json".into()),
                            body: Some(Payload::json([event.as_str()])),
                            close: false,
                            stream_seq: None,
                            producer: None,
                        };
                        if let Err(e) = state.store.append(req).await {
                            warn!(stream = %wake_stream, "cannot append the wake event: {e}");
                            // Nobody can hear of this wake: unless a worker claimed
                            // it meanwhile (the claim told it), it ends, so that the
                            // next commit makes one (rather than none ever again).
                            let mut subs = registry.lock();
                            if let Some(s) = subs.get_mut(&sub).filter(|s| {
                                s.wake_id.as_deref() == Some(wake_id.as_str()) && s.holder.is_none()
                            }) {
                                s.wake_id = None;
                                s.snapshot.clear();
                            }
                        }
                    }
                }
            });
        }
    }

    /// Posts a signed webhook, retrying with backoff while the wake is current.
    async fn deliver(
        self: &Arc<Self>,
        state: &AppState,
        sub: &str,
        wake_id: &str,
        body: &str,
        url: &str,
    ) {
        // Failures before this wake (whose lease ran out while they were retried)
        // count: its first call waits the back-off they reached, so that a dead
        // webhook is called once per back-off, not once per lease.
        let mut attempt = self.lock().get(sub).map_or(0, |s| s.failures);
        loop {
            if attempt > 0 {
                tokio::time::sleep(retry_delay(attempt)).await;
                // A wake whose lease ran out meanwhile is not sent again: its
                // successor is.
                let current = self
                    .lock()
                    .get(sub)
                    .is_some_and(|s| s.wake_id.as_deref() == Some(wake_id));
                if !current {
                    return;
                }
            }
            let t = now_ms() / 1000;
            let signature = self.signer.sign(format!("{t}.{body}").as_bytes());
            let header = format!("t={t},kid={},ed25519={signature}", self.signer.kid());
            let sent = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-signature", header)
                .body(body.to_owned())
                .send()
                .await;
            let ok = match sent {
                Ok(r) if r.status().is_success() => {
                    let done = said_done(r).await;
                    let work = {
                        let mut subs = self.lock();
                        let Some(s) = subs.get_mut(sub) else { return };
                        s.failed = false;
                        s.failures = 0;
                        if done && s.wake_id.as_deref() == Some(wake_id) {
                            for (path, (epoch, tail)) in std::mem::take(&mut s.snapshot) {
                                if let Some(link) = s.links.get_mut(&path) {
                                    // What the wake covered, in the stream it saw.
                                    // (A snapshot of a stream made again since is
                                    // of none the link now follows: passed over.)
                                    if link.epoch == epoch {
                                        link.acked = link.acked.max(tail);
                                    } else if epoch_of(state, &path) == epoch {
                                        link.acked = tail;
                                        link.epoch = epoch;
                                    }
                                }
                            }
                            self.finish_wake(state, s)
                        } else {
                            None
                        }
                    };
                    self.run(state, work.into_iter().collect());
                    true
                }
                Ok(r) => {
                    debug!(status = %r.status(), "webhook refused");
                    false
                }
                Err(e) => {
                    debug!("webhook failed: {e}");
                    false
                }
            };
            if ok {
                return;
            }
            {
                let mut subs = self.lock();
                match subs.get_mut(sub) {
                    Some(s) if s.wake_id.as_deref() == Some(wake_id) => {
                        s.failed = true;
                        s.failures = s.failures.saturating_add(1);
                    }
                    _ => return,
                }
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// Ends the current wake; starts the next one if work is pending.
    fn finish_wake(self: &Arc<Self>, state: &AppState, sub: &mut Sub) -> Option<WakeWork> {
        sub.wake_id = None;
        sub.holder = None;
        sub.lease_until = None;
        // (Called from that task itself when the lease ran out: it ends right after.)
        if let Some(task) = sub.lease_task.take() {
            task.abort();
        }
        sub.lease_timer = None;
        sub.snapshot.clear();
        // A stale callback is answered 409 (fenced by its generation), not 401, for
        // the last few wakes; tokens older than that are forgotten.
        if let Some(up_to) = sub.generation.checked_sub(KEPT_TOKEN_GENERATIONS) {
            self.forget_tokens(&sub.id, Some(up_to));
        }
        let trigger = pending_stream(state, sub)?;
        Some(self.create_wake(state, sub, &trigger))
    }

    /// Starts (or, on an ack, extends) the current wake's lease: the wake ends when
    /// it runs out. One timer task per wake, however many acks extend it.
    fn start_lease(self: &Arc<Self>, state: &AppState, sub: &mut Sub) {
        let mut until = tokio::time::Instant::now() + Duration::from_millis(sub.lease_ttl_ms);
        sub.lease_until = Some(until);
        let generation = sub.generation;
        if sub.lease_timer == Some(generation) {
            return;
        }
        sub.lease_timer = Some(generation);
        let registry = Arc::clone(self);
        let state = state.clone();
        let id = sub.id.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep_until(until).await;
                let work = {
                    let mut subs = registry.lock();
                    let Some(s) = subs.get_mut(&id) else { return };
                    let current =
                        s.generation == generation && (s.wake_id.is_some() || s.holder.is_some());
                    match s.lease_until {
                        // Extended meanwhile: wait for the new end.
                        Some(later) if current && later > tokio::time::Instant::now() => {
                            until = later;
                            continue;
                        }
                        Some(_) if current => {
                            debug!(sub = %s.id, generation, "lease expired");
                            s.lease_timer = None;
                            registry.finish_wake(&state, s)
                        }
                        // The wake is over (or another began): nothing to expire.
                        _ => {
                            if s.lease_timer == Some(generation) {
                                s.lease_timer = None;
                            }
                            return;
                        }
                    }
                };
                registry.run(&state, work.into_iter().collect());
                return;
            }
        });
        if let Some(before) = sub.lease_task.replace(task.abort_handle()) {
            before.abort();
        }
    }
}

/// The pause before a webhook's call after `failures` failed ones in a row: 1 s,
/// doubling, at most 60 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis((1000u64 << failures.min(7).saturating_sub(1)).min(60_000))
}

/// Whether any linked stream has data past its acknowledged offset.
fn pending(state: &AppState, sub: &Sub) -> bool {
    pending_stream(state, sub).is_some()
}

/// The first linked stream with data past its acknowledged offset.
fn pending_stream(state: &AppState, sub: &Sub) -> Option<String> {
    sub.links
        .iter()
        .find(|(p, l)| tail_of(state, p) > l.acked(state, p))
        .map(|(p, _)| p.clone())
}

/// The streams of a subscription as deliveries and claims list them.
fn listing(state: &AppState, sub: &Sub) -> Vec<Value> {
    sub.links
        .iter()
        .map(|(path, l)| {
            let tail = tail_of(state, path);
            let acked = l.acked(state, path);
            json!({
                "path": path,
                "link_type": if l.explicit { "explicit" } else { "glob" },
                "acked_offset": offset_of(state, path, acked),
                "tail_offset": offset_of(state, path, tail),
                "has_pending": tail > acked,
            })
        })
        .collect()
}

/// The subscription as its GET and PUT answers show it (never a secret).
fn serialize(state: &AppState, sub: &Sub, signer: &Signer) -> Value {
    let streams: Vec<Value> = sub
        .links
        .iter()
        .map(|(path, l)| {
            json!({
                "path": path,
                "link_type": if l.explicit { "explicit" } else { "glob" },
                "acked_offset": offset_of(state, path, l.acked(state, path)),
            })
        })
        .collect();
    let mut out = json!({
        "id": sub.id,
        "subscription_id": sub.id,
        "type": match sub.kind { Kind::Webhook { .. } => "webhook", Kind::PullWake { .. } => "pull-wake" },
        "streams": streams,
        "lease_ttl_ms": sub.lease_ttl_ms,
        "created_at": sub.created_at,
        "status": if sub.failed { "failed" } else { "active" },
    });
    if let Some(p) = &sub.pattern {
        out["pattern"] = json!(p);
    }
    if let Some(d) = &sub.description {
        out["description"] = json!(d);
    }
    match &sub.kind {
        Kind::Webhook { url } => {
            out["webhook"] = json!({
                "url": url,
                "signing": {
                    "alg": "ed25519",
                    "kid": signer.kid(),
                    "jwks_url": format!("{}/v1/stream/__ds/jwks.json", state.base_url()),
                }
            });
        }
        Kind::PullWake { wake_stream } => out["wake_stream"] = json!(wake_stream),
    }
    out
}
