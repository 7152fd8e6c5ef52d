//! Reading a request's body: its size limit (413 past it) and its time limits (408
//! for a body that stops coming or comes too slowly), the same for a body the lean
//! layer read whole and one hyper streams to the router (chunked, or larger than the
//! lean layer reads), so that a client dribbling a body holds no connection for ever.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures::{FutureExt, StreamExt};
use http_body::Body as _;

use super::error::ApiError;
use super::AppState;

/// How long a request's head may take to arrive once it has begun (as hyper allows),
/// and how long its body may send nothing: a client that stalls midway is let go.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a request's body may take in all (about 3.5 KB/s for a body of the
/// lean layer's largest, 1 MiB).
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads a request body within the configured limit.
pub(super) async fn body_bytes(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    collect(body, state.config.max_body_bytes).await
}

/// The answer to a body past `limit` bytes (413).
pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body exceeds the limit of {limit} bytes"),
    )
}

/// Reads `body` whole: 413 past `limit` bytes (at once if its announced length is
/// past it), 408 when nothing comes for [`REQUEST_TIMEOUT`] or all of it takes longer
/// than [`BODY_TIMEOUT`], 400 when the body fails. What has come already (all of a
/// body the lean layer read) is taken without a timer.
pub(super) async fn collect(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || too_large(limit);
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let end = tokio::time::Instant::now() + BODY_TIMEOUT;
    let mut frames = body.into_data_stream();
    let mut first = Bytes::new();
    let mut joined: Vec<u8> = Vec::new();
    loop {
        let next = match frames.next().now_or_never() {
            Some(next) => next,
            None => {
                let idle = (tokio::time::Instant::now() + REQUEST_TIMEOUT).min(end);
                tokio::time::timeout_at(idle, frames.next())
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request body stopped coming, or came too slowly",
                        )
                    })?
            }
        };
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!("cannot read the body: {e}")))
            }
        };
        if first.len() + joined.len() + chunk.len() > limit {
            return Err(too_large());
        }
        // One chunk (the usual case) is kept as it came; more are joined.
        if first.is_empty() && joined.is_empty() {
            first = chunk;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&first);
                first = Bytes::new();
            }
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(if joined.is_empty() {
        first
    } else {
        Bytes::from(joined)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let parts: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_limit() {
        assert_eq!(collect(Body::from("abc"), 3).await.unwrap(), "abc");
        assert_eq!(
            collect(chunks(&[b"ab", b"", b"cd"]), 4).await.unwrap(),
            "abcd"
        );
        assert_eq!(collect(Body::empty(), 0).await.unwrap(), "");
        let refused = [
            collect(Body::from("abcd"), 3).await,
            collect(chunks(&[b"ab", b"cd"]), 3).await,
        ];
        for r in refused {
            assert_eq!(r.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
        }
        let failing = Body::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("cut")),
        ]));
        assert_eq!(
            collect(failing, 10).await.unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_is_refused_after_the_idle_time() {
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"a"))])
            .chain(futures::stream::pending());
        let started = tokio::time::Instant::now();
        let refused = collect(Body::from_stream(stalled), 10).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_coming_too_slowly_is_refused_after_the_body_time() {
        // A byte every 20 s: never idle for the idle time, too slow in all.
        let dribbled = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"a")), ()))
        });
        let started = tokio::time::Instant::now();
        let refused = collect(Body::from_stream(dribbled), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }
}
