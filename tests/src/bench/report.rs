//! The results table: one row per figure, one column per server, and beside each
//! peer gapless's ratio to it (above 1 means gapless is ahead, whichever way the
//! figure points).

use std::fmt::Write as _;

use super::servers::Target;
use super::{Figures, Sizes};

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, memory, time).
    Lower,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The figure's id in [`Figures`].
    pub id: String,
    /// What it is, as the table says it.
    pub label: String,
    /// Its unit.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
}

fn row(id: &str, label: &str, unit: &'static str, better: Better) -> Row {
    Row {
        id: id.to_owned(),
        label: label.to_owned(),
        unit,
        better,
    }
}

/// The rows a run with `sizes` fills, in the issue's order; when `counted`, the
/// servers' instructions per operation instead.
pub fn rows(sizes: &Sizes, counted: bool) -> Vec<Row> {
    use Better::{Higher, Lower};
    if counted {
        return vec![
            row(
                "append1_ir",
                "1. append, 1 producer: server instructions per append",
                "instructions",
                Lower,
            ),
            row(
                "append16_ir",
                "2. append, 16 producers: server instructions per append",
                "instructions",
                Lower,
            ),
            row(
                "fill_ir",
                "3. fill, arrays of 1,000: server instructions per message",
                "instructions",
                Lower,
            ),
            row(
                "catchup_ir",
                &format!(
                    "3. catch-up read of {} messages: server instructions per message",
                    sizes.catch_up_messages
                ),
                "instructions",
                Lower,
            ),
            row(
                "fanout_ir",
                &format!(
                    "4. fan-out to {} SSE subscribers: server instructions per delivery",
                    sizes.fan_out_subscribers
                ),
                "instructions",
                Lower,
            ),
        ];
    }
    let mut rows = vec![
        row(
            "append1_rate",
            "1. append, 1 producer, 100 B JSON, each acked",
            "appends/s",
            Higher,
        ),
        row("append1_p50", "1. … ack latency p50", "ms", Lower),
        row("append1_p99", "1. … ack latency p99", "ms", Lower),
        row("append1_cpu", "1. … server CPU per append", "µs", Lower),
        row(
            "append16_rate",
            "2. append, 16 producers on 16 streams",
            "appends/s",
            Higher,
        ),
        row("append16_p50", "2. … ack latency p50", "ms", Lower),
        row("append16_p99", "2. … ack latency p99", "ms", Lower),
        row("append16_cpu", "2. … server CPU per append", "µs", Lower),
        row(
            "fill_rate",
            &format!(
                "3. fill: {} messages in arrays of 1,000",
                sizes.catch_up_messages
            ),
            "msgs/s",
            Higher,
        ),
        row(
            "catchup_mb_s",
            &format!(
                "3. catch-up read from offset -1 (median of {} reads)",
                sizes.catch_up_reads
            ),
            "MB/s",
            Higher,
        ),
        row(
            "catchup_msgs_s",
            "3. … the same in messages",
            "msgs/s",
            Higher,
        ),
        row("catchup_cpu_mb", "3. … server CPU per MB read", "µs", Lower),
        row(
            "fanout_rate",
            &format!(
                "4. fan-out to {} SSE subscribers: producer rate reached (cap {})",
                sizes.fan_out_subscribers, sizes.fan_out_rate
            ),
            "msgs/s",
            Higher,
        ),
        row("fanout_p50", "4. … publish-to-read p50", "ms", Lower),
        row("fanout_p99", "4. … p99", "ms", Lower),
        row("fanout_max", "4. … max", "ms", Lower),
        row(
            "fanout_arrival_p50",
            "4. … publish-to-arrival p50 (kernel receive time)",
            "ms",
            Lower,
        ),
        row("fanout_arrival_p99", "4. … p99", "ms", Lower),
        row("fanout_arrival_max", "4. … max", "ms", Lower),
        row("fanout_delivered", "4. … deliveries received", "%", Higher),
        row("fanout_cpu", "4. … server CPU per delivery", "µs", Lower),
    ];
    for n in &sizes.idle {
        rows.push(row(
            &format!("idle_{n}"),
            &format!("5. memory per idle SSE subscriber, {n} subscribers"),
            "KiB",
            Lower,
        ));
    }
    rows.push(row(
        "cold_ms",
        "6. cold start to first answer (median of starts)",
        "ms",
        Lower,
    ));
    rows
}

/// How many times better `ours` is than `theirs` (above 1: gapless ahead).
///
/// ```
/// use gapless_tests::bench::report::{ratio, Better};
///
/// assert_eq!(ratio(Better::Higher, 200.0, 100.0), Some(2.0));
/// assert_eq!(ratio(Better::Lower, 1.0, 4.0), Some(4.0));
/// assert_eq!(ratio(Better::Lower, 0.0, 4.0), None);
/// ```
pub fn ratio(better: Better, ours: f64, theirs: f64) -> Option<f64> {
    let r = match better {
        Better::Higher => ours / theirs,
        Better::Lower => theirs / ours,
    };
    (r.is_finite() && r > 0.0).then_some(r)
}

/// A figure as the table shows it: three significant digits, thousands grouped.
///
/// ```
/// use gapless_tests::bench::report::show;
///
/// assert_eq!(show(39760.4), "39,760");
/// assert_eq!(show(0.1634), "0.163");
/// assert_eq!(show(7.04), "7.04");
/// ```
pub fn show(value: f64) -> String {
    if value.abs() >= 100.0 {
        let n = value.round() as i64;
        let digits = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The Markdown table: the first target is gapless, the others are its peers; the
/// instruction counts when `counted`.
pub fn table(sizes: &Sizes, targets: &[Target], figures: &[Figures], counted: bool) -> String {
    let mut out = String::new();
    let _ = write!(out, "| figure | unit |");
    for (i, t) in targets.iter().enumerate() {
        let _ = write!(out, " {} |", t.name);
        if i > 0 {
            let _ = write!(out, " {} ÷ {} |", targets[0].name, t.name);
        }
    }
    out.push('\n');
    let columns = 2 + targets.len() * 2 - 1;
    out.push_str(&"|---".repeat(columns));
    out.push_str("|\n");
    for r in rows(sizes, counted) {
        let _ = write!(out, "| {} | {} |", r.label, r.unit);
        let ours = figures.first().and_then(|f| f.get(&r.id));
        for (i, f) in figures.iter().enumerate() {
            let value = f.get(&r.id);
            let _ = write!(out, " {} |", value.map_or("n/a".into(), show));
            if i > 0 {
                let shown = match (ours, value) {
                    (Some(a), Some(b)) => {
                        ratio(r.better, a, b).map_or("n/a".into(), |x| format!("{x:.2}×"))
                    }
                    _ => "n/a".into(),
                };
                let _ = write!(out, " {shown} |");
            }
        }
        out.push('\n');
    }
    out.push_str("\nDurability of each server during the run:\n\n");
    for t in targets {
        let _ = writeln!(out, "- {}: {}", t.name, t.durability());
    }
    out
}
