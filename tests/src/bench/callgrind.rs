//! Counting a server's instructions under valgrind's callgrind: a count that does not
//! move with what else the machine is doing, where CPU time on a noisy 2-core machine
//! does. Wraps a server's command, zeroes its counters before a scenario and dumps
//! them after, and reads the total from the dump.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::BenchError;

/// Where one server's counters are dumped.
#[derive(Clone, Debug)]
pub struct Callgrind {
    /// The dump file's name; each dump adds `.N` to it.
    out: PathBuf,
}

impl Callgrind {
    /// Wraps `command` so that it runs under callgrind, dumping to `out` (`.1`, `.2`,
    /// … per dump). Only user-space instructions are counted: the kernel's work
    /// (system calls, TCP, disk) is not.
    pub fn wrap(command: &Command, out: &Path) -> (Command, Callgrind) {
        let inner = command.as_std();
        let mut wrapped = Command::new("valgrind");
        wrapped
            .arg("--tool=callgrind")
            .arg("--quiet")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(inner.get_program())
            .args(inner.get_args());
        for (key, value) in inner.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = inner.get_current_dir() {
            wrapped.current_dir(dir);
        }
        (
            wrapped,
            Callgrind {
                out: out.to_owned(),
            },
        )
    }

    /// Zeroes the counters of process `pid` (a scenario's count starts here).
    pub async fn zero(&self, pid: u32) -> Result<(), BenchError> {
        control(pid, "--zero").await
    }

    /// Dumps the counters of process `pid` and returns the instructions executed
    /// since they were last zeroed (or dumped).
    pub async fn dump(&self, pid: u32) -> Result<u64, BenchError> {
        control(pid, "--dump").await?;
        let newest = self.newest_dump()?;
        let text = std::fs::read_to_string(&newest).map_err(BenchError::io("callgrind dump"))?;
        totals(&text)
            .ok_or_else(|| BenchError::Server(format!("{}: no totals line", newest.display())))
    }

    /// The dump with the highest number.
    fn newest_dump(&self) -> Result<PathBuf, BenchError> {
        self.dumps()?
            .into_iter()
            .max_by_key(|(n, _)| *n)
            .map(|(_, path)| path)
            .ok_or_else(|| {
                BenchError::Server(format!("no callgrind dump beside {}", self.out.display()))
            })
    }

    /// Removes the dumps an earlier run left beside `out`, which the newest of this
    /// run's could otherwise be taken for.
    pub fn clear_earlier_dumps(&self) -> Result<(), BenchError> {
        for (_, path) in self.dumps()? {
            std::fs::remove_file(path).map_err(BenchError::io("old callgrind dump"))?;
        }
        Ok(())
    }

    /// The numbered dumps beside `out`.
    fn dumps(&self) -> Result<Vec<(u64, PathBuf)>, BenchError> {
        let dir = self.out.parent().unwrap_or(Path::new("."));
        let stem = self
            .out
            .file_name()
            .map(|n| format!("{}.", n.to_string_lossy()))
            .unwrap_or_default();
        Ok(std::fs::read_dir(dir)
            .map_err(BenchError::io("callgrind dumps"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n: u64 = name.strip_prefix(&stem)?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect())
    }
}

/// Runs `callgrind_control ACTION PID`.
async fn control(pid: u32, action: &str) -> Result<(), BenchError> {
    let status = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(BenchError::io("callgrind_control"))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Server(format!(
            "callgrind_control {action} {pid} exited with {status}"
        )))
    }
}

/// The instruction count in a callgrind dump's `totals:` line.
///
/// ```
/// use gapless_tests::bench::callgrind::totals;
///
/// assert_eq!(totals("events: Ir\nsummary: 17502257\ntotals: 17502263\n"), Some(17502263));
/// assert_eq!(totals("events: Ir\n"), None);
/// ```
pub fn totals(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
