//! The property the `server_wire` fuzz target checks, also replayed over its kept
//! corpus by `server-stub/tests/fuzz_corpus.rs`: the server's lean HTTP layer answers a
//! request on the wire exactly as hyper and the router do. Each request is sent twice
//! to one running server, on a connection of its own: framed by a `Content-Length`
//! (which the lean layer reads) and chunked (which it leaves to hyper, and so to the
//! router), each under a name of its own, so that the two see the same state. Their
//! answers must be the same, but for what names them apart (the prefix, the offsets'
//! epochs) and what the clock gives (the date, times in milliseconds, cursors).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Server;

/// Most requests one input sends.
const MAX_REQUESTS: usize = 4;

/// The running server every input is sent to, and the runtime it runs on.
fn server() -> &'static (tokio::runtime::Runtime, SocketAddr) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, SocketAddr)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        // (Unknown event kinds taken, so that more session events get through.)
        let config = super::fuzz_config(false);
        let addr = rt.block_on(async {
            let server = Server::bind(config).await.expect("the server");
            let addr = server.addr();
            tokio::spawn(server.run());
            addr
        });
        (rt, addr)
    })
}

/// One request of an input: `METHOD TARGET\nName: value\n...\n\nbody`.
struct Asked<'a> {
    method: &'a str,
    target: String,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

impl<'a> Asked<'a> {
    /// Reads one request, or nothing if it cannot be written as one on the wire (a
    /// method that is no token, a target or header with bytes a request line or
    /// header line cannot carry), or one this check does not send: outside the stream
    /// and session routes (their state is shared), or a live SSE read (it lasts a
    /// second).
    fn of(data: &'a [u8]) -> Option<Self> {
        let (head, body) = match memchr::memmem::find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &[][..]),
        };
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.split('\n');
        let (method, target) = lines.next()?.split_once(' ')?;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !token(method) || !visible(target) || target.contains("live=sse") {
            return None;
        }
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':')?;
            let value = value.trim_matches(' ');
            if !token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return None;
            }
            // The framing and the connection are this check's to set.
            if ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                continue;
            }
            headers.push((name, value));
        }
        let routed = ["/v1/stream/", "/api/sessions/"]
            .iter()
            .any(|root| target.starts_with(root));
        routed.then(|| Asked {
            method,
            target: target.to_owned(),
            headers,
            body,
        })
    }

    /// The request on the wire, its stream or session named under `prefix`, framed
    /// chunked or by its length, asking for the connection to close after it.
    fn wire(&self, prefix: &str, chunked: bool) -> Vec<u8> {
        // (A session's stream is `sessions/<id>`: the prefix goes after `sessions/` on
        // the stream routes too, so that both routes name the same streams.)
        let target = ["/v1/stream/sessions/", "/v1/stream/", "/api/sessions/"]
            .iter()
            .find_map(|root| {
                let rest = self.target.strip_prefix(root)?;
                Some(format!("{root}{prefix}{rest}"))
            })
            .unwrap_or_else(|| self.target.clone());
        let mut out = format!("{} {target} HTTP/1.1\r\n", self.method).into_bytes();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(b"Host: t\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n");
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if !self.body.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                out.extend_from_slice(self.body);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(
                format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes(),
            );
            out.extend_from_slice(self.body);
        }
        out
    }
}

/// An answer as the two are compared: status, header lines (names lowercased, sorted,
/// the date left out) and body (chunks joined), with `prefix` written `P`, the
/// offsets' epochs `E`, times `T`, an entity tag's stream `I` and a cursor `C`.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// Reads the one answer `bytes` hold (everything the server sent before it
    /// closed); `None` if they hold no complete answer.
    fn of(bytes: &[u8], prefix: &str) -> Option<Answer> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
            return None;
        };
        let status = parsed.code?;
        let mut chunked = false;
        let mut kept = Vec::new();
        for h in parsed.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            let value = String::from_utf8_lossy(h.value);
            chunked |= name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked");
            // (An entity tag names its stream's id and epoch: the part before its
            // first colon. A cursor is the clock's.)
            let value = match value.split_once(':') {
                Some((_, range)) if name == "etag" => format!("I:{range}"),
                _ if name == "stream-cursor" => "C".to_owned(),
                _ => normalize(&value, prefix),
            };
            if name != "date" {
                kept.push((name, value));
            }
        }
        kept.sort();
        let rest = &bytes[len..];
        let body = if chunked {
            unchunk(rest)?
        } else {
            rest.to_vec()
        };
        Some(Answer {
            status,
            headers: kept,
            body: normalize(&String::from_utf8_lossy(&body), prefix),
        })
    }
}

/// A chunked body's data, if it is whole.
fn unchunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = memchr::memmem::find(rest, b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// `text` with `prefix` written `P`, each offset's epoch (sixteen digits before an
/// underscore) written `E`, and each time in milliseconds (thirteen digits: an
/// event's timestamp, a view's last activity) written `T`.
fn normalize(text: &str, prefix: &str) -> String {
    let text = text.replace(prefix, "P");
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 16 && bytes.get(i + 16) == Some(&b'_') {
            out.push('E');
            i += 16;
        } else if digits == 13 {
            out.push('T');
            i += 13;
        } else if digits > 0 {
            out.push_str(&text[i..i + digits]);
            i += digits;
        } else {
            let c = text[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8().max(1);
        }
    }
    out
}

/// Sends `request` on a connection of its own and reads until the server closes it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request).await.expect("write");
    let mut all = Vec::new();
    let _ = conn.read_to_end(&mut all).await;
    all
}

/// Sends each request of `data` (up to four, separated by NUL bytes) both
/// ways and panics where the answers differ, or where either is not a whole answer
/// within 5 s.
pub fn wire(data: &[u8]) {
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed);
    let (rt, addr) = server();
    let asked: Vec<Asked<'_>> = data
        .split(|&b| b == 0)
        .take(MAX_REQUESTS)
        .filter_map(Asked::of)
        .collect();
    rt.block_on(async {
        for request in &asked {
            let mut answers = Vec::new();
            for (prefix, chunked) in [(format!("fzl{n}-"), false), (format!("fzh{n}-"), true)] {
                let wire = request.wire(&prefix, chunked);
                let bytes =
                    tokio::time::timeout(Duration::from_secs(5), exchange(*addr, &wire)).await;
                let Ok(bytes) = bytes else {
                    panic!(
                        "no answer within 5 s to {:?}",
                        String::from_utf8_lossy(&wire)
                    );
                };
                let Some(answer) = Answer::of(&bytes, &prefix) else {
                    panic!(
                        "no whole answer to {:?}: {:?}",
                        String::from_utf8_lossy(&wire),
                        String::from_utf8_lossy(&bytes)
                    );
                };
                answers.push(answer);
            }
            assert_eq!(
                answers[0], answers[1],
                "the lean layer (left) and hyper (right) answered {} {} differently",
                request.method, request.target
            );
        }
    });
}
