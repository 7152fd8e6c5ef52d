//! The time a message arrived, as the kernel saw it: the fan-out subscribers (and
//! the loopback floor's readers) read their sockets with the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`), so that a delivery's latency can be counted to when
//! its bytes reached the subscriber's socket as well as to when the load generator,
//! busy with a thousand readers on the server's cores, came round to read them.
//!
//! For a TCP socket the kernel hands the timestamp of the last segment a read took:
//! a read that takes two deliveries dates both by the later one, so the arrival
//! latency errs long, never short.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// The most a stamped read takes at once.
pub const READ_SIZE: usize = 8192;

/// One clock for a scenario: the time since it started, read from the program
/// (`Instant`) or from a kernel timestamp (wall-clock time).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    /// The wall-clock time at `start`, since the Unix epoch.
    epoch: Duration,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        let start = Instant::now();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock { start, epoch }
    }

    /// The time since the clock started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A kernel timestamp (since the Unix epoch) as time since the clock started.
    pub fn of_kernel(&self, stamp: Duration) -> Duration {
        stamp.saturating_sub(self.epoch)
    }
}

/// When a read's bytes were read and when they arrived, on a scenario's [`Clock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamps {
    /// When the program read them.
    pub read: Duration,
    /// When the kernel received the last of them (`None` if it gave no timestamp).
    pub arrived: Option<Duration>,
}

/// A socket read with the kernel's receive timestamps.
#[derive(Debug)]
pub struct StampedSocket {
    stream: TcpStream,
    /// Where a read lands before it is appended to the caller's buffer.
    scratch: Box<[u8; READ_SIZE]>,
    /// Room for the timestamp's control message.
    control: Vec<u8>,
}

impl StampedSocket {
    /// Asks the kernel to timestamp what `stream` receives.
    pub fn new(stream: TcpStream) -> io::Result<StampedSocket> {
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(StampedSocket {
            stream,
            scratch: Box::new([0; READ_SIZE]),
            control: nix::cmsg_space!(TimeSpec),
        })
    }

    /// Writes all of `bytes` to the socket.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Waits for data and appends what the socket has (at most [`READ_SIZE`]) to
    /// `buf`: how many bytes (0: closed) and when, on `clock`.
    ///
    /// (Unlike tokio's own reads, which take a read that did not fill the buffer to
    /// have emptied the socket, the next call asks the socket once more before it
    /// waits: tokio lets only its own reads clear a socket's readiness so.)
    pub async fn read(&mut self, buf: &mut Vec<u8>, clock: &Clock) -> io::Result<(usize, Stamps)> {
        loop {
            self.stream.readable().await?;
            let fd = self.stream.as_raw_fd();
            let (scratch, control) = (&mut self.scratch, &mut self.control);
            let got = self.stream.try_io(Interest::READABLE, || {
                receive(fd, &mut scratch[..], control)
            });
            match got {
                Ok((n, arrived)) => {
                    buf.extend_from_slice(&self.scratch[..n]);
                    let stamps = Stamps {
                        read: clock.now(),
                        arrived: arrived.map(|at| clock.of_kernel(at)),
                    };
                    return Ok((n, stamps));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One `recvmsg` into `into`: how many bytes, and the kernel's receive time of the
/// last of them (since the Unix epoch) if it gave one.
fn receive(
    fd: RawFd,
    into: &mut [u8],
    control: &mut Vec<u8>,
) -> io::Result<(usize, Option<Duration>)> {
    let mut iov = [io::IoSliceMut::new(into)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let mut arrived = None;
    for message in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(at) = message {
            arrived = Some(Duration::new(
                u64::try_from(at.tv_sec()).unwrap_or_default(),
                u32::try_from(at.tv_nsec()).unwrap_or_default(),
            ));
        }
    }
    Ok((msg.bytes, arrived))
}
