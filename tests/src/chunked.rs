//! Undoing HTTP/1.1 chunked transfer coding as the bytes arrive, for the readers that
//! read responses off raw sockets (the bench's SSE subscribers, the tests' readers
//! with small receive buffers): no I/O here, only what the socket gave.

/// A chunked body whose framing is broken.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk's size line is not a hexadecimal number.
    #[error("bad chunk size {0:?}")]
    BadSize(String),
    /// A chunk's data is not followed by CRLF.
    #[error("a chunk's data is not followed by CRLF")]
    BadEnd,
}

/// The state of a chunked body being read: where in a chunk the next byte falls.
///
/// ```
/// use gapless_tests::chunked::Dechunker;
///
/// let mut body = Vec::new();
/// let mut dechunker = Dechunker::default();
/// let mut buf = b"5\r\nhello\r\n6\r\n wor".to_vec();
/// assert!(!dechunker.feed(&mut buf, |data| body.extend_from_slice(data)).unwrap());
/// buf.extend_from_slice(b"ld\r\n0\r\n\r\n");
/// assert!(dechunker.feed(&mut buf, |data| body.extend_from_slice(data)).unwrap());
/// assert_eq!(body, b"hello world");
/// ```
#[derive(Debug, Default)]
pub struct Dechunker {
    /// Bytes of the current chunk still to come, when inside one.
    left_in_chunk: usize,
    /// The CRLF after a chunk's data is still to come.
    after_chunk: bool,
}

impl Dechunker {
    /// Takes the framing out of the front of `buf`, handing each piece of body data
    /// in it to `on_data`, and removes what it used from `buf` (a size line not
    /// complete yet stays, for the next call). `true` once the last chunk is read:
    /// the body has ended.
    pub fn feed(
        &mut self,
        buf: &mut Vec<u8>,
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<bool, ChunkedError> {
        let mut at = 0;
        let ended = loop {
            let rest = &buf[at..];
            if self.left_in_chunk > 0 {
                let n = self.left_in_chunk.min(rest.len());
                if n == 0 {
                    break false;
                }
                on_data(&rest[..n]);
                self.left_in_chunk -= n;
                at += n;
                self.after_chunk = self.left_in_chunk == 0;
            } else if self.after_chunk {
                if rest.len() < 2 {
                    break false;
                }
                if &rest[..2] != b"\r\n" {
                    return Err(ChunkedError::BadEnd);
                }
                at += 2;
                self.after_chunk = false;
            } else {
                let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                    break false;
                };
                let line = String::from_utf8_lossy(&rest[..line_end]);
                // Extensions after `;` are allowed, and ignored.
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| ChunkedError::BadSize(line.clone().into_owned()))?;
                at += line_end + 2;
                if size == 0 {
                    break true;
                }
                self.left_in_chunk = size;
            }
        };
        buf.drain(..at);
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `framed` to a dechunker `step` bytes at a time: the body, and whether
    /// it ended.
    fn in_steps(framed: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut dechunker = Dechunker::default();
        let (mut buf, mut body) = (Vec::new(), Vec::new());
        for piece in framed.chunks(step) {
            buf.extend_from_slice(piece);
            if dechunker.feed(&mut buf, |d| body.extend_from_slice(d))? {
                return Ok((body, true));
            }
        }
        Ok((body, false))
    }

    #[test]
    fn a_body_arriving_a_byte_at_a_time_or_whole_reads_the_same() {
        let framed = b"3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\n\r\n";
        for step in [1, 2, 3, 7, framed.len()] {
            let (body, ended) = in_steps(framed, step).expect("well framed");
            assert_eq!(body, b"abc0123456789abcdef", "step {step}");
            assert!(ended, "step {step}");
        }
    }

    #[test]
    fn a_body_cut_short_has_not_ended_and_broken_framing_is_an_error() {
        let (body, ended) = in_steps(b"5\r\nhel", 2).expect("well framed so far");
        assert_eq!((body.as_slice(), ended), (&b"hel"[..], false));
        assert!(matches!(
            in_steps(b"zz\r\n", 4),
            Err(ChunkedError::BadSize(size)) if size == "zz"
        ));
        assert!(matches!(
            in_steps(b"2\r\nabXY", 8),
            Err(ChunkedError::BadEnd)
        ));
    }
}
