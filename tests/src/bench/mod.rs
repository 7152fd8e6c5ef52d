//! The benchmark harness behind `gapless-bench`: the same Durable Streams scenarios run
//! against gapless and its peers in one run, each on a fresh server and data
//! directory, with each peer's figure and gapless's ratio to it in one table.
//!
//! [`servers`] starts the servers, [`scenarios`] measures them, [`stats`] summarises
//! latencies and repeated runs, [`report`] writes the table, [`floor`] measures
//! what the fan-out scenario's loopback costs without any server, [`sse_reader`] is
//! the fan-out's lean subscriber, [`arrival`] reads its socket with the kernel's
//! receive times, and [`callgrind`] counts a server's instructions instead.

pub mod arrival;
pub mod callgrind;
pub mod floor;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod sse_reader;
pub mod stats;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use servers::{start, Target};

/// Something stopped a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A local operation (spawning, a file) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A request failed below HTTP.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A server answered with an unexpected status.
    #[error("{url} answered {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// A server misbehaved or did not start.
    #[error("{0}")]
    Server(String),
    /// A measuring task panicked while holding the shared samples.
    #[error("a measuring task panicked")]
    Poisoned,
}

impl BenchError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
        move |source| BenchError::Io { what, source }
    }
}

/// Which scenarios a run measures (cold start is measured from every start).
#[derive(Clone, Debug, Default)]
pub struct Selection(Option<Vec<String>>);

impl Selection {
    /// The scenarios' names; `append` is `append-1` and `append-16` together.
    pub const NAMES: [&'static str; 6] = [
        "append",
        "append-1",
        "append-16",
        "catch-up",
        "fan-out",
        "idle",
    ];

    /// Every scenario.
    pub fn all() -> Selection {
        Selection(None)
    }

    /// The scenarios named in a comma-separated `list`.
    pub fn parse(list: &str) -> Result<Selection, String> {
        let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
        match names.iter().find(|n| !Self::NAMES.contains(&n.as_str())) {
            Some(bad) => Err(format!(
                "unknown scenario {bad:?}; the scenarios are {}",
                Self::NAMES.join(", ")
            )),
            None => Ok(Selection(Some(names))),
        }
    }

    /// Whether the scenario `name` runs (`append-1` and `append-16` also when
    /// `append` is named).
    pub fn has(&self, name: &str) -> bool {
        let part_of = |n: &String| n == name || (n == "append" && name.starts_with("append-"));
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(part_of))
    }
}

/// How big one run is.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// How long each append scenario runs.
    pub append_for: Duration,
    /// The length of the catch-up stream.
    pub catch_up_messages: u64,
    /// How many times the catch-up stream is read whole (the median read is
    /// reported: one read of a million messages lasts a tenth of a second).
    pub catch_up_reads: usize,
    /// SSE subscribers in the fan-out scenario.
    pub fan_out_subscribers: usize,
    /// The fan-out producer's rate cap (messages/s); a slow server holds it lower.
    pub fan_out_rate: f64,
    /// How long the fan-out producer publishes.
    pub fan_out_for: Duration,
    /// The idle-subscriber counts memory is measured at, each on a fresh server.
    pub idle: Vec<usize>,
}

impl Sizes {
    /// The sizes of the scenarios.
    pub fn full() -> Sizes {
        Sizes {
            append_for: Duration::from_secs(5),
            catch_up_messages: 1_000_000,
            catch_up_reads: 5,
            fan_out_subscribers: 1_000,
            fan_out_rate: 100.0,
            fan_out_for: Duration::from_secs(5),
            idle: vec![1_000, 10_000],
        }
    }

    /// For servers running under callgrind, some fifty times slower: long enough
    /// that what a scenario costs outweighs its start and end, with fewer subscribers
    /// (whose deliveries the slowed server must still keep up with). No idle memory:
    /// valgrind's own would swamp it.
    pub fn counted() -> Sizes {
        Sizes {
            append_for: Duration::from_secs(3),
            catch_up_messages: 100_000,
            catch_up_reads: 1,
            fan_out_subscribers: 100,
            fan_out_rate: 20.0,
            fan_out_for: Duration::from_secs(3),
            idle: Vec::new(),
        }
    }

    /// Seconds in all: a smoke test of the harness, not a measurement.
    pub fn quick() -> Sizes {
        Sizes {
            append_for: Duration::from_millis(300),
            catch_up_messages: 5_000,
            catch_up_reads: 3,
            fan_out_subscribers: 20,
            fan_out_rate: 100.0,
            fan_out_for: Duration::from_millis(300),
            idle: vec![50],
        }
    }
}

/// The figures one run of one server produced, by row id (see [`report::rows`]).
#[derive(Clone, Debug, Default)]
pub struct Figures(BTreeMap<String, f64>);

impl Figures {
    /// Records a figure.
    pub fn set(&mut self, id: &str, value: f64) {
        self.0.insert(id.to_owned(), value);
    }

    /// A recorded figure.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.0.get(id).copied()
    }

    /// The median of each figure over several runs.
    pub fn median(runs: &[Figures]) -> Figures {
        let mut out = Figures::default();
        let ids: std::collections::BTreeSet<&String> =
            runs.iter().flat_map(|r| r.0.keys()).collect();
        for id in ids {
            let values: Vec<f64> = runs.iter().filter_map(|r| r.get(id)).collect();
            if let Some(m) = stats::median(&values) {
                out.set(id, m);
            }
        }
        out
    }
}

/// One run of every scenario against `target`, each server start on a fresh
/// directory under `work`; under callgrind, counting its instructions, when `counted`.
pub async fn run_once(
    target: &Target,
    sizes: &Sizes,
    only: &Selection,
    work: &Path,
    run: usize,
    counted: bool,
) -> Result<Figures, BenchError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()?;
    let mut figures = Figures::default();
    let mut cold = Vec::new();
    let work = work.join(format!("{}-{run}", target.name));
    let fresh = |label: &str| {
        let dir = work.join(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .and_then(|()| dir.canonicalize())
            .map_err(BenchError::io("data dir"))
    };

    // Each data directory goes as soon as its server stops: a peer may preallocate
    // hundreds of megabytes in it (Electric's WAL segments are 128 MiB each).
    let main_dir = fresh("main")?;
    let server = start(target, &main_dir, &http, counted).await?;
    cold.extend(server.cold_start);
    if only.has("append-1") {
        tracing::info!(target = %target.name, "append, 1 producer");
        scenarios::append_throughput(&http, &server, 1, sizes, &mut figures).await?;
    }
    if only.has("append-16") {
        tracing::info!(target = %target.name, "append, 16 producers");
        scenarios::append_throughput(&http, &server, 16, sizes, &mut figures).await?;
    }
    if only.has("catch-up") {
        tracing::info!(target = %target.name, "catch-up");
        scenarios::catch_up(&http, &server, sizes, &mut figures).await?;
    }
    if only.has("fan-out") {
        tracing::info!(target = %target.name, "fan-out");
        scenarios::fan_out(&http, &server, sizes, &mut figures).await?;
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&main_dir);

    if target.is_local() && only.has("idle") && !counted {
        for &n in &sizes.idle {
            tracing::info!(target = %target.name, n, "idle subscribers");
            let dir = fresh(&format!("idle{n}"))?;
            let server = start(target, &dir, &http, counted).await?;
            cold.extend(server.cold_start);
            if let Some(kib) = scenarios::idle_memory(&http, &server, n).await? {
                figures.set(&format!("idle_{n}"), kib);
            }
            server.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let cold_ms: Vec<f64> = cold.into_iter().map(stats::ms).collect();
    if let Some(m) = stats::median(&cold_ms) {
        figures.set("cold_ms", m);
    }
    if counted {
        // The dumps stay, one per scenario, for `callgrind_annotate`.
        tracing::info!(dumps = %work.display(), "callgrind dumps kept");
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(figures)
}
