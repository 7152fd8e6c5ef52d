//! A lean SSE subscriber for the fan-out scenario: one HTTP/1.1 `GET` on a socket of
//! its own, the response's chunked framing undone by hand and its events decoded by
//! the core's SSE decoder. A thousand of them share the load generator's cores with
//! the server; a full HTTP client per subscriber would spend more of those cores
//! than the server under test.

use gapless_core::sse::SseDecoder;
use tokio::net::TcpStream;

use super::arrival::{Clock, StampedSocket, Stamps};
use super::BenchError;
use crate::chunked::Dechunker;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// An open SSE response, read as it comes.
pub struct SseReader {
    socket: StampedSocket,
    /// Bytes read and not yet unframed.
    buf: Vec<u8>,
    /// The body comes in chunks (otherwise it runs to the end of the connection).
    chunked: Option<Dechunker>,
    decoder: SseDecoder,
}

impl SseReader {
    /// Sends `GET url` (an `http://` URL) and reads the response head: a 200 with a
    /// body is required.
    pub async fn open(url: &str, clock: &Clock) -> Result<SseReader, BenchError> {
        let bad = |why: String| BenchError::Server(format!("{url}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("no port".into()))?;
        let target = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(BenchError::io("connect"))?;
        stream
            .set_nodelay(true)
            .map_err(BenchError::io("nodelay"))?;
        let mut socket = StampedSocket::new(stream).map_err(BenchError::io("timestamps"))?;
        let request = format!(
            "GET {target} HTTP/1.1\r\nhost: {host}:{port}\r\naccept: text/event-stream\r\n\r\n"
        );
        socket
            .write_all(request.as_bytes())
            .await
            .map_err(BenchError::io("request"))?;
        let mut buf = Vec::with_capacity(4096);
        let head_end = loop {
            if let Some(at) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err(bad("response head too large".into()));
            }
            if read_more(&mut socket, &mut buf, clock).await?.0 == 0 {
                return Err(bad("closed before the response head".into()));
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(bad(format!("answered {status}")));
        }
        let chunked = head
            .lines()
            .filter_map(|l| l.strip_prefix("transfer-encoding:"))
            .any(|v| v.contains("chunked"));
        buf.drain(..head_end);
        Ok(SseReader {
            socket,
            buf,
            chunked: chunked.then(Dechunker::default),
            decoder: SseDecoder::new(),
        })
    }

    /// Reads until the response ends, handing the data of each `data` event, and when
    /// the read that completed it was made and arrived, to `on_data`; an error if a
    /// chunked body is cut short.
    pub async fn each_data(
        mut self,
        mut on_data: impl FnMut(&str, Stamps),
        clock: &Clock,
    ) -> Result<(), BenchError> {
        let mut stamps = Stamps {
            read: clock.now(),
            arrived: None,
        };
        loop {
            let more = self.unframe()?;
            while let Some(event) = self.decoder.next_event() {
                let event = event.map_err(|e| BenchError::Server(e.to_string()))?;
                if event.event == "data" {
                    on_data(&event.data, stamps);
                }
            }
            if !more {
                return Ok(());
            }
            let (n, now) = read_more(&mut self.socket, &mut self.buf, clock).await?;
            stamps = now;
            if n == 0 {
                // The end of the connection ends a body that runs to it; a chunked
                // body has its own end, and one cut short is an error.
                return match self.chunked {
                    None => Ok(()),
                    Some(_) => Err(BenchError::Server("SSE response cut short".into())),
                };
            }
        }
    }

    /// Hands the body bytes in `buf` to the decoder, undoing the chunked framing;
    /// `false` once the body has ended.
    fn unframe(&mut self) -> Result<bool, BenchError> {
        let decoder = &mut self.decoder;
        match &mut self.chunked {
            None => {
                decoder.feed(&self.buf);
                self.buf.clear();
                Ok(true)
            }
            Some(dechunker) => dechunker
                .feed(&mut self.buf, |data| decoder.feed(data))
                .map(|ended| !ended)
                .map_err(|e| BenchError::Server(e.to_string())),
        }
    }
}

/// Reads what the socket has into `buf`: how many bytes (0: closed), and when.
async fn read_more(
    socket: &mut StampedSocket,
    buf: &mut Vec<u8>,
    clock: &Clock,
) -> Result<(usize, Stamps), BenchError> {
    socket
        .read(buf, clock)
        .await
        .map_err(BenchError::io("read"))
}
