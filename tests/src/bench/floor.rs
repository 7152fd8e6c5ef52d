//! The loopback floor of the fan-out scenario: the same subscribers, rate and length
//! over raw TCP, with no HTTP, SSE, JSON or storage, so that the table's fan-out
//! latencies can be read against what this machine's loopback alone costs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::arrival::{Clock, StampedSocket};
use super::stats::{Delivery, Latency};
use super::{BenchError, Sizes};

/// The bytes of one message: about one SSE delivery of scenario 4 (a data event, its
/// control event and the chunk's framing). Its last 8 bytes are the send time.
pub const FRAME: usize = 256;

/// Writes a frame to each of `sizes.fan_out_subscribers` raw TCP connections at
/// `sizes.fan_out_rate` for `sizes.fan_out_for`, and measures write-to-read latency,
/// and write-to-arrival latency when the kernel gives receive times.
///
/// The writing side runs on a runtime of its own with two workers, each writing to
/// half of the connections (as a server's two workers would); the readers run on the
/// caller's runtime, as the scenario's subscribers do.
pub async fn fan_out_floor(sizes: &Sizes) -> Result<(Latency, Option<Latency>), BenchError> {
    let writer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(BenchError::io("writer runtime"))?;
    let outcome = measure(&writer, sizes).await;
    writer.shutdown_background();
    outcome
}

async fn measure(
    writer: &tokio::runtime::Runtime,
    sizes: &Sizes,
) -> Result<(Latency, Option<Latency>), BenchError> {
    let listener = writer
        .spawn(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .map_err(|e| BenchError::Server(e.to_string()))?
        .map_err(BenchError::io("bind"))?;
    let addr = listener.local_addr().map_err(BenchError::io("bind"))?;
    let subscribers = sizes.fan_out_subscribers;
    // Accepted on the writing runtime, so that its reactor drives the written sockets.
    let accepting = writer.spawn(async move {
        let mut written = Vec::with_capacity(subscribers);
        while written.len() < subscribers {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            written.push(socket);
        }
        Ok::<_, std::io::Error>(written)
    });
    let clock = Clock::start();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(BenchError::io("connect"))?;
        let stream = StampedSocket::new(stream).map_err(BenchError::io("timestamps"))?;
        readers.push(tokio::spawn(read_frames(stream, clock, samples.clone())));
    }
    let mut written = accepting
        .await
        .map_err(|e| BenchError::Server(e.to_string()))?
        .map_err(BenchError::io("accept"))?;
    let half = written.len() / 2;
    let halves = [written.split_off(half), written];
    let halves: Vec<_> = halves
        .into_iter()
        .map(|h| Arc::new(tokio::sync::Mutex::new(h)))
        .collect();
    let interval = Duration::from_secs_f64(1.0 / sizes.fan_out_rate);
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < sizes.fan_out_for {
        tokio::time::sleep_until((started + interval * sent).into()).await;
        let mut frame = vec![b'x'; FRAME];
        let t = clock.now().as_micros() as u64;
        frame[FRAME - 8..].copy_from_slice(&t.to_le_bytes());
        let frame = Arc::new(frame);
        let tasks: Vec<_> = halves
            .iter()
            .map(|half| {
                let (half, frame) = (half.clone(), frame.clone());
                writer.spawn(async move {
                    for socket in half.lock().await.iter_mut() {
                        socket.write_all(&frame).await?;
                    }
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|e| BenchError::Server(e.to_string()))?
                .map_err(BenchError::io("write"))?;
        }
        sent += 1;
    }
    let expected = sent as usize * sizes.fan_out_subscribers;
    let deadline = Instant::now() + Duration::from_secs(15);
    while samples.lock().map_err(|_| BenchError::Poisoned)?.len() < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in &readers {
        reader.abort();
    }
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| BenchError::Poisoned)?);
    if samples.len() < expected {
        return Err(BenchError::Server(format!(
            "loopback floor: {} of {expected} frames arrived",
            samples.len()
        )));
    }
    Ok(Delivery::latencies(samples))
}

/// Reads whole frames, recording for each the time since it was written, to its
/// reading and to its arrival.
async fn read_frames(
    mut socket: StampedSocket,
    clock: Clock,
    samples: Arc<Mutex<Vec<Delivery>>>,
) -> Result<(), BenchError> {
    let mut buf = Vec::with_capacity(16 * FRAME);
    loop {
        let (n, stamps) = socket
            .read(&mut buf, &clock)
            .await
            .map_err(BenchError::io("read"))?;
        if n == 0 {
            return Ok(());
        }
        let whole = buf.len() / FRAME * FRAME;
        let mut out = samples.lock().map_err(|_| BenchError::Poisoned)?;
        for frame in buf[..whole].chunks_exact(FRAME) {
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&frame[FRAME - 8..]);
            let sent = Duration::from_micros(u64::from_le_bytes(sent));
            out.push(Delivery::of(sent, stamps));
        }
        drop(out);
        buf.drain(..whole);
    }
}
