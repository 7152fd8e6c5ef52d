//! `gapless-bench`: runs the Durable Streams benchmark scenarios against gapless and
//! its peers (or any DS server URL) in one run and writes the comparison table.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gapless_tests::bench::servers::{ServerKind, Target};
use gapless_tests::bench::{floor, report, run_once, Figures, Selection, Sizes};

/// Benchmarks gapless against its peers, side by side, in one run.
#[derive(Debug, Parser)]
#[command(name = "gapless-bench", version)]
struct Args {
    /// Small sizes, seconds in all: a smoke test of the harness, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Counts each server's instructions per operation under valgrind's callgrind
    /// instead of timing it: repeatable whatever else the machine does, but user space
    /// only (no kernel work) and not for the Node server (a JIT's instructions would
    /// not compare). Smaller sizes; idle memory and cold start are not measured.
    #[arg(long)]
    instructions: bool,
    /// Runs per server; each figure is the median over them.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The `gapless-server` binary to measure (the first column).
    #[arg(long)]
    gapless: Option<PathBuf>,
    /// gapless's `--durability` (full: an fsync per group commit, like Electric's wal).
    #[arg(long, default_value = "full")]
    gapless_durability: String,
    /// The directory of the Node reference server's `serve.mjs` (with node_modules).
    #[arg(long)]
    node: Option<PathBuf>,
    /// Electric's `durable-streams-server` binary.
    #[arg(long)]
    electric: Option<PathBuf>,
    /// Any other Durable Streams server, as NAME=URL where streams live under URL
    /// (repeatable; memory and cold start are not measured for these).
    #[arg(long = "url", value_name = "NAME=URL")]
    urls: Vec<String>,
    /// Only these scenarios, comma-separated (append, catch-up, fan-out, idle); cold
    /// start is measured from every server start.
    #[arg(long, value_parser = Selection::parse)]
    only: Option<Selection>,
    /// Where servers keep their data during the run.
    #[arg(long, default_value = "target/bench/work")]
    work: PathBuf,
    /// Where the results table is written.
    #[arg(long, default_value = "target/bench/results.md")]
    out: PathBuf,
}

fn targets(args: &Args) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    if let Some(bin) = &args.gapless {
        out.push(Target {
            name: "gapless".into(),
            kind: ServerKind::Gapless {
                bin: bin.clone(),
                durability: args.gapless_durability.clone(),
            },
        });
    }
    if let Some(dir) = args.node.as_ref().filter(|_| !args.instructions) {
        out.push(Target {
            name: "node".into(),
            kind: ServerKind::Node { dir: dir.clone() },
        });
    }
    if let Some(bin) = &args.electric {
        out.push(Target {
            name: "electric".into(),
            kind: ServerKind::Electric { bin: bin.clone() },
        });
    }
    if args.instructions && !args.urls.is_empty() {
        return Err("--instructions counts only servers it starts, not --url ones".into());
    }
    for spec in &args.urls {
        let (name, base) = spec
            .split_once('=')
            .ok_or_else(|| format!("--url wants NAME=URL, got {spec:?}"))?;
        out.push(Target {
            name: name.into(),
            kind: ServerKind::External { base: base.into() },
        });
    }
    if out.is_empty() {
        return Err("nothing to measure: give --gapless, --node, --electric or --url".into());
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GAPLESS_BENCH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let targets = match targets(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gapless-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let sizes = if args.quick {
        Sizes::quick()
    } else if args.instructions {
        Sizes::counted()
    } else {
        Sizes::full()
    };
    // Run by run, every server in turn: a noisy minute on this machine then weighs on
    // each server's figures rather than on one server's. Each run starts with the
    // next server, so that none is always the first (or the last) of a round.
    let only = args.only.clone().unwrap_or_else(Selection::all);
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
    for run in 0..args.runs.max(1) {
        let n = targets.len();
        for i in (0..n).map(|k| (k + run) % n) {
            let (target, figures) = (&targets[i], &mut runs[i]);
            tracing::info!(target = %target.name, run, "starting");
            match run_once(target, &sizes, &only, &args.work, run, args.instructions).await {
                Ok(f) => figures.push(f),
                Err(e) => {
                    eprintln!("gapless-bench: {} failed: {e}", target.name);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let all: Vec<Figures> = runs.iter().map(|r| Figures::median(r)).collect();
    let floor = if only.has("fan-out") && !args.instructions {
        tracing::info!("fan-out over raw loopback TCP (the floor)");
        match floor::fan_out_floor(&sizes).await {
            Ok((read, arrived)) => format!(
                "\nFor scale, scenario 4 over raw loopback TCP in this run (no server: the same \
                 subscribers, rate and length, {}-byte writes from two threads, read by the same \
                 runtime as the subscribers): to the read p50 {} ms, p99 {} ms, max {} ms; \
                 to the arrival {}.\n",
                floor::FRAME,
                report::show(read.p50_ms),
                report::show(read.p99_ms),
                report::show(read.max_ms),
                arrived.map_or_else(
                    || "not timestamped".to_owned(),
                    |a| format!(
                        "p50 {} ms, p99 {} ms, max {} ms",
                        report::show(a.p50_ms),
                        report::show(a.p99_ms),
                        report::show(a.max_ms)
                    )
                )
            ),
            Err(e) => {
                eprintln!("gapless-bench: the loopback floor failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        String::new()
    };
    let table = report::table(&sizes, &targets, &all, args.instructions);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let counted = if args.instructions {
        "Instructions counted by valgrind's callgrind in each server's own code and \
         libraries (user space: the kernel's work for system calls, TCP and the disk is \
         not counted), from the start to the end of each scenario's measured part. \
         Valgrind runs a server's threads one at a time, so concurrent appends form \
         other groups than they would natively.\n\n"
    } else {
        ""
    };
    let text = format!(
        "# gapless-bench results\n\n{} mode, {} run(s) per server, the servers in turn, each run \
         starting with the next (medians), {cores} cores, \
         loopback, the load generator on the same cores.\n\n{counted}{table}{floor}",
        match (args.quick, args.instructions) {
            (true, _) => "quick (smoke test, not a measurement)",
            (false, true) => "instruction-counting",
            (false, false) => "full",
        },
        args.runs.max(1),
    );
    println!("{text}");
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&args.out, &text) {
        eprintln!("gapless-bench: writing {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
