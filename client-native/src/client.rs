//! The HTTP client and stream handles: create, append, close, head and delete (§5).

use std::sync::Arc;
use std::time::Duration;

use gapless_core::resume::LiveMode;
use gapless_core::wire::headers;
use gapless_core::Offset;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::producer::{Producer, ProducerConfig};
use crate::session::SessionSubscription;
use crate::subscribe::Subscription;
use crate::Error;

/// A Durable Streams client: connection pool, default headers and time-outs.
///
/// Cheap to clone; clones share the pool.
///
/// ```
/// let client = gapless_client::Client::builder()
///     .bearer_token("secret")
///     .build()
///     .unwrap();
/// let stream = client.stream("http://127.0.0.1:4437/v1/stream/demo");
/// assert_eq!(stream.url(), "http://127.0.0.1:4437/v1/stream/demo");
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) headers: HeaderMap,
    pub(crate) request_timeout: Duration,
    pub(crate) dynamic: Dynamic,
}

/// A value computed afresh for every request (a refreshed token, a timestamp).
pub type ValueFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Headers and query parameters whose values are computed per request.
#[derive(Clone, Default)]
pub(crate) struct Dynamic {
    headers: Vec<(HeaderName, ValueFn)>,
    params: Vec<(String, ValueFn)>,
}

impl std::fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamic")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "params",
                &self.params.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dynamic {
    /// Adds the dynamic headers and parameters to a request, evaluated now.
    pub(crate) fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.headers {
            match HeaderValue::try_from(value()) {
                Ok(mut v) => {
                    v.set_sensitive(name == AUTHORIZATION);
                    req = req.header(name.clone(), v);
                }
                Err(_) => tracing::warn!(header = %name, "dynamic header value is not valid"),
            }
        }
        if !self.params.is_empty() {
            let params: Vec<(&str, String)> =
                self.params.iter().map(|(n, v)| (n.as_str(), v())).collect();
            req = req.query(&params);
        }
        req
    }
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    headers: HeaderMap,
    dynamic: Dynamic,
    connect_timeout: Duration,
    request_timeout: Duration,
    error: Option<Error>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            headers: HeaderMap::new(),
            dynamic: Dynamic::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            error: None,
        }
    }
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <token>` on every request.
    #[must_use]
    pub fn bearer_token(self, token: &str) -> Self {
        self.header(AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    /// Sends this header on every request.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(n == AUTHORIZATION);
                self.headers.insert(n, v);
            }
            _ => {
                self.error = Some(Error::InvalidArgument(format!(
                    "invalid header {name:?}: not a header name and value"
                )));
            }
        }
        self
    }

    /// Sends header `name` on every request with the value `value()` returns at that
    /// moment — for tokens that are refreshed while a subscription runs.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let token = Arc::new(std::sync::Mutex::new("Bearer v1".to_owned()));
    /// let current = Arc::clone(&token);
    /// let client = gapless_client::Client::builder()
    ///     .dynamic_header("Authorization", Arc::new(move || current.lock().unwrap().clone()))
    ///     .build()
    ///     .unwrap();
    /// *token.lock().unwrap() = "Bearer v2".to_owned(); // used from the next request on
    /// # drop(client);
    /// ```
    #[must_use]
    pub fn dynamic_header(mut self, name: &str, value: ValueFn) -> Self {
        match HeaderName::try_from(name) {
            Ok(n) => {
                self.dynamic.headers.retain(|(existing, _)| existing != n);
                self.dynamic.headers.push((n, value));
            }
            Err(_) => {
                self.error = Some(Error::InvalidArgument(format!(
                    "invalid header name {name:?}"
                )))
            }
        }
        self
    }

    /// Adds query parameter `name` to every request with the value `value()` returns
    /// at that moment (signed URLs, request ids).
    #[must_use]
    pub fn dynamic_param(mut self, name: &str, value: ValueFn) -> Self {
        self.dynamic.params.retain(|(existing, _)| existing != name);
        self.dynamic.params.push((name.to_owned(), value));
        self
    }

    /// Time allowed to open a connection (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Time allowed for a whole non-live request: create, append, head… (default 30 s).
    /// Live reads have idle time-outs of their own instead.
    #[must_use]
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Redirects are not followed: one answering a POST would be followed as a GET,
        // whose 200 would read as an acknowledged append (see `Client::send`).
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            http,
            headers: self.headers,
            request_timeout: self.request_timeout,
            dynamic: self.dynamic,
        })
    }
}

impl Client {
    /// A client with default settings.
    pub fn new() -> Result<Client, Error> {
        ClientBuilder::default().build()
    }

    /// A builder for a client with custom headers or time-outs.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A handle on the stream at `url`. Nothing is sent until an operation is called.
    pub fn stream(&self, url: impl Into<String>) -> StreamHandle {
        StreamHandle {
            client: self.clone(),
            url: url.into(),
        }
    }
}

/// Options of [`StreamHandle::create`].
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// The stream's content type (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Sliding time-to-live in seconds (`Stream-TTL`).
    pub ttl_seconds: Option<u64>,
    /// Absolute expiry, RFC 3339 (`Stream-Expires-At`).
    pub expires_at: Option<String>,
    /// Create the stream already closed (`Stream-Closed: true`).
    pub closed: bool,
    /// Initial content.
    pub body: Option<Vec<u8>>,
}

/// What `HEAD` reports about a stream (§5.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The content type fixed at creation.
    pub content_type: Option<String>,
    /// The tail offset.
    pub next_offset: Offset,
    /// Whether the stream is closed.
    pub closed: bool,
    /// `Stream-TTL`, if set.
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`, if set.
    pub expires_at: Option<String>,
}

/// A stream at one URL.
#[derive(Clone, Debug)]
pub struct StreamHandle {
    pub(crate) client: Client,
    pub(crate) url: String,
}

impl StreamHandle {
    /// The stream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that the URL can name a stream: an absolute `http` or `https` URL
    /// without a fragment (a read's query would land in it, and every read would
    /// start from the beginning). Subscriptions and producers check it before their
    /// first request, and fail at once rather than retry what can never be sent.
    ///
    /// ```
    /// let client = gapless_client::Client::new().unwrap();
    /// assert!(client.stream("http://127.0.0.1:4437/v1/stream/a").check_url().is_ok());
    /// assert!(client.stream("127.0.0.1:4437/v1/stream/a").check_url().is_err());
    /// assert!(client.stream("http://h/v1/stream/a#top").check_url().is_err());
    /// ```
    pub fn check_url(&self) -> Result<(), Error> {
        let invalid = |reason: String| {
            Err(Error::Url {
                url: self.url.clone(),
                reason,
            })
        };
        match reqwest::Url::parse(&self.url) {
            Err(e) => invalid(e.to_string()),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => invalid(format!(
                "the scheme must be http or https, not {:?}",
                u.scheme()
            )),
            Ok(u) if u.fragment().is_some() => {
                invalid("a fragment (`#…`) would swallow each read's query".into())
            }
            Ok(_) => Ok(()),
        }
    }

    /// Creates the stream (PUT, §5.1). Creating an existing stream with the same
    /// configuration succeeds; with another configuration it fails with status 409.
    pub async fn create(&self, opts: CreateOptions) -> Result<StreamInfo, Error> {
        let mut req = self.request(reqwest::Method::PUT).header(
            CONTENT_TYPE,
            opts.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        );
        if let Some(ttl) = opts.ttl_seconds {
            req = req.header(headers::STREAM_TTL, ttl.to_string());
        }
        if let Some(at) = &opts.expires_at {
            req = req.header(headers::STREAM_EXPIRES_AT, at.as_str());
        }
        if opts.closed {
            req = req.header(headers::STREAM_CLOSED, "true");
        }
        if let Some(body) = opts.body {
            req = req.body(body);
        }
        let resp = self.send(req, &[200, 201]).await?;
        info_from(&resp)
    }

    /// Appends `body` (POST, §5.2) and returns the stream's new tail offset once the
    /// server has acknowledged it. `content_type` must match the stream's.
    ///
    /// A plain append is not idempotent: if the connection breaks before the answer,
    /// or a server error (5xx, a gateway's too, but 501, 505 and 507, which store
    /// nothing) answers it, the data may or may not be
    /// in the stream ([`Error::OutcomeUnknown`]; a connection refused is
    /// [`Error::Transport`], not stored). An append to a closed stream is
    /// [`Error::Closed`]. Use [`crate::Producer`] for appends that can be retried
    /// safely.
    pub async fn append(&self, content_type: &str, body: Vec<u8>) -> Result<Offset, Error> {
        let req = self
            .request(reqwest::Method::POST)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let sent = match req.send().await {
            Ok(resp) => self.answer(resp, &[200, 204], true).await,
            Err(e) => Err(Error::Transport(e)),
        };
        let resp = sent.map_err(|e| match e {
            // Sent (the connection was made) and not answered: it may be stored.
            Error::Transport(e) if !e.is_connect() && !e.is_builder() => Error::OutcomeUnknown(
                format!("the append was sent and its answer lost ({e}): it may be stored"),
            ),
            // (Not 501, 505 nor 507: appends not supported, nor this HTTP version,
            // nor room to store: nothing was.)
            Error::Status { status, message }
                if status >= 500 && !matches!(status, 501 | 505 | 507) =>
            {
                Error::OutcomeUnknown(format!(
                    "the server answered {status} ({message}): the append may be stored"
                ))
            }
            e => e,
        })?;
        // Stored: an answer without a usable offset must not read as a refusal
        // (which a caller would send again).
        next_offset(&resp).map_err(|e| {
            Error::Protocol(format!(
                "the append was stored, but its answer gave no usable offset: {e}"
            ))
        })
    }

    /// Closes the stream (§5.3): readers reach its end and stop. Returns the final offset.
    pub async fn close(&self) -> Result<Offset, Error> {
        let req = self
            .request(reqwest::Method::POST)
            .header(headers::STREAM_CLOSED, "true");
        let resp = self.send(req, &[200, 204]).await?;
        next_offset(&resp)
    }

    /// Reads the stream's metadata (HEAD, §5.5).
    pub async fn head(&self) -> Result<StreamInfo, Error> {
        let resp = self
            .send(self.request(reqwest::Method::HEAD), &[200])
            .await?;
        info_from(&resp)
    }

    /// Deletes the stream (§5.4).
    pub async fn delete(&self) -> Result<(), Error> {
        self.send(self.request(reqwest::Method::DELETE), &[200, 204])
            .await?;
        Ok(())
    }

    /// Reads the stream from `from`: history until the tail, then live by SSE (falling
    /// back to long-poll where SSE does not work). See [`Subscription`].
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns the task that reads), as `tokio::spawn`
    /// does; so do [`StreamHandle::subscribe_with`], [`StreamHandle::producer`] and
    /// [`StreamHandle::subscribe_session`].
    pub fn subscribe(&self, from: Offset) -> Subscription {
        self.subscribe_with(from, LiveMode::Sse)
    }

    /// Like [`StreamHandle::subscribe`] with an explicit live mode;
    /// [`LiveMode::Off`] reads history up to the tail and ends.
    pub fn subscribe_with(&self, from: Offset, live: LiveMode) -> Subscription {
        Subscription::new(self.clone(), from, live)
    }

    /// An idempotent producer on this stream (see [`Producer`]).
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns the task that sends what is pushed).
    pub fn producer(&self, cfg: ProducerConfig) -> Producer {
        Producer::new(self.clone(), cfg)
    }

    /// Reads this stream as an agent session: typed events and a live session view
    /// that calls a silent running session stalled after `stall_after`.
    pub fn subscribe_session(&self, from: Offset, stall_after: Duration) -> SessionSubscription {
        SessionSubscription::new(self, from, LiveMode::Sse, stall_after)
    }

    /// A request to this stream with the client's headers and time-out, for what
    /// this API does not cover (extension headers, raw status handling).
    pub fn raw(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.request(method)
    }

    pub(crate) fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let req = self
            .client
            .http
            .request(method, &self.url)
            .headers(self.client.headers.clone())
            .timeout(self.client.request_timeout);
        self.client.dynamic.apply(req)
    }

    /// Sends `req` and turns any status outside `ok` into an [`Error`].
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        ok: &[u16],
    ) -> Result<reqwest::Response, Error> {
        self.answer(req.send().await?, ok, false).await
    }

    /// Turns a status of `resp` outside `ok` into an [`Error`]: for an append
    /// (`append`), a 409 saying the stream is closed is [`Error::Closed`].
    async fn answer(
        &self,
        resp: reqwest::Response,
        ok: &[u16],
        append: bool,
    ) -> Result<reqwest::Response, Error> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        if append
            && status == 409
            && header(&resp, headers::STREAM_CLOSED)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Err(Error::Closed);
        }
        if let (300..=399, Some(to)) = (status, header(&resp, "location")) {
            let message = format!("redirects are not followed (to {to})");
            return Err(Error::Status { status, message });
        }
        let body = resp.text().await.unwrap_or_default();
        Err(Error::from_status(status, body.chars().take(500).collect()))
    }
}

/// The status and headers of a response, as the core reads them.
pub(crate) fn head_of(resp: &reqwest::Response) -> gapless_core::wire::ResponseHead {
    let mut head = gapless_core::wire::ResponseHead::new(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if let Ok(v) = value.to_str() {
            head = head.with_header(name.as_str(), v);
        }
    }
    head
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn next_offset(resp: &reqwest::Response) -> Result<Offset, Error> {
    let raw = header(resp, headers::STREAM_NEXT_OFFSET)
        .ok_or_else(|| Error::Protocol(format!("missing {}", headers::STREAM_NEXT_OFFSET)))?;
    Ok(Offset::parse(raw.trim())?)
}

fn info_from(resp: &reqwest::Response) -> Result<StreamInfo, Error> {
    Ok(StreamInfo {
        content_type: header(resp, "content-type").map(str::to_owned),
        next_offset: next_offset(resp)?,
        closed: header(resp, headers::STREAM_CLOSED)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        ttl_seconds: header(resp, headers::STREAM_TTL).and_then(|v| v.trim().parse().ok()),
        expires_at: header(resp, headers::STREAM_EXPIRES_AT).map(str::to_owned),
    })
}
