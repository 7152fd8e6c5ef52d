//! The crash guard an agent runner installs at start: whatever ends the process — a
//! panic, a failed event stream, a broken stdout pipe, a termination or hang-up
//! signal, a return (an error passed up with `?`, say) before the runner said it was
//! done — a terminal `container-agent:error` event is made durable first, so no
//! session view is left "running" forever. (A `SIGKILL` leaves no chance: the view
//! calls such a silent session stalled.)

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use gapless_core::event::{AgentError, Envelope, Event};
use gapless_core::wire::AppendOutcome;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use tracing::{error, warn};

use crate::client::{head_of, Dynamic};
use crate::session::{session_stream_url, wall_clock};
use crate::{Client, Error};

/// How long the guard keeps trying to make its error event durable.
const REPORT_DEADLINE: Duration = Duration::from_secs(10);

struct Inner {
    url: String,
    headers: HeaderMap,
    /// The client's headers and parameters computed per request (a refreshed token).
    dynamic: Dynamic,
    task_id: String,
    session_id: String,
    turns: AtomicU32,
    reported: AtomicBool,
    /// The runner said it reached its end ([`CrashGuard::done`]).
    done: AtomicBool,
    stdout_broken: AtomicBool,
    last_report: Mutex<Option<Result<(), String>>>,
    /// The thread that installed the guard: the runner's own (its `main`).
    thread: std::thread::ThreadId,
    /// The first panic on another thread: a runtime (tokio's tasks) or the runner may
    /// have caught it, so it is not reported at once, but told if the runner then
    /// ends without saying it is done.
    stray_panic: Mutex<Option<String>>,
}

impl Drop for Inner {
    /// The runner's last handle is gone (its `main` returned) before it said it was
    /// done and with nothing reported: an end it did not report, which is reported
    /// here.
    fn drop(&mut self) {
        if *self.done.get_mut() || *self.reported.get_mut() {
            return;
        }
        let last = CrashGuard {
            inner: Arc::new(Inner {
                url: std::mem::take(&mut self.url),
                headers: std::mem::take(&mut self.headers),
                dynamic: std::mem::take(&mut self.dynamic),
                task_id: std::mem::take(&mut self.task_id),
                session_id: std::mem::take(&mut self.session_id),
                turns: AtomicU32::new(*self.turns.get_mut()),
                reported: AtomicBool::new(false),
                // This one reports once, here, and not again when it is dropped.
                done: AtomicBool::new(true),
                stdout_broken: AtomicBool::new(false),
                last_report: Mutex::new(None),
                thread: self.thread,
                stray_panic: Mutex::new(None),
            }),
        };
        let stray = self
            .stray_panic
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match stray {
            Some(panic) => last.report_blocking(
                "UNCAUGHT_ERROR",
                &format!("the runner ended before it reported an end, after a panic: {panic}"),
            ),
            None => last.report_blocking(
                "EXITED",
                "the runner ended before it reported an end (an error returned early?)",
            ),
        }
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
            .field("session_id", &self.inner.session_id)
            .field("reported", &self.inner.reported.load(Ordering::Relaxed))
            .finish()
    }
}

impl CrashGuard {
    /// Installs the guard for session `session_id` of task `task_id` on `server`:
    /// a panic hook (chained before the previous one) and, inside a tokio runtime, a
    /// SIGTERM/SIGINT/SIGHUP/SIGQUIT handler that reports and exits with 128 + the
    /// signal number. A panic on the thread that installs the guard (the runner's
    /// `main`) is reported at once; one on another thread (a spawned task's, which
    /// its runtime catches) only if the runner then ends without calling
    /// [`CrashGuard::done`] (with panics that abort, every panic at once). Keep the guard (or a clone) until the runner is done, and call
    /// [`CrashGuard::done`] then: dropping the last one before reports `EXITED`.
    pub fn install(client: &Client, server: &str, task_id: &str, session_id: &str) -> CrashGuard {
        let guard = CrashGuard {
            inner: Arc::new(Inner {
                url: session_stream_url(server, session_id),
                headers: client.headers.clone(),
                dynamic: client.dynamic.clone(),
                task_id: task_id.to_owned(),
                session_id: session_id.to_owned(),
                turns: AtomicU32::new(0),
                reported: AtomicBool::new(false),
                done: AtomicBool::new(false),
                stdout_broken: AtomicBool::new(false),
                last_report: Mutex::new(None),
                thread: std::thread::current().id(),
                stray_panic: Mutex::new(None),
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
                let fatal = cfg!(panic = "abort") || std::thread::current().id() == inner.thread;
                if fatal {
                    CrashGuard { inner }
                        .report_blocking("UNCAUGHT_ERROR", &format!("{message}{location}"));
                } else {
                    // A task's panic, say, which its runtime catches: the runner goes
                    // on, and may still end well.
                    inner
                        .stray_panic
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert_with(|| format!("{message}{location}"));
                }
            }
            previous(info);
        }));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let signal_guard = Arc::downgrade(&guard.inner);
            handle.spawn(watch_signals(signal_guard));
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
        self.inner.turns.store(turn, Ordering::Relaxed);
    }

    /// Whether a terminal error has been reported.
    pub fn has_reported(&self) -> bool {
        self.inner.reported.load(Ordering::Relaxed)
    }

    /// Reports a failure of the runner's own event stream (`STREAM_ERROR`) or any
    /// other terminal failure with `code`, and waits until it is durable. Only the
    /// first report of a process is sent.
    pub async fn fail(&self, code: &str, error: &str) -> Result<(), Error> {
        if self.inner.reported.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = self.post(code, error).await;
        if let Ok(mut last) = self.inner.last_report.lock() {
            *last = Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        result
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
                    self.report_blocking("EPIPE", "stdout closed (broken pipe)");
                }
            }
        }
        result
    }

    fn event(&self, code: &str, error: &str) -> Envelope {
        Envelope::new(Event::AgentError(AgentError {
            task_id: self.inner.task_id.clone(),
            session_id: self.inner.session_id.clone(),
            error: error.to_owned(),
            code: Some(code.to_owned()),
            turn_count: self.inner.turns.load(Ordering::Relaxed),
            extra: serde_json::Map::new(),
        }))
        .with_timestamp(wall_clock().as_millis())
    }

    /// Posts the error event, retrying until it is acknowledged or the deadline.
    async fn post(&self, code: &str, error: &str) -> Result<(), Error> {
        let body = self.event(code, error).to_json();
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
                .post(&self.inner.url)
                .headers(self.inner.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("Producer-Id", producer.as_str())
                .header("Producer-Epoch", epoch.as_str())
                .header("Producer-Seq", "0")
                .body(body.clone());
            let sent = self.inner.dynamic.apply(request).send().await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match AppendOutcome::of(&head_of(&r), true) {
                        Ok(AppendOutcome::Accepted { .. } | AppendOutcome::Duplicate { .. }) => {
                            return Ok(())
                        }
                        Ok(AppendOutcome::Retry { retry_after }) => {
                            warn!("crash report answered {status}; retrying");
                            delay = delay.max(retry_after.unwrap_or_default());
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

    /// Reports from a context that cannot await (a panic hook): on a thread of its
    /// own, with a runtime of its own, and waits for it.
    fn report_blocking(&self, code: &str, error: &str) {
        if self.inner.reported.swap(true, Ordering::SeqCst) {
            return;
        }
        let guard = self.clone();
        let (code, error) = (code.to_owned(), error.to_owned());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt
                    .block_on(guard.post(&code, &error))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &result {
                error!("could not publish the crash report: {e}");
            }
            if let Ok(mut last) = guard.inner.last_report.lock() {
                *last = Some(result);
            }
        });
        let _ = thread.join();
    }
}

/// Waits for a signal that ends the runner, reports it (while the guard lives) and
/// exits with 128 + its number.
async fn watch_signals(guard: Weak<Inner>) {
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
        };
        if let Some(inner) = guard.upgrade() {
            // On a thread of its own, waited for: a runtime shutting down meanwhile
            // (the runner's `main` returning as the signal reached its other
            // processes too) must not cancel the report half-way.
            CrashGuard { inner }.report_blocking(name, &format!("the runner received {name}"));
        }
        std::process::exit(128 + number);
    }
    #[cfg(not(unix))]
    drop(guard);
}
