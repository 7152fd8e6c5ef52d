//! The crash guard an agent runner installs at start: whatever ends the process — a
//! panic, a failed event stream, a broken stdout pipe, a termination or hang-up
//! signal, a return (an error passed up with `?`, say) before the runner said it was
//! done — a terminal `container-agent:error` event is made durable first, so no
//! session view is left "running" forever. (A `SIGKILL` leaves no chance: the view
//! calls such a silent session stalled.)

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use gapless_core::event::{AgentError, Envelope, Event};
use gapless_core::wire::AppendOutcome;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use tokio::sync::{oneshot, Notify};
use tracing::{error, warn};

use crate::client::{head_of, Dynamic};
use crate::session::{session_stream_url, wall_clock};
use crate::{Client, Error};

/// How long the guard keeps trying to make its error event durable.
const REPORT_DEADLINE: Duration = Duration::from_secs(10);

/// How long anyone waits for a report another caller is sending: its deadline, and
/// the last try's own time (3 s) on top.
const REPORT_WAIT: Duration = Duration::from_secs(15);

/// Where a guard's report stands. Only one report of a guard is sent: whoever comes
/// second (a signal while a panic is being reported, say) waits for the first.
#[derive(Debug)]
enum Report {
    /// None was made.
    Idle,
    /// One is being sent, on a thread of its own.
    Sending,
    /// One was sent: made durable, or given up with this error.
    Sent(Result<(), String>),
}

/// Reports being sent in the process, by every guard: a signal's exit waits for them.
static SENDING: Mutex<usize> = Mutex::new(0);
static SENDING_DONE: Condvar = Condvar::new();

/// Takes a lock whose holder may have panicked (nothing it guards is left half-done).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `done` until `ready` holds of what `m` guards, or `REPORT_WAIT` passed.
fn wait_until<'a, T>(
    m: &'a Mutex<T>,
    done: &Condvar,
    ready: impl Fn(&T) -> bool,
) -> MutexGuard<'a, T> {
    let held = lock(m);
    done.wait_timeout_while(held, REPORT_WAIT, |t| !ready(t))
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

/// What sending a report needs, and where the guard's report stands: shared by the
/// guard, its signal watcher and the thread that sends the report, so that neither
/// the runner returning nor a cancelled call stops a report half-way.
struct Reporter {
    url: String,
    headers: HeaderMap,
    /// The client's headers and parameters computed per request (a refreshed token).
    dynamic: Dynamic,
    task_id: String,
    session_id: String,
    turns: AtomicU32,
    report: Mutex<Report>,
    sent: Condvar,
}

impl Reporter {
    /// Starts sending the report, unless one was made already: on a thread of its
    /// own, with a runtime of its own, which nothing cancels. Its outcome comes on
    /// the returned channel (and [`Reporter::wait`] sees it).
    fn start(
        self: &Arc<Self>,
        code: &str,
        error: &str,
    ) -> Option<oneshot::Receiver<Result<(), Error>>> {
        {
            let mut report = lock(&self.report);
            if !matches!(*report, Report::Idle) {
                return None;
            }
            *report = Report::Sending;
        }
        *lock(&SENDING) += 1;
        let (tx, rx) = oneshot::channel();
        let body = self.event(code, error).to_json();
        let reporter = Arc::clone(self);
        let sending = std::thread::Builder::new()
            .name("gapless-crash-report".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Protocol(format!("no runtime for the report: {e}")))
                    .and_then(|rt| rt.block_on(reporter.post(body)));
                if let Err(e) = &result {
                    error!("could not publish the crash report: {e}");
                }
                reporter.settle(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                let _ = tx.send(result);
            });
        if let Err(e) = sending {
            self.settle(Err(format!("no thread for the report: {e}")));
        }
        Some(rx)
    }

    /// Records the report's outcome and wakes whoever waits for it.
    fn settle(&self, outcome: Result<(), String>) {
        *lock(&self.report) = Report::Sent(outcome);
        self.sent.notify_all();
        let mut sending = lock(&SENDING);
        *sending = sending.saturating_sub(1);
        SENDING_DONE.notify_all();
    }

    /// Waits until no report of this guard is being sent (at most `REPORT_WAIT`), and
    /// returns the outcome of the one sent, if any was.
    fn wait(&self) -> Option<Result<(), String>> {
        match &*wait_until(&self.report, &self.sent, |r| !matches!(r, Report::Sending)) {
            Report::Sent(outcome) => Some(outcome.clone()),
            Report::Idle | Report::Sending => None,
        }
    }

    /// Sends the report unless one was made, and waits until it is sent: for callers
    /// that cannot await (a panic hook, a drop, a signal's watcher).
    fn report_blocking(self: &Arc<Self>, code: &str, error: &str) {
        self.start(code, error);
        self.wait();
    }

    fn event(&self, code: &str, error: &str) -> Envelope {
        Envelope::new(Event::AgentError(AgentError {
            task_id: self.task_id.clone(),
            session_id: self.session_id.clone(),
            error: error.to_owned(),
            code: Some(code.to_owned()),
            turn_count: self.turns.load(Ordering::Relaxed),
            extra: serde_json::Map::new(),
        }))
        .with_timestamp(wall_clock().as_millis())
    }

    /// Posts the error event `body`, retrying until it is acknowledged or the deadline.
    async fn post(&self, body: String) -> Result<(), Error> {
        // One idempotent-producer identity per report (its own, random: two runners'
        // reports never meet, not even from processes with the same id, as in two
        // containers): a retry after a lost answer is recognised, so the event lands
        // exactly once.
        let nonce = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let producer = format!("gapless-crash-guard-{}-{nonce:016x}", std::process::id());
        let epoch = wall_clock().as_millis().to_string();
        // Redirects are not followed: one answering the POST would be followed as a
        // GET, whose 200 would read as a report delivered (see `ClientBuilder::build`).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let deadline = tokio::time::Instant::now() + REPORT_DEADLINE;
        let mut delay = Duration::from_millis(50);
        loop {
            let request = http
                .post(&self.url)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("Producer-Id", producer.as_str())
                .header("Producer-Epoch", epoch.as_str())
                .header("Producer-Seq", "0")
                .body(body.clone());
            let sent = self.dynamic.apply(request).send().await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match AppendOutcome::of(&head_of(&r), true) {
                        Ok(AppendOutcome::Accepted { .. } | AppendOutcome::Duplicate { .. }) => {
                            return Ok(())
                        }
                        Ok(AppendOutcome::Retry { retry_after }) => {
                            warn!("crash report answered {status}; retrying");
                            // A server's wait past the deadline is waited no longer.
                            delay = delay
                                .max(retry_after.unwrap_or_default())
                                .min(REPORT_DEADLINE);
                        }
                        // Stored, even if the offset header is malformed.
                        Err(_) if (200..300).contains(&status) => return Ok(()),
                        _ => {
                            let text = r.text().await.unwrap_or_default();
                            return Err(Error::from_status(status, text));
                        }
                    }
                }
                Err(e) => warn!("crash report failed: {e}; retrying"),
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(Error::Protocol(
                    "could not deliver the crash report in time".into(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

struct Inner {
    reporter: Arc<Reporter>,
    /// The runner said it reached its end ([`CrashGuard::done`]).
    done: AtomicBool,
    stdout_broken: AtomicBool,
    /// The thread that installed the guard: the runner's own (its `main`).
    thread: std::thread::ThreadId,
    /// The first panic outside the runner's own code (a task's, which its runtime
    /// may catch): not reported at once, but told if the runner then ends without
    /// saying it is done.
    stray_panic: Mutex<Option<String>>,
    /// Told when the guard is gone, so that its signal watcher ends.
    gone: Arc<Notify>,
}

impl Drop for Inner {
    /// The runner's last handle is gone (its `main` returned). A report being sent is
    /// waited for; with none made, and before the runner said it was done, this is an
    /// end it did not report, which is reported here.
    fn drop(&mut self) {
        let reporter = &self.reporter;
        if reporter.wait().is_none() && !*self.done.get_mut() {
            let stray = lock(&self.stray_panic).take();
            match stray {
                Some(panic) => reporter.report_blocking(
                    "UNCAUGHT_ERROR",
                    &format!("the runner ended before it reported an end, after a panic: {panic}"),
                ),
                None => reporter.report_blocking(
                    "EXITED",
                    "the runner ended before it reported an end (an error returned early?)",
                ),
            }
        }
        self.gone.notify_one();
    }
}

/// The installed guard. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), gapless_client::Error> {
/// use gapless_client::{Client, CrashGuard};
///
/// let client = Client::new()?;
/// let guard = CrashGuard::install(&client, "http://127.0.0.1:4437", "task-1", "session-1");
/// guard.set_turn(1);
/// // A panic from here on publishes container-agent:error (UNCAUGHT_ERROR) first;
/// // so do SIGTERM, SIGINT, SIGHUP and SIGQUIT; a broken stdout pipe publishes EPIPE:
/// if guard.print_line("progress: 10%").is_err() {
///     std::process::exit(1); // the session already shows the failure
/// }
/// // ... the runner publishes its end (a completed status, say), then:
/// guard.done();
/// // Had it returned before this (an error passed up with `?`), dropping the guard
/// // would have published EXITED.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CrashGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CrashGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashGuard")
            .field("session_id", &self.inner.reporter.session_id)
            .field("reported", &self.has_reported())
            .finish()
    }
}

impl CrashGuard {
    /// Installs the guard for session `session_id` of task `task_id` on `server`:
    /// a panic hook (chained before the previous one) and, inside a tokio runtime, a
    /// SIGTERM/SIGINT/SIGHUP/SIGQUIT handler that reports and exits with 128 + the
    /// signal number. A panic in the runner's own code (on the thread that installs
    /// the guard, its `main`, outside a spawned task) is reported at once; one in a
    /// spawned task (which its runtime catches) only if the runner then ends without
    /// calling [`CrashGuard::done`] (with panics that abort, every panic at once).
    /// Keep the guard (or a clone) until the runner is done, and call
    /// [`CrashGuard::done`] then: dropping the last one before reports `EXITED`.
    /// Only one report is sent: one that comes while another is being sent (a signal
    /// during a panic's report, say) waits for it, and the process exits only then.
    pub fn install(client: &Client, server: &str, task_id: &str, session_id: &str) -> CrashGuard {
        let guard = CrashGuard {
            inner: Arc::new(Inner {
                reporter: Arc::new(Reporter {
                    url: session_stream_url(server, session_id),
                    headers: client.headers.clone(),
                    dynamic: client.dynamic.clone(),
                    task_id: task_id.to_owned(),
                    session_id: session_id.to_owned(),
                    turns: AtomicU32::new(0),
                    report: Mutex::new(Report::Idle),
                    sent: Condvar::new(),
                }),
                done: AtomicBool::new(false),
                stdout_broken: AtomicBool::new(false),
                thread: std::thread::current().id(),
                stray_panic: Mutex::new(None),
                gone: Arc::new(Notify::new()),
            }),
        };
        // The hook and the signal handler do not keep the guard alive: its last
        // handle dropped is how the guard learns that the runner returned.
        let hook_guard = Arc::downgrade(&guard.inner);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_owned(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".to_owned()),
            };
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Some(inner) = hook_guard.upgrade() {
                // A spawned task runs on the runner's own thread too, under a runtime
                // with one thread: it is told apart by its task id.
                let fatal = cfg!(panic = "abort")
                    || (std::thread::current().id() == inner.thread
                        && tokio::task::try_id().is_none());
                if fatal {
                    inner
                        .reporter
                        .report_blocking("UNCAUGHT_ERROR", &format!("{message}{location}"));
                } else {
                    // A task's panic, say, which its runtime catches: the runner goes
                    // on, and may still end well.
                    lock(&inner.stray_panic).get_or_insert_with(|| format!("{message}{location}"));
                }
            }
            previous(info);
        }));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(watch_signals(
                Arc::downgrade(&guard.inner),
                Arc::clone(&guard.inner.reporter),
                Arc::clone(&guard.inner.gone),
            ));
        }
        guard
    }

    /// Tells the guard that the runner reached its end and reported it (its terminal
    /// status is published): nothing is reported when the guard is dropped. A panic
    /// or signal after this is still reported.
    pub fn done(&self) {
        self.inner.done.store(true, Ordering::SeqCst);
    }

    /// Records the current turn; error events carry it as `turnCount`.
    pub fn set_turn(&self, turn: u32) {
        self.inner.reporter.turns.store(turn, Ordering::Relaxed);
    }

    /// Whether a terminal error has been reported (or is being sent).
    pub fn has_reported(&self) -> bool {
        !matches!(*lock(&self.inner.reporter.report), Report::Idle)
    }

    /// Reports a failure of the runner's own event stream (`STREAM_ERROR`) or any
    /// other terminal failure with `code`, and waits until it is durable. Only the
    /// first report of a guard is sent: after another one, this waits for that one
    /// and returns how it went. The report is sent on a thread of its own: a call
    /// given up (dropped) does not stop it, and the guard's last handle, dropped,
    /// waits for it.
    pub async fn fail(&self, code: &str, error: &str) -> Result<(), Error> {
        if let Some(outcome) = self.inner.reporter.start(code, error) {
            return outcome.await.unwrap_or_else(|_| {
                Err(Error::Protocol("the crash report's thread ended".into()))
            });
        }
        let reporter = Arc::clone(&self.inner.reporter);
        match tokio::task::spawn_blocking(move || reporter.wait()).await {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(Error::Protocol(format!(
                "the earlier crash report failed: {e}"
            ))),
            Ok(None) | Err(_) => Err(Error::Protocol(
                "the earlier crash report was not sent in time".into(),
            )),
        }
    }

    /// Writes a line to stdout. A broken pipe does not kill the process: the guard
    /// reports `EPIPE` (once, durably) and returns the error, so the runner can stop
    /// cleanly; later calls return the error without writing.
    pub fn print_line(&self, line: &str) -> std::io::Result<()> {
        if self.inner.stdout_broken.load(Ordering::Relaxed) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let result = {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush())
        };
        // (The lock is let go first: the report's thread may log to standard output.)
        if let Err(e) = &result {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.inner.stdout_broken.store(true, Ordering::Relaxed);
                // A runner that is done has reported its end: a reader leaving after
                // that is no failure of its session.
                if !self.inner.done.load(Ordering::SeqCst) {
                    self.inner
                        .reporter
                        .report_blocking("EPIPE", "stdout closed (broken pipe)");
                }
            }
        }
        result
    }
}

/// Waits for a signal that ends the runner while the guard lives, reports it (or
/// waits for the report being sent) and every report of the process being sent, and
/// exits with 128 + its number. Ends, leaving the process be, once the guard is gone.
async fn watch_signals(guard: Weak<Inner>, reporter: Arc<Reporter>, gone: Arc<Notify>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            return;
        };
        let (name, number) = tokio::select! {
            _ = term.recv() => ("SIGTERM", 15),
            _ = int.recv() => ("SIGINT", 2),
            _ = hup.recv() => ("SIGHUP", 1),
            _ = quit.recv() => ("SIGQUIT", 3),
            () = gone.notified() => return,
        };
        // Waited for here (the report on a thread of its own): a runtime shutting down
        // meanwhile (the runner's `main` returning as the signal reached its other
        // processes too) must not cancel the report half-way. With the guard being
        // dropped, its report is under way already, or none is due.
        match guard.upgrade() {
            Some(live) => live
                .reporter
                .report_blocking(name, &format!("the runner received {name}")),
            None => {
                reporter.wait();
            }
        }
        drop(wait_until(&SENDING, &SENDING_DONE, |n| *n == 0));
        std::process::exit(128 + number);
    }
    #[cfg(not(unix))]
    drop((guard, reporter, gone));
}
