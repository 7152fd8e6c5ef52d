//! The idempotent producer (§5.2.1): appends that are acknowledged only once durable,
//! retried safely after time-outs and dropped connections (exactly once), fenced by
//! epochs; plus a bounded, coalescing queue for high-frequency messages.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gapless_core::producer::{Numbering, Verdict};
use gapless_core::resume::{Backoff, BackoffConfig};
use gapless_core::wire::{headers, AppendOutcome};
use gapless_core::Offset;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::client::{head_of, StreamHandle};
use crate::Error;

/// How a [`Producer`] behaves.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `Producer-Id`: stable for one logical writer.
    pub id: String,
    /// The first epoch. Default: the current time in milliseconds (or one above the
    /// last this process took, for producers made in one millisecond), so a
    /// restarted process always fences its predecessor and starts a fresh sequence. (A fixed
    /// one below the server's is claimed past, unless its first append goes
    /// unanswered: that producer is then fenced, see `auto_claim`.)
    pub epoch: Option<u64>,
    /// The stream's content type (`application/json` for JSON mode).
    pub content_type: String,
    /// How long the queue gathers pushed messages into one append: a batch is sent
    /// this long after its first message was taken (or sooner, once full).
    pub linger: Duration,
    /// A queued batch is sent once it holds this many bytes.
    pub max_batch_bytes: usize,
    /// A queued batch is sent once it holds this many messages.
    pub max_batch_items: usize,
    /// Pushed messages waiting to be sent before `push` waits (backpressure).
    pub queue_capacity: usize,
    /// The longest pause between retries of one append (each drawn at random between
    /// half a ceiling and the ceiling, which starts at 100 ms and grows by half at
    /// each retry, up to this).
    pub max_retry_delay: Duration,
    /// Give up on an append after this many retries (default: no count; see
    /// `max_retry_time`).
    pub max_retries: Option<u32>,
    /// Give up on an append once it has been tried this long (default 2 minutes;
    /// `None`: retried until the server answers for good). It then fails with
    /// [`Error::OutcomeUnknown`], or with [`Error::Transport`] when no try reached a
    /// server (nothing was sent, so nothing stored).
    pub max_retry_time: Option<Duration>,
    /// On a stale-epoch fence (403) before any of its appends was stored, or when the
    /// server no longer knows this producer's numbers (a gap, or 400 to a sequence
    /// past 0: its state expired or its stream was made again), claim the next epoch
    /// and go on (default true); otherwise the refusal is returned. Once one of its
    /// appends was stored (or may have been: sent, its answer lost), a fence means a
    /// newer instance of it took over: it is fenced for good ([`Error::Fenced`]),
    /// never claiming back.
    pub auto_claim: bool,
}

impl ProducerConfig {
    /// A configuration for producer `id` writing `content_type`.
    pub fn new(id: impl Into<String>, content_type: impl Into<String>) -> Self {
        ProducerConfig {
            id: id.into(),
            epoch: None,
            content_type: content_type.into(),
            linger: Duration::from_millis(5),
            max_batch_bytes: 256 * 1024,
            max_batch_items: 10_000,
            queue_capacity: 4096,
            max_retry_delay: Duration::from_secs(5),
            max_retries: None,
            max_retry_time: Some(Duration::from_secs(120)),
            auto_claim: true,
        }
    }
}

impl ProducerConfig {
    /// Checks the configuration: a non-empty id, positive batch limits and queue
    /// capacity.
    ///
    /// ```
    /// let mut cfg = gapless_client::ProducerConfig::new("p", "application/json");
    /// assert!(cfg.validate().is_ok());
    /// cfg.max_batch_bytes = 0;
    /// assert!(cfg.validate().unwrap_err().to_string().contains("maxBatchBytes"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |field: &str, why: &str| Err(Error::InvalidArgument(format!("{field} {why}")));
        if self.id.is_empty() {
            return invalid("producerId", "must not be empty");
        }
        if self.max_batch_bytes == 0 {
            return invalid("maxBatchBytes", "must be positive");
        }
        if self.max_batch_items == 0 {
            return invalid("maxBatchItems", "must be positive");
        }
        if self.queue_capacity == 0 {
            return invalid("queueCapacity", "must be positive");
        }
        Ok(())
    }
}

/// An acknowledged append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The stream's tail after the append. `None` when the server's answer does not
    /// say it (some servers omit it for a duplicate, a retry of an append they
    /// already had) or says it unreadably: the append is stored all the same.
    pub offset: Option<Offset>,
    /// The epoch it was written under.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
}

/// The producer's numbers (the core's machine: see [`Numbering`]).
struct State {
    numbers: Numbering,
}

struct Shared {
    stream: StreamHandle,
    cfg: ProducerConfig,
    json: bool,
    state: Mutex<State>,
    lag: AtomicUsize,
    failure: std::sync::Mutex<Option<Arc<Error>>>,
    closed: Mutex<Option<Ack>>,
    /// Why no append can ever be sent (its URL or configuration), found once when
    /// the producer is made.
    unusable: Option<Unusable>,
}

/// What makes a producer unable to send anything.
enum Unusable {
    /// Its stream's URL (see [`StreamHandle::check_url`]).
    Url { url: String, reason: String },
    /// Its configuration (see [`ProducerConfig::validate`]).
    Config(String),
}

impl Unusable {
    /// What [`Producer::new`] finds wrong with `stream` and `cfg`, if anything.
    fn of(stream: &StreamHandle, cfg: &ProducerConfig) -> Option<Unusable> {
        match cfg.validate().and_then(|()| stream.check_url()) {
            Ok(()) => None,
            Err(Error::Url { url, reason }) => Some(Unusable::Url { url, reason }),
            Err(Error::InvalidArgument(why)) => Some(Unusable::Config(why)),
            Err(other) => Some(Unusable::Config(other.to_string())),
        }
    }

    /// The error every append fails with.
    fn error(&self) -> Error {
        match self {
            Unusable::Url { url, reason } => Error::Url {
                url: url.clone(),
                reason: reason.clone(),
            },
            Unusable::Config(why) => Error::InvalidArgument(why.clone()),
        }
    }
}

/// An append waiting for its turn, with its caller's answer channel.
type PendingAppend = (Vec<u8>, oneshot::Sender<Result<Ack, Error>>);

enum Queued {
    /// A pushed message: batched with its neighbours.
    Message(Vec<u8>),
    /// An append whose caller waits for its acknowledgement: sent on its own, after
    /// everything queued before it.
    Append(Vec<u8>, oneshot::Sender<Result<Ack, Error>>),
    Flush(oneshot::Sender<Result<(), Error>>),
}

/// A default epoch: the time in milliseconds, or one above the last this process
/// took, whichever is more, so that producers made in one millisecond (one per
/// append, say) do not share one: the second's first append would be taken for the
/// first's, and dropped as a duplicate.
fn fresh_epoch() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut taken = now;
    let _ = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
        taken = now.max(last.saturating_add(1));
        Some(taken)
    });
    taken
}

/// An idempotent producer on one stream.
///
/// `append` returns once the server has committed the data; `push` enqueues without
/// waiting, and a background task coalesces queued messages into batched appends,
/// in order, retried until acknowledged. Appends and batches share one sequence, so
/// the server applies each exactly once, even when a retry follows a lost answer.
///
/// ```no_run
/// # async fn demo() -> Result<(), gapless_client::Error> {
/// use gapless_client::{Client, ProducerConfig};
///
/// let stream = Client::new()?.stream("http://127.0.0.1:4437/v1/stream/log");
/// let producer = stream.producer(ProducerConfig::new("worker-1", "application/json"));
/// let ack = producer.append_json(&serde_json::json!({"step": 1})).await?;
/// println!("durable at {:?}", ack.offset);
/// for i in 0..100 {
///     producer.push_json(&serde_json::json!({"delta": i})).await?;
/// }
/// producer.flush().await?;
/// # Ok(()) }
/// ```
pub struct Producer {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Queued>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("id", &self.shared.cfg.id)
            .field("lag", &self.lag())
            .finish()
    }
}

impl Drop for Producer {
    /// Stops sending. Messages pushed and not yet acknowledged are not sent: call
    /// [`Producer::flush`] or [`Producer::close`] first. Dropping it with some
    /// still queued is logged, as a loss.
    fn drop(&mut self) {
        let lag = self.lag();
        if lag > 0 {
            warn!(
                producer = %self.shared.cfg.id,
                lag,
                "a producer was dropped with pushed messages not yet acknowledged: they \
                 are not sent (flush or close it first)"
            );
        }
        self.task.abort();
    }
}

impl Producer {
    pub(crate) fn new(stream: StreamHandle, cfg: ProducerConfig) -> Producer {
        let epoch = cfg.epoch.unwrap_or_else(fresh_epoch);
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            unusable: Unusable::of(&stream, &cfg),
            json: headers::is_json(&cfg.content_type),
            stream,
            cfg,
            state: Mutex::new(State {
                numbers: Numbering::new(epoch),
            }),
            lag: AtomicUsize::new(0),
            failure: std::sync::Mutex::new(None),
            closed: Mutex::new(None),
        });
        let task = tokio::spawn(run_queue(Arc::clone(&shared), rx));
        Producer {
            shared,
            queue: tx,
            task,
        }
    }

    /// Appends `body` (one message in JSON mode, or an array of messages) and returns
    /// once it is durable. It is written after everything pushed before it.
    ///
    /// Dropping the returned future (a timeout, a `select!` that chose another
    /// branch) withdraws the append if it was not sent yet; once sent, it is stored
    /// exactly once whatever becomes of the future, and only the answer is lost.
    pub async fn append(&self, body: impl Into<Vec<u8>>) -> Result<Ack, Error> {
        let body = body.into();
        self.shared.check_json(&body, "an appended body")?;
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Queued::Append(body, tx))
            .await
            .map_err(|_| Error::Protocol("the producer's queue is closed".into()))?;
        rx.await
            .map_err(|_| Error::Protocol("the producer stopped".into()))?
    }

    /// Appends one JSON message and returns once it is durable.
    pub async fn append_json<T: Serialize + ?Sized>(&self, message: &T) -> Result<Ack, Error> {
        let text = serde_json::to_vec(message).map_err(|e| Error::Protocol(e.to_string()))?;
        let body = if text.first() == Some(&b'[') {
            // An array would be flattened into several messages: wrap it.
            [b"[".as_slice(), &text, b"]"].concat()
        } else {
            text
        };
        self.append(body).await
    }

    /// Enqueues a message without waiting for the server (but waiting for room when
    /// the queue is full). Fails when an earlier queued append failed for good, and
    /// in JSON mode when the message is not one JSON value
    /// ([`Error::InvalidArgument`]: it is not queued, and the batch it would have
    /// joined is not refused for it).
    pub async fn push(&self, message: impl Into<Vec<u8>>) -> Result<(), Error> {
        if let Some(cause) = self.shared.failed() {
            return Err(Error::ProducerFailed(cause));
        }
        let message = message.into();
        self.shared.check_json(&message, "a pushed message")?;
        // Room first, then counted and queued at once: a push dropped while it waits
        // (a timeout, say) queues nothing and counts nothing.
        let room = self
            .queue
            .reserve()
            .await
            .map_err(|_| Error::Protocol("the producer's queue is closed".into()))?;
        self.shared.lag.fetch_add(1, Ordering::Relaxed);
        room.send(Queued::Message(message));
        Ok(())
    }

    /// Enqueues one JSON message (see [`Producer::push`]).
    pub async fn push_json<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), Error> {
        let text = serde_json::to_vec(message).map_err(|e| Error::Protocol(e.to_string()))?;
        self.push(text).await
    }

    /// Waits until everything pushed so far is durable.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Queued::Flush(tx))
            .await
            .map_err(|_| Error::Protocol("the producer's queue is closed".into()))?;
        rx.await
            .map_err(|_| Error::Protocol("the producer stopped".into()))?
    }

    /// Flushes, then stops the queue.
    pub async fn close(self) -> Result<(), Error> {
        self.flush().await
    }

    /// Flushes, then closes the stream (§5.3) with an optional last `body`, as this
    /// producer's next idempotent append: a retry, or a second call, is answered
    /// without closing twice. Returns the final offset.
    ///
    /// Once the close is sent, dropping the returned future does not stop it: it goes
    /// on to its answer, which a second call then returns.
    pub async fn close_stream(&self, body: Option<Vec<u8>>) -> Result<Ack, Error> {
        self.flush().await?;
        let shared = Arc::clone(&self.shared);
        let closing = tokio::spawn(async move {
            let mut closed = shared.closed.lock().await;
            if let Some(ack) = closed.as_ref() {
                return Ok(ack.clone());
            }
            let ack = shared.send(body.unwrap_or_default(), true).await?;
            *closed = Some(ack.clone());
            Ok(ack)
        });
        closing
            .await
            .map_err(|_| Error::Protocol("the producer's close stopped".into()))?
    }

    /// Messages pushed but not yet acknowledged.
    pub fn lag(&self) -> usize {
        self.shared.lag.load(Ordering::Relaxed)
    }

    /// Why queued appends stopped, if they did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed().map(|cause| cause.to_string())
    }

    /// The producer's id.
    pub fn id(&self) -> &str {
        &self.shared.cfg.id
    }
}

impl Shared {
    /// In JSON mode, refuses `what` unless `bytes` is exactly one JSON value.
    fn check_json(&self, bytes: &[u8], what: &str) -> Result<(), Error> {
        if !self.json {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::InvalidArgument(format!("{what} is not UTF-8: {e}")))?;
        gapless_core::json::checked(text)
            .map(drop)
            .map_err(|e| Error::InvalidArgument(format!("{what} is not one JSON value: {e}")))
    }

    /// The failure that stopped queued appends, if one did.
    fn failed(&self) -> Option<Arc<Error>> {
        self.failure.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Sends one append under the numbers the core's [`Numbering`] gives it, retrying
    /// until the server answers for good. An append whose outcome stays unknown (its
    /// answers lost until the retries ran out, or its future dropped) fails with
    /// [`Error::OutcomeUnknown`], and the next append is sent under a new epoch, never
    /// under its numbers.
    async fn send(&self, body: Vec<u8>, close: bool) -> Result<Ack, Error> {
        // What no retry would mend fails at once (and uses no numbers).
        if let Some(unusable) = &self.unusable {
            return Err(unusable.error());
        }
        let mut state = self.state.lock().await;
        if let Some(current) = state.numbers.fenced() {
            return Err(Error::Fenced { current });
        }
        if close && body.is_empty() {
            state.numbers.begin_close();
        } else {
            state.numbers.begin();
        }
        // Jittered, so that producers that failed together do not retry in step.
        let mut backoff = Backoff::new(
            BackoffConfig {
                initial: BackoffConfig::default().initial,
                factor: 1.5,
                max: self.cfg.max_retry_delay,
            },
            RandomState::new().build_hasher().finish(),
        );
        let mut retries = 0u32;
        let started = tokio::time::Instant::now();
        // Whether a try reached a server, and else why the last could not.
        let mut reached = false;
        let mut unreachable = None;
        // The server's `Retry-After`, the least the next pause lasts.
        let mut asked_to_wait = None;
        loop {
            let (epoch, seq) = state.numbers.numbers();
            let mut req = self
                .stream
                .request(reqwest::Method::POST)
                .header(CONTENT_TYPE, self.cfg.content_type.as_str())
                .header(headers::PRODUCER_ID, self.cfg.id.as_str())
                .header(headers::PRODUCER_EPOCH, epoch.to_string())
                .header(headers::PRODUCER_SEQ, seq.to_string())
                .body(body.clone());
            if close {
                req = req.header(headers::STREAM_CLOSED, "true");
            }
            let resp = match req.send().await {
                // Never sent (a header value that is not one): no retry would mend it.
                Err(e) if e.is_builder() => return Err(Error::Transport(e)),
                // No connection made: nothing was sent, so nothing may be stored (a
                // refusal after it, from a server restarted meanwhile, is then sure).
                Err(e) if e.is_connect() => {
                    debug!("could not connect, retrying the same seq: {e}");
                    unreachable = Some(e);
                    None
                }
                Err(e) => {
                    debug!("append failed, retrying the same seq: {e}");
                    reached = true;
                    state.numbers.unanswered();
                    None
                }
                Ok(resp) => {
                    reached = true;
                    Some(resp)
                }
            };
            if let Some(resp) = resp {
                let Ok(outcome) = AppendOutcome::of(&head_of(&resp), true) else {
                    state.numbers.give_up();
                    return Err(Error::OutcomeUnknown(format!(
                        "unreadable answer ({})",
                        resp.status()
                    )));
                };
                match state.numbers.answer(&outcome, self.cfg.auto_claim) {
                    Verdict::Stored { epoch, seq } => {
                        let offset = match outcome {
                            AppendOutcome::Accepted { next_offset }
                            | AppendOutcome::Duplicate { next_offset } => next_offset,
                            _ => None,
                        };
                        return Ok(Ack { offset, epoch, seq });
                    }
                    Verdict::Resend => {
                        warn!(
                            epoch = state.numbers.numbers().0,
                            "producer fenced, or its numbers unknown to the server; claimed a new epoch"
                        );
                        continue;
                    }
                    Verdict::Retry => {
                        if let AppendOutcome::Retry {
                            retry_after: Some(after),
                        } = outcome
                        {
                            // Up to the longest pause: a server asking for a year
                            // does not stall the producer for one.
                            asked_to_wait = Some(after);
                        }
                    }
                    Verdict::Fenced { current } => return Err(Error::Fenced { current }),
                    Verdict::FencedUnsure { current } => {
                        return Err(Error::OutcomeUnknown(format!(
                            "fenced by epoch {current} after an attempt whose answer was lost"
                        )))
                    }
                    Verdict::RefusedUnsure => {
                        return Err(Error::OutcomeUnknown(format!(
                            "a retry was refused ({}) after an attempt whose answer was lost",
                            resp.status()
                        )))
                    }
                    Verdict::Taken => {
                        return Err(Error::Protocol(format!(
                            "another writer with producer id {:?} already used epoch {epoch} sequence {seq}: not stored",
                            self.cfg.id
                        )))
                    }
                    Verdict::Refused => {
                        return Err(match outcome {
                            AppendOutcome::Closed { .. } => Error::Closed,
                            AppendOutcome::SeqGap { expected, .. } => Error::Protocol(format!(
                            "producer sequence out of step: server expects {expected}, sent {seq}"
                        )),
                            _ => {
                                let status = resp.status().as_u16();
                                let body = resp.text().await.unwrap_or_default();
                                Error::from_status(status, body.chars().take(500).collect())
                            }
                        })
                    }
                }
            }
            retries += 1;
            let out_of_time = self
                .cfg
                .max_retry_time
                .is_some_and(|limit| started.elapsed() >= limit);
            if out_of_time || self.cfg.max_retries.is_some_and(|max| retries > max) {
                state.numbers.give_up();
                return Err(match unreachable.filter(|_| !reached) {
                    Some(e) => Error::Transport(e),
                    None => Error::OutcomeUnknown(format!(
                        "no answer for good after {} retries in {:?}",
                        retries - 1,
                        started.elapsed()
                    )),
                });
            }
            tokio::time::sleep(backoff.next_delay_at_least_half(asked_to_wait.take())).await;
        }
    }

    fn batch_body(&self, messages: &[Vec<u8>]) -> Vec<u8> {
        if self.json {
            let mut body =
                Vec::with_capacity(messages.iter().map(|m| m.len() + 1).sum::<usize>() + 2);
            body.push(b'[');
            for (i, m) in messages.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(m);
            }
            body.push(b']');
            body
        } else {
            messages.concat()
        }
    }
}

/// The queue's task: gathers pushed messages for `linger` from the first (or up to
/// the batch size), sends them as one append, answers flushes once everything before
/// them is durable.
async fn run_queue(shared: Arc<Shared>, mut rx: mpsc::Receiver<Queued>) {
    let mut pending: Vec<Vec<u8>> = Vec::new();
    // When the batch being gathered is due: `linger` after its first message.
    let mut due = tokio::time::Instant::now();
    let mut bytes = 0usize;
    let mut flushes: Vec<oneshot::Sender<Result<(), Error>>> = Vec::new();
    let mut append: Option<PendingAppend> = None;
    loop {
        let item = if pending.is_empty() && flushes.is_empty() && append.is_none() {
            match rx.recv().await {
                Some(item) => Some(item),
                None => return,
            }
        } else if bytes >= shared.cfg.max_batch_bytes
            || pending.len() >= shared.cfg.max_batch_items
            || !flushes.is_empty()
            || append.is_some()
        {
            None
        } else {
            match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(Some(item)) => Some(item),
                Ok(None) | Err(_) => None,
            }
        };
        match item {
            Some(Queued::Message(m)) => {
                if pending.is_empty() {
                    due = tokio::time::Instant::now() + shared.cfg.linger;
                }
                bytes += m.len();
                pending.push(m);
                continue;
            }
            Some(Queued::Flush(tx)) => {
                flushes.push(tx);
                continue;
            }
            Some(Queued::Append(body, tx)) => {
                append = Some((body, tx));
                continue;
            }
            None => {}
        }
        let mut result = Ok(());
        if !pending.is_empty() {
            if let Some(cause) = shared.failed() {
                result = Err(Error::ProducerFailed(cause));
            } else {
                let body = shared.batch_body(&pending);
                match shared.send(body, false).await {
                    Ok(_) => {}
                    Err(e) => {
                        warn!("queued append failed for good: {e}");
                        let cause = Arc::new(e);
                        if let Ok(mut f) = shared.failure.lock() {
                            *f = Some(Arc::clone(&cause));
                        }
                        result = Err(Error::ProducerFailed(cause));
                    }
                }
            }
            shared.lag.fetch_sub(pending.len(), Ordering::Relaxed);
            pending.clear();
            bytes = 0;
        }
        // (One whose caller stopped waiting before it was sent is withdrawn.)
        if let Some((body, tx)) = append.take().filter(|(_, tx)| !tx.is_closed()) {
            let answer = match shared.failed() {
                Some(cause) => Err(Error::ProducerFailed(cause)),
                None => shared.send(body, false).await,
            };
            let _ = tx.send(answer);
        }
        for tx in flushes.drain(..) {
            let answer = match &result {
                Ok(()) => match shared.failed() {
                    Some(cause) => Err(Error::ProducerFailed(cause)),
                    None => Ok(()),
                },
                Err(Error::ProducerFailed(cause)) => Err(Error::ProducerFailed(Arc::clone(cause))),
                // (Only `ProducerFailed` is kept in `result`.)
                Err(e) => Err(Error::Protocol(e.to_string())),
            };
            let _ = tx.send(answer);
        }
    }
}
