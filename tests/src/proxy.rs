//! A loopback TCP proxy that cuts connections: the fault injector of the client tests.
//!
//! Each connection is forwarded to the upstream server. Each piece of the server's
//! answer is, with the configured probability, cut after a random number of its
//! bytes and the connection dropped — after the server has processed the request,
//! which is exactly the "was my append applied?" situation idempotent producers
//! must survive. `cut_all` drops every open
//! connection at once (a network blip).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut_all: watch::Sender<u64>,
    cuts: Arc<AtomicU64>,
    /// The share of answer pieces cut, per mille (see [`Proxy::set_cut_per_mille`]).
    cut_per_mille: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// xorshift64*: deterministic randomness for fault decisions.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Proxy {
    /// Proxies to `upstream` (host:port), cutting `cut_per_mille`/1000 of the
    /// pieces of the server's answers part-way; `seed` makes it repeatable.
    pub async fn start(upstream: &str, cut_per_mille: u64, seed: u64) -> Proxy {
        Self::with_stalls(upstream, cut_per_mille, 0, seed).await
    }

    /// Like [`Proxy::start`], and also holds `stall_per_mille`/1000 of the pieces
    /// back for 0.1 to 1.5 s before forwarding them.
    pub async fn with_stalls(
        upstream: &str,
        cut_per_mille: u64,
        stall_per_mille: u64,
        seed: u64,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (cut_all, cut_rx) = watch::channel(0u64);
        let cuts = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let counter = Arc::clone(&cuts);
        let cut_rate = Arc::new(AtomicU64::new(cut_per_mille));
        let rate = Arc::clone(&cut_rate);
        let task = tokio::spawn(async move {
            let mut rng = Rng(seed | 1);
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    // A connection reset before it was accepted, or a momentary
                    // shortage of descriptors: keep serving.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let conn_seed = rng.next();
                let upstream = upstream.clone();
                // A new connection must only see cuts ordered after it was accepted.
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update();
                let counter = Arc::clone(&counter);
                let rate = Arc::clone(&rate);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let faults = Faults {
                            cut_per_mille: rate,
                            stall_per_mille,
                            seed: conn_seed,
                        };
                        pump(client, server, faults, cut_rx, counter).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            cut_all,
            cuts,
            cut_per_mille: cut_rate,
            task,
        }
    }

    /// Cuts `per_mille`/1000 of the answer pieces from now on, on every connection.
    pub fn set_cut_per_mille(&self, per_mille: u64) {
        self.cut_per_mille.store(per_mille, Ordering::Relaxed);
    }

    /// The proxy's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection.
    pub fn cut_all(&self) {
        self.cut_all.send_modify(|v| *v += 1);
    }

    /// How many connections were cut at random so far (those [`Proxy::cut_all`]
    /// dropped are not counted).
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// What one connection suffers.
#[derive(Clone, Debug)]
struct Faults {
    cut_per_mille: Arc<AtomicU64>,
    stall_per_mille: u64,
    seed: u64,
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    faults: Faults,
    mut cut_all: watch::Receiver<u64>,
    cuts: Arc<AtomicU64>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let upstream = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let downstream = async move {
        let mut rng = Rng(faults.seed | 1);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if rng.next() % 1000 < faults.stall_per_mille {
                let pause = 100 + rng.next() % 1400;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            if rng.next() % 1000 < faults.cut_per_mille.load(Ordering::Relaxed) {
                let keep = (rng.next() % n as u64) as usize;
                let _ = cw.write_all(&buf[..keep]).await;
                return true;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return false;
            }
        }
    };
    let cut = tokio::select! {
        cut = downstream => cut,
        () = upstream => false,
        // Dropped with every other connection: not a cut at random.
        _ = cut_all.changed() => false,
    };
    if cut {
        cuts.fetch_add(1, Ordering::Relaxed);
    }
}
