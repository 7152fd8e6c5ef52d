//! `gapless`: tail, publish and manage Durable Streams, and follow agent sessions, from
//! the command line.
//!
//! Exit codes: 0 success, 1 other failure, 2 usage (a flag, header, offset or URL
//! that is not one), 3 not found, 4 not authorised, 5 continuity lost (the offset is
//! gone), 6 the session followed with `--exit-at-end` failed or was cancelled.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use gapless_client::session::wall_clock;
use gapless_client::{Client, CreateOptions, Error, SessionUpdate, StreamHandle, Update};
use gapless_core::event::Event;
use gapless_core::resume::{LiveMode, Payload};
use gapless_core::session::{SessionView, Status};
use gapless_core::Offset;

#[derive(Parser, Debug)]
#[command(
    name = "gapless",
    version,
    about = "Durable Streams from the command line"
)]
struct Cli {
    /// Bearer token sent on every request.
    #[arg(long, env = "GAPLESS_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Extra header `Name: value` sent on every request (repeatable).
    #[arg(long = "header", short = 'H', global = true)]
    headers: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Live {
    Sse,
    LongPoll,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a stream's messages as they arrive: history, then live.
    Tail {
        /// The stream's URL.
        url: String,
        /// Start offset (`-1` = the beginning, `now` = the tail).
        #[arg(long, default_value = "-1")]
        from: String,
        /// Live mode.
        #[arg(long, value_enum, default_value = "sse")]
        live: Live,
        /// One JSON object per line: {"message"} per message, the last of each batch
        /// with the "offset" to resume from after it (a reader that keeps the last
        /// offset it saw misses nothing); for a stream of bytes, one {"offset",
        /// "data"} per batch, or {"offset", "data_base64"} for bytes that are not
        /// UTF-8.
        #[arg(long)]
        json: bool,
        /// Exit 0 once caught up with the tail.
        #[arg(long)]
        exit_at_tail: bool,
    },
    /// Append data (an argument, or standard input with `-`).
    Publish {
        /// The stream's URL.
        url: String,
        /// The data, or `-` to read standard input.
        data: String,
        /// Content type (must match the stream's).
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
    /// Create a stream.
    Create {
        /// The stream's URL.
        url: String,
        /// Content type.
        #[arg(long, default_value = "application/json")]
        content_type: String,
        /// Sliding time-to-live, in seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Show a stream's metadata.
    Head {
        /// The stream's URL.
        url: String,
    },
    /// Delete a stream.
    Delete {
        /// The stream's URL.
        url: String,
    },
    /// Close a stream (readers reach its end).
    Close {
        /// The stream's URL.
        url: String,
    },
    /// Follow an agent session: status, streaming text, tools, errors.
    Session {
        /// The server's base URL, such as http://127.0.0.1:4437.
        server: String,
        /// The session id.
        id: String,
        /// Call a silent running session stalled after this many seconds.
        #[arg(long, default_value_t = 60)]
        stall_after: u64,
        /// Exit once the session reaches a terminal status.
        #[arg(long)]
        exit_at_end: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GAPLESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Ending::Session(status)) => {
            eprintln!("gapless: the session ended {status}");
            ExitCode::from(6)
        }
        Err(Ending::Output(e)) => {
            eprintln!("gapless: cannot write the output: {e}");
            ExitCode::from(1)
        }
        Err(Ending::Client(e)) => {
            eprintln!("gapless: {e}");
            ExitCode::from(match e {
                Error::NotFound => 3,
                Error::Auth { .. } => 4,
                Error::ContinuityLost { .. } => 5,
                Error::InvalidArgument(_) | Error::Url { .. } => 2,
                _ => 1,
            })
        }
    }
}

/// Why a command did not succeed.
enum Ending {
    /// The client failed.
    Client(Error),
    /// The session followed to its end (`--exit-at-end`) failed or was cancelled.
    Session(String),
    /// What was read could not be written out (other than to a closed pipe).
    Output(std::io::Error),
}

impl From<Error> for Ending {
    fn from(e: Error) -> Self {
        Ending::Client(e)
    }
}

/// What a subscription's end without the stream's closing means: the reader stopped.
fn ended_early() -> Error {
    Error::Protocol("the reader stopped before the stream was closed".into())
}

fn client(cli: &Cli) -> Result<Client, Error> {
    let mut b = Client::builder();
    if let Some(t) = &cli.token {
        b = b.bearer_token(t);
    }
    for h in &cli.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| Error::InvalidArgument(format!("header {h:?} is not `Name: value`")))?;
        b = b.header(name.trim(), value.trim());
    }
    b.build()
}

/// The stream at `url`, once its URL is found usable (a usage error otherwise).
fn checked(client: &Client, url: String) -> Result<StreamHandle, Error> {
    let stream = client.stream(url);
    stream.check_url()?;
    Ok(stream)
}

async fn run(cli: Cli) -> Result<(), Ending> {
    let client = client(&cli)?;
    match cli.command {
        Command::Tail {
            url,
            from,
            live,
            json,
            exit_at_tail,
        } => {
            let mode = match live {
                Live::Sse => LiveMode::Sse,
                Live::LongPoll => LiveMode::LongPoll,
            };
            Ok(tail(
                &checked(&client, url)?,
                Offset::parse(&from)
                    .map_err(|e| Error::InvalidArgument(format!("--from {from:?}: {e}")))?,
                mode,
                json,
                exit_at_tail,
            )
            .await?)
        }
        Command::Publish {
            url,
            data,
            content_type,
        } => {
            let body = if data == "-" {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::Protocol(format!("cannot read standard input: {e}")))?;
                buf
            } else {
                data.into_bytes()
            };
            let offset = checked(&client, url)?.append(&content_type, body).await?;
            // Appended: a reader that left (`| true`) does not make it a failure,
            // which a script would retry, appending twice.
            say(format!("{offset}\n").as_bytes());
            Ok(())
        }
        Command::Create {
            url,
            content_type,
            ttl,
        } => {
            let info = checked(&client, url)?
                .create(CreateOptions {
                    content_type: Some(content_type),
                    ttl_seconds: ttl,
                    ..CreateOptions::default()
                })
                .await?;
            say(format!("{}\n", info.next_offset).as_bytes());
            Ok(())
        }
        Command::Head { url } => {
            let info = checked(&client, url)?.head().await?;
            let mut text = format!(
                "content-type: {}\nnext-offset:  {}\nclosed:       {}\n",
                info.content_type.unwrap_or_default(),
                info.next_offset,
                info.closed
            );
            if let Some(ttl) = info.ttl_seconds {
                text.push_str(&format!("ttl:          {ttl} s\n"));
            }
            if let Some(at) = info.expires_at {
                text.push_str(&format!("expires-at:   {at}\n"));
            }
            say(text.as_bytes());
            Ok(())
        }
        Command::Delete { url } => Ok(checked(&client, url)?.delete().await?),
        Command::Close { url } => {
            let offset = checked(&client, url)?.close().await?;
            say(format!("{offset}\n").as_bytes());
            Ok(())
        }
        Command::Session {
            server,
            id,
            stall_after,
            exit_at_end,
        } => {
            let url = format!("{}/v1/stream/sessions/{id}", server.trim_end_matches('/'));
            session(
                &checked(&client, url)?,
                Duration::from_secs(stall_after),
                exit_at_end,
            )
            .await
        }
    }
}

/// Writes to stdout: `Ok(false)` once the pipe is closed (`gapless tail ... | head`),
/// which ends a reading quietly; any other failure (a full disk) is an error. Never
/// a panic. After an operation that succeeded, what it prints is written with
/// [`say`].
fn out(bytes: &[u8]) -> Result<bool, Ending> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Ending::Output(e)),
    }
}

/// Prints what an operation that succeeded reports: a reader that left, or a
/// failed write, does not make it a failure, which a script would retry (appending
/// twice, say).
fn say(bytes: &[u8]) {
    let _ = out(bytes);
}

async fn tail(
    stream: &StreamHandle,
    from: Offset,
    live: LiveMode,
    json: bool,
    exit_at_tail: bool,
) -> Result<(), Ending> {
    let mode = if exit_at_tail { LiveMode::Off } else { live };
    let mut sub = stream.subscribe_with(from, mode);
    while let Some(update) = sub.next().await {
        match update? {
            Update::Batch(batch) => {
                let offset = batch.next_offset.to_string();
                let mut text = Vec::new();
                match &batch.payload {
                    Payload::Json(messages) => {
                        for (i, m) in messages.iter().enumerate() {
                            let m = one_line(m.get());
                            if json {
                                // Only after the batch's last message is its offset
                                // where reading again misses nothing and repeats
                                // nothing: the lines before it say none.
                                let line = if i + 1 == messages.len() {
                                    format!(
                                        "{{\"offset\":{},\"message\":{}}}\n",
                                        serde_json::Value::String(offset.clone()),
                                        m
                                    )
                                } else {
                                    format!("{{\"message\":{m}}}\n")
                                };
                                text.extend_from_slice(line.as_bytes());
                            } else {
                                text.extend_from_slice(m.as_bytes());
                                text.push(b'\n');
                            }
                        }
                    }
                    Payload::Bytes(bytes) => {
                        if json {
                            // (A batch may end inside a character: such bytes go as
                            // base64, never altered.)
                            let line = match std::str::from_utf8(bytes) {
                                Ok(data) => serde_json::json!({"offset": offset, "data": data}),
                                Err(_) => serde_json::json!({
                                    "offset": offset,
                                    "data_base64": gapless_core::wire::encode_base64(bytes),
                                }),
                            };
                            text.extend_from_slice(format!("{line}\n").as_bytes());
                        } else {
                            text.extend_from_slice(bytes);
                        }
                    }
                }
                if !out(&text)? {
                    return Ok(());
                }
            }
            Update::UpToDate { offset } => {
                eprintln!("gapless: up to date at {offset}");
                if exit_at_tail {
                    return Ok(());
                }
            }
            Update::Closed { offset } => {
                eprintln!("gapless: stream closed at {offset}");
                return Ok(());
            }
            Update::Reconnecting { reason } => retrying(&reason),
            _ => {}
        }
    }
    Err(ended_early().into())
}

/// A stored JSON message on one line: its line breaks dropped. Valid JSON holds them
/// only as whitespace between tokens (a string escapes its own), and no two tokens
/// need whitespace between them, so this alters nothing else.
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.contains(['\n', '\r']) {
        message.replace(['\n', '\r'], "").into()
    } else {
        message.into()
    }
}

/// Tells that a read failed and is made again (by a stream or a session reader).
fn retrying(reason: &impl std::fmt::Display) {
    eprintln!("gapless: {reason}; reading again from the last offset");
}

fn status_line(status: &Status) -> String {
    match status {
        Status::Pending => "pending".into(),
        Status::Initializing { stage, message } => format!("initializing ({stage}): {message}"),
        Status::Running => "running".into(),
        Status::Completed { result } => format!(
            "completed{}",
            result
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Status::TurnLimit => "turn limit reached".into(),
        Status::Cancelled => "cancelled".into(),
        Status::Failed { error, code } => format!(
            "FAILED{}: {error}",
            code.as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default()
        ),
        Status::Stalled { silent_ms } => format!("STALLED: no event for {} s", silent_ms / 1000),
    }
}

async fn session(
    stream: &StreamHandle,
    stall_after: Duration,
    exit_at_end: bool,
) -> Result<(), Ending> {
    let mut sub = stream.subscribe_session(Offset::START, stall_after);
    // The status of what was printed: the subscription's own view may be ahead of
    // it, and `--exit-at-end` must not exit before the last events are shown.
    let mut view = SessionView::new(stall_after);
    let mut shown = String::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            update = sub.next() => {
                let Some(update) = update else { return Err(ended_early().into()) };
                match update? {
                    SessionUpdate::Events { events, .. } => {
                        let mut text = String::new();
                        for e in &events {
                            match &e.event {
                                Event::AgentToken(t) => text.push_str(&t.delta),
                                Event::AgentTurn(t) => text.push_str(&format!("\n--- turn {} of {} ---\n", t.turn, t.max_turns)),
                                Event::ToolStart(t) => text.push_str(&format!("\n→ {} {}\n", t.tool_name, t.input)),
                                Event::ToolResult(r) => text.push_str(&format!("← {} ({} ms){}\n", r.tool_name, r.duration_ms, if r.is_error { " ERROR" } else { "" })),
                                Event::FileChanged(f) => text.push_str(&format!("  file {} {}\n", f.action, f.path)),
                                _ => {}
                            }
                        }
                        if !out(text.as_bytes())? {
                            return Ok(());
                        }
                        let now = wall_clock();
                        for e in &events {
                            view.apply(e, now);
                        }
                    }
                    // From here on an event's arrival is its activity, not its
                    // timestamp (the producer's clock may not be the reader's).
                    SessionUpdate::UpToDate => {
                        view.caught_up();
                        eprintln!("gapless: history read; following live");
                    }
                    SessionUpdate::Closed => {
                        eprintln!("gapless: session stream closed");
                        return Ok(());
                    }
                    SessionUpdate::Reconnecting { reason } => {
                        view.fell_behind();
                        retrying(&reason);
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {}
        }
        let status = view.status(wall_clock());
        let line = status_line(&status);
        if line != shown {
            eprintln!("\n[status] {line}");
            shown = line;
        }
        if exit_at_end && status.is_terminal() {
            return match status {
                Status::Failed { .. } | Status::Cancelled => Err(Ending::Session(shown)),
                _ => Ok(()),
            };
        }
    }
}
