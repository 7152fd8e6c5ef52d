//! A canned HTTP server: one that answers every request with what a function makes
//! of its head, for tests of how clients take answers no real server gives.

/// A server bound to `at` (`127.0.0.1:0`: a port of its own) that answers every
/// request (head and body read whole) with what `answer` makes of its head, then
/// closes the connection; its address, and its task (to abort).
pub async fn canned(
    at: impl tokio::net::ToSocketAddrs,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(at).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = std::sync::Arc::new(answer);
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match conn.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let response = format!(
                    "{}connection: close\r\ncontent-length: 0\r\n\r\n",
                    answer(&head)
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, task)
}
