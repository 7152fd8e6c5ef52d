//! The adapter between the official Durable Streams client conformance runner and
//! gapless-client: one JSON command per line on stdin, one JSON result per line on
//! stdout. Reads go through the client's resume machine ([`gapless_client::Subscription`]) and
//! idempotent appends through its [`Producer`]; plain requests are made directly so
//! that every status reaches the runner unchanged.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use gapless_client::{Client, Error, Producer, ProducerConfig, Update};
use gapless_core::resume::{LiveMode, Payload, StreamError};
use gapless_core::wire::WireError;
use gapless_core::Offset;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A failed command: the runner's error shape.
struct Failure {
    status: Option<u16>,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: Option<u16>, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
        }
    }
}

type Outcome = Result<Value, Failure>;

/// A dynamic header or parameter as the runner configures it.
#[derive(Clone, Debug)]
struct DynValue {
    kind: String,
    initial: Option<String>,
    counter: u64,
}

impl DynValue {
    /// The value for the next command (a counter advances once per command).
    fn next(&mut self) -> String {
        match self.kind.as_str() {
            "counter" => {
                self.counter += 1;
                self.counter.to_string()
            }
            "timestamp" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                .to_string(),
            _ => self.initial.clone().unwrap_or_default(),
        }
    }
}

/// The dynamic values of one command.
#[derive(Default)]
struct Dyn {
    headers: Vec<(String, String)>,
    params: Vec<(String, String)>,
}

#[derive(Default)]
struct Adapter {
    server: String,
    content_types: HashMap<String, String>,
    producers: HashMap<(String, String, u64), Producer>,
    dyn_headers: Vec<(String, DynValue)>,
    dyn_params: Vec<(String, DynValue)>,
}

fn str_field<'a>(cmd: &'a Value, name: &str) -> Option<&'a str> {
    cmd.get(name).and_then(Value::as_str)
}

fn headers_of(cmd: &Value) -> Vec<(String, String)> {
    cmd.get("headers")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn client_with(headers: &[(String, String)]) -> Result<Client, Failure> {
    client_dyn(headers, &Dyn::default())
}

/// A client with the command's headers, and the dynamic headers and parameters
/// installed through the client's per-request value functions.
fn client_dyn(headers: &[(String, String)], dynamic: &Dyn) -> Result<Client, Failure> {
    let mut b = Client::builder().request_timeout(Duration::from_secs(20));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    for (k, v) in &dynamic.headers {
        if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
            let v = v.clone();
            b = b.dynamic_header(k, std::sync::Arc::new(move || v.clone()));
        }
    }
    for (k, v) in &dynamic.params {
        let v = v.clone();
        b = b.dynamic_param(k, std::sync::Arc::new(move || v.clone()));
    }
    b.build()
        .map_err(|e| Failure::new(None, "INTERNAL_ERROR", e.to_string()))
}

/// Adds `headersSent` / `paramsSent` to a result when dynamic values are configured.
fn report_dyn(out: &mut Value, dynamic: &Dyn) {
    if !dynamic.headers.is_empty() {
        out["headersSent"] = Value::Object(
            dynamic
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    }
    if !dynamic.params.is_empty() {
        out["paramsSent"] = Value::Object(
            dynamic
                .params
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    }
}

fn is_json(ct: &str) -> bool {
    gapless_core::wire::headers::is_json(ct)
}

/// The runner's error code for an HTTP failure status.
fn status_failure(status: u16, closed: bool, seq_sent: bool, url: &str, body: &str) -> Failure {
    let code = match status {
        404 => "NOT_FOUND",
        409 if closed => "STREAM_CLOSED",
        409 if seq_sent => "SEQUENCE_CONFLICT",
        409 => "CONFLICT",
        _ => "UNEXPECTED_STATUS",
    };
    let message = if status == 404 {
        format!("Stream not found: {url}")
    } else {
        format!(
            "server answered {status}: {}",
            body.chars().take(200).collect::<String>()
        )
    };
    Failure::new(Some(status), code, message)
}

fn client_failure(e: Error, url: &str) -> Failure {
    match e {
        Error::NotFound => Failure::new(Some(404), "NOT_FOUND", format!("Stream not found: {url}")),
        Error::Auth { status, message } => Failure::new(Some(status), "UNEXPECTED_STATUS", message),
        Error::Closed => Failure::new(Some(409), "STREAM_CLOSED", "the stream is closed"),
        Error::ContinuityLost { offset } => Failure::new(
            Some(410),
            "UNEXPECTED_STATUS",
            format!("offset {offset} is gone"),
        ),
        Error::Status { status, message } => {
            Failure::new(Some(status), "UNEXPECTED_STATUS", message)
        }
        Error::Stream(StreamError::Rejected { status, message }) => {
            let code = if status == 400 && message.to_ascii_lowercase().contains("offset") {
                "INVALID_OFFSET"
            } else {
                "UNEXPECTED_STATUS"
            };
            Failure::new(Some(status), code, message)
        }
        Error::Stream(StreamError::Protocol(
            w @ (WireError::BadJson(_)
            | WireError::BadControl(_)
            | WireError::BadSse(_)
            | WireError::BadBase64(_)),
        )) => Failure::new(None, "PARSE_ERROR", w.to_string()),
        other => Failure::new(None, "INTERNAL_ERROR", other.to_string()),
    }
}

/// Sends a request, retrying server errors, 429 and dropped connections a bounded
/// number of times.
async fn send_retrying(
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, Failure> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= 10;
        match build().send().await {
            Ok(r) if (r.status().is_server_error() || r.status().as_u16() == 429) && !last => {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(delay);
                tokio::time::sleep(wait.max(delay)).await;
            }
            Ok(r) => return Ok(r),
            Err(e) if !last => {
                eprintln!("adapter: retrying after {e}");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(Failure::new(None, "NETWORK_ERROR", e.to_string())),
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Adapter {
    /// The dynamic values for the next append or read command.
    fn tick(&mut self) -> Dyn {
        Dyn {
            headers: self
                .dyn_headers
                .iter_mut()
                .map(|(k, v)| (k.clone(), v.next()))
                .collect(),
            params: self
                .dyn_params
                .iter_mut()
                .map(|(k, v)| (k.clone(), v.next()))
                .collect(),
        }
    }

    fn set_dynamic(&mut self, cmd: &Value, header: bool) -> Outcome {
        let name = str_field(cmd, "name").unwrap_or("").to_owned();
        let value = DynValue {
            kind: str_field(cmd, "valueType").unwrap_or("token").to_owned(),
            initial: str_field(cmd, "initialValue").map(str::to_owned),
            counter: 0,
        };
        let list = if header {
            &mut self.dyn_headers
        } else {
            &mut self.dyn_params
        };
        list.retain(|(n, _)| *n != name);
        list.push((name, value));
        Ok(json!({}))
    }

    fn url(&self, cmd: &Value) -> String {
        format!("{}{}", self.server, str_field(cmd, "path").unwrap_or(""))
    }

    fn path(cmd: &Value) -> String {
        str_field(cmd, "path").unwrap_or("").to_owned()
    }

    async fn handle(&mut self, cmd: &Value) -> Outcome {
        let kind = str_field(cmd, "type").unwrap_or("");
        match kind {
            "init" => {
                self.server = str_field(cmd, "serverUrl")
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_owned();
                self.content_types.clear();
                self.producers.clear();
                Ok(json!({
                    "clientName": "gapless-client",
                    "clientVersion": env!("CARGO_PKG_VERSION"),
                    "features": {
                        "batching": true, "sse": true, "longPoll": true, "auto": true, "streaming": true,
                        "dynamicHeaders": true, "retryOptions": true, "batchItems": true,
                        "strictZeroValidation": true
                    }
                }))
            }
            "create" => self.create(cmd).await,
            "connect" => self.connect(cmd).await,
            "head" => self.head(cmd).await,
            "append" => self.append(cmd).await,
            "delete" => self.delete(cmd).await,
            "close" => self.close(cmd).await,
            "read" => self.read(cmd).await,
            "idempotent-append" => self.idempotent_append(cmd).await,
            "idempotent-append-batch" => self.idempotent_batch(cmd).await,
            "idempotent-close" => self.idempotent_close(cmd).await,
            "idempotent-detach" => {
                let key = self.producer_key(cmd);
                if let Some(p) = self.producers.remove(&key) {
                    let _ = p.flush().await;
                }
                Ok(json!({"status": 200}))
            }
            "validate" => validate(cmd),
            "set-dynamic-header" => self.set_dynamic(cmd, true),
            "set-dynamic-param" => self.set_dynamic(cmd, false),
            "clear-dynamic" => {
                self.dyn_headers.clear();
                self.dyn_params.clear();
                Ok(json!({}))
            }
            "shutdown" => Ok(json!({})),
            other => Err(Failure::new(
                None,
                "NOT_SUPPORTED",
                format!("unknown command {other:?}"),
            )),
        }
    }

    async fn create(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let ct = str_field(cmd, "contentType")
            .unwrap_or("application/octet-stream")
            .to_owned();
        let http = client_with(&headers_of(cmd))?;
        let build = || {
            let mut req = http
                .stream(&url)
                .raw(reqwest::Method::PUT)
                .header("content-type", ct.as_str());
            if let Some(ttl) = cmd.get("ttlSeconds").and_then(Value::as_u64) {
                req = req.header("stream-ttl", ttl.to_string());
            }
            if let Some(at) = str_field(cmd, "expiresAt") {
                req = req.header("stream-expires-at", at);
            }
            if cmd.get("closed").and_then(Value::as_bool) == Some(true) {
                req = req.header("stream-closed", "true");
            }
            if let Some(data) = str_field(cmd, "data") {
                req = req.body(data.to_owned());
            }
            req
        };
        let r = send_retrying(build).await?;
        let status = r.status().as_u16();
        if status == 200 || status == 201 {
            self.content_types.insert(Self::path(cmd), ct);
            let mut out = json!({"status": status});
            if let Some(o) = header(&r, "stream-next-offset") {
                out["offset"] = json!(o);
            }
            Ok(out)
        } else {
            let body = r.text().await.unwrap_or_default();
            Err(status_failure(status, false, false, &url, &body))
        }
    }

    async fn head_request(&mut self, cmd: &Value) -> Result<reqwest::Response, Failure> {
        let url = self.url(cmd);
        let http = client_with(&headers_of(cmd))?;
        let r = send_retrying(|| http.stream(&url).raw(reqwest::Method::HEAD)).await?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(status_failure(status, false, false, &url, ""));
        }
        if let Some(ct) = header(&r, "content-type") {
            self.content_types.insert(Self::path(cmd), ct);
        }
        Ok(r)
    }

    async fn connect(&mut self, cmd: &Value) -> Outcome {
        let r = self.head_request(cmd).await?;
        Ok(json!({"status": 200, "offset": header(&r, "stream-next-offset")}))
    }

    async fn head(&mut self, cmd: &Value) -> Outcome {
        let r = self.head_request(cmd).await?;
        let mut out = json!({
            "status": 200,
            "offset": header(&r, "stream-next-offset").unwrap_or_default(),
            "streamClosed": header(&r, "stream-closed").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        });
        if let Some(ct) = header(&r, "content-type") {
            out["contentType"] = json!(ct);
        }
        Ok(out)
    }

    fn content_type(&self, cmd: &Value) -> String {
        self.content_types
            .get(&Self::path(cmd))
            .cloned()
            .unwrap_or_else(|| "application/octet-stream".into())
    }

    fn body(cmd: &Value) -> Result<Vec<u8>, Failure> {
        let data = str_field(cmd, "data").unwrap_or("");
        if cmd.get("binary").and_then(Value::as_bool) == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| Failure::new(None, "INVALID_ARGUMENT", format!("bad base64: {e}")))
        } else {
            Ok(data.as_bytes().to_vec())
        }
    }

    async fn append(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let ct = self.content_type(cmd);
        let body = Self::body(cmd)?;
        let seq = cmd.get("seq").and_then(Value::as_u64);
        let dynamic = self.tick();
        let http = client_dyn(&headers_of(cmd), &dynamic)?;
        let build = || {
            let mut req = http
                .stream(&url)
                .raw(reqwest::Method::POST)
                .header("content-type", ct.as_str())
                .body(body.clone());
            if let Some(seq) = seq {
                req = req.header("stream-seq", seq.to_string());
            }
            req
        };
        let r = send_retrying(build).await?;
        let status = r.status().as_u16();
        if status == 200 || status == 204 {
            let mut out = json!({"status": 200, "offset": header(&r, "stream-next-offset")});
            report_dyn(&mut out, &dynamic);
            Ok(out)
        } else {
            let closed = header(&r, "stream-closed").is_some();
            let text = r.text().await.unwrap_or_default();
            Err(status_failure(status, closed, seq.is_some(), &url, &text))
        }
    }

    async fn delete(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let http = client_with(&headers_of(cmd))?;
        let r = send_retrying(|| http.stream(&url).raw(reqwest::Method::DELETE)).await?;
        let status = r.status().as_u16();
        if status == 200 || status == 204 {
            self.content_types.remove(&Self::path(cmd));
            Ok(json!({"status": 200}))
        } else {
            Err(status_failure(status, false, false, &url, ""))
        }
    }

    async fn close(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let ct = str_field(cmd, "contentType")
            .map(str::to_owned)
            .unwrap_or_else(|| self.content_type(cmd));
        let data = str_field(cmd, "data").map(str::to_owned);
        let http = client_with(&headers_of(cmd))?;
        let build = || {
            let mut req = http
                .stream(&url)
                .raw(reqwest::Method::POST)
                .header("stream-closed", "true");
            if let Some(d) = &data {
                req = req.header("content-type", ct.as_str()).body(d.clone());
            }
            req
        };
        let r = send_retrying(build).await?;
        let status = r.status().as_u16();
        if status == 200 || status == 204 {
            Ok(json!({"finalOffset": header(&r, "stream-next-offset")}))
        } else {
            let closed = header(&r, "stream-closed").is_some();
            Err(status_failure(status, closed, false, &url, ""))
        }
    }

    async fn read(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let from = match cmd.get("offset").and_then(Value::as_str) {
            Some(o) => Offset::parse(o)
                .map_err(|e| Failure::new(Some(400), "INVALID_OFFSET", e.to_string()))?,
            None => Offset::START,
        };
        let live = match cmd.get("live") {
            Some(Value::String(s)) if s == "long-poll" => LiveMode::LongPoll,
            Some(Value::String(s)) if s == "sse" => LiveMode::Sse,
            Some(Value::Bool(true)) => LiveMode::Sse,
            _ => LiveMode::Off,
        };
        let timeout =
            Duration::from_millis(cmd.get("timeoutMs").and_then(Value::as_u64).unwrap_or(5000));
        let max_chunks = cmd.get("maxChunks").and_then(Value::as_u64).unwrap_or(100) as usize;
        let wait_up_to_date = cmd.get("waitForUpToDate").and_then(Value::as_bool) == Some(true);
        let dynamic = self.tick();
        let client = client_dyn(&headers_of(cmd), &dynamic)?;
        let mut sub = client.stream(&url).subscribe_with(from.clone(), live);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut chunks = Vec::new();
        let mut offset = (!from.is_now()).then(|| from.to_string());
        let mut up_to_date = false;
        let mut closed = false;
        let mut timed_out = false;
        loop {
            let next = tokio::time::timeout_at(deadline, sub.next()).await;
            let update = match next {
                Err(_) => {
                    timed_out = true;
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(client_failure(e, &url)),
                Ok(Some(Ok(u))) => u,
            };
            match update {
                Update::Batch(batch) => {
                    offset = Some(batch.next_offset.to_string());
                    up_to_date = batch.up_to_date;
                    let (data, binary) = match &batch.payload {
                        Payload::Json(messages) => {
                            let values: Vec<Value> = messages
                                .iter()
                                .map(|m| serde_json::from_str(m.get()).unwrap_or(Value::Null))
                                .collect();
                            (Value::Array(values).to_string(), false)
                        }
                        Payload::Bytes(bytes) => (
                            String::from_utf8_lossy(bytes).into_owned(),
                            std::str::from_utf8(bytes).is_err(),
                        ),
                    };
                    let mut chunk = json!({"data": data, "offset": batch.next_offset.to_string()});
                    if binary {
                        chunk["binary"] = json!(true);
                    }
                    chunks.push(chunk);
                    if live != LiveMode::Off
                        && (chunks.len() >= max_chunks || (wait_up_to_date && up_to_date))
                    {
                        // What the same response says next (closure) still counts.
                        while let Ok(Some(Ok(next))) =
                            tokio::time::timeout(Duration::from_millis(30), sub.next()).await
                        {
                            match next {
                                Update::Closed { offset: o } => {
                                    offset = Some(o.to_string());
                                    closed = true;
                                    break;
                                }
                                Update::UpToDate { .. } => up_to_date = true,
                                _ => break,
                            }
                        }
                        break;
                    }
                }
                Update::UpToDate { offset: o } => {
                    offset = Some(o.to_string());
                    up_to_date = true;
                    // Catch-up reads run until the machine finishes (it reports a
                    // closure first, if any).
                    if wait_up_to_date && live != LiveMode::Off {
                        while let Ok(Some(Ok(Update::Closed { offset: o }))) =
                            tokio::time::timeout(Duration::from_millis(30), sub.next()).await
                        {
                            offset = Some(o.to_string());
                            closed = true;
                        }
                        break;
                    }
                }
                Update::Closed { offset: o } => {
                    offset = Some(o.to_string());
                    closed = true;
                    up_to_date = true;
                    break;
                }
                _ => {}
            }
        }
        if timed_out {
            if live == LiveMode::Off && !up_to_date {
                return Err(Failure::new(
                    None,
                    "TIMEOUT",
                    "the read did not reach the tail in time",
                ));
            }
            up_to_date = true;
        }
        let status = if timed_out && chunks.is_empty() && live != LiveMode::Off {
            204
        } else {
            200
        };
        let mut out = json!({
            "status": status,
            "chunks": chunks,
            "offset": offset.unwrap_or_else(|| "-1".into()),
            "upToDate": up_to_date,
            "streamClosed": closed,
        });
        report_dyn(&mut out, &dynamic);
        Ok(out)
    }

    fn producer_key(&self, cmd: &Value) -> (String, String, u64) {
        (
            Self::path(cmd),
            str_field(cmd, "producerId").unwrap_or("").to_owned(),
            cmd.get("epoch").and_then(Value::as_u64).unwrap_or(0),
        )
    }

    fn new_producer(&self, cmd: &Value) -> Result<Producer, Failure> {
        let client = client_with(&headers_of(cmd))?;
        let mut cfg = ProducerConfig::new(
            str_field(cmd, "producerId").unwrap_or(""),
            self.content_type(cmd),
        );
        cfg.epoch = Some(cmd.get("epoch").and_then(Value::as_u64).unwrap_or(0));
        cfg.auto_claim = cmd.get("autoClaim").and_then(Value::as_bool) == Some(true);
        cfg.max_retries = Some(8);
        cfg.max_retry_delay = Duration::from_millis(1000);
        cfg.linger = Duration::from_millis(1);
        Ok(client.stream(self.url(cmd)).producer(cfg))
    }

    async fn idempotent_append(&mut self, cmd: &Value) -> Outcome {
        let key = self.producer_key(cmd);
        if !self.producers.contains_key(&key) {
            let p = self.new_producer(cmd)?;
            self.producers.insert(key.clone(), p);
        }
        let url = self.url(cmd);
        let data = Self::body(cmd)?;
        let producer = &self.producers[&key];
        let ack = producer
            .append(data)
            .await
            .map_err(|e| client_failure(e, &url))?;
        Ok(
            json!({"status": 200, "offset": ack.offset.map(|o| o.to_string()), "producerSeq": ack.seq}),
        )
    }

    async fn idempotent_batch(&mut self, cmd: &Value) -> Outcome {
        let url = self.url(cmd);
        let producer = self.new_producer(cmd)?;
        let items: Vec<String> = cmd
            .get("items")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for item in items {
            producer
                .push(item.into_bytes())
                .await
                .map_err(|e| client_failure(e, &url))?;
        }
        producer
            .flush()
            .await
            .map_err(|e| client_failure(e, &url))?;
        Ok(json!({"status": 200}))
    }

    async fn idempotent_close(&mut self, cmd: &Value) -> Outcome {
        let key = self.producer_key(cmd);
        if !self.producers.contains_key(&key) {
            let p = self.new_producer(cmd)?;
            self.producers.insert(key.clone(), p);
        }
        let url = self.url(cmd);
        let json_stream = is_json(&self.content_type(cmd));
        let body = str_field(cmd, "data").map(|d| {
            if json_stream {
                format!("[{d}]").into_bytes()
            } else {
                d.as_bytes().to_vec()
            }
        });
        let ack = self.producers[&key]
            .close_stream(body)
            .await
            .map_err(|e| client_failure(e, &url))?;
        Ok(json!({"status": 200, "finalOffset": ack.offset.map(|o| o.to_string())}))
    }
}

/// Client-side validation, by the library's own checks: a value the client's types
/// cannot hold (a negative epoch or size) is refused when converting; the rest by
/// `ProducerConfig::validate` and `BackoffConfig::validate`.
fn validate(cmd: &Value) -> Outcome {
    let target = cmd.get("target").cloned().unwrap_or(Value::Null);
    let invalid = |m: String| Failure::new(None, "INVALID_ARGUMENT", m);
    let non_negative = |name: &str| -> Result<Option<u64>, Failure> {
        match target.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => Ok(Some(n as u64)),
                _ => Err(invalid(format!(
                    "{name} must be a non-negative integer, got: {v}"
                ))),
            },
        }
    };
    match str_field(&target, "target") {
        Some("idempotent-producer") => {
            let mut cfg = ProducerConfig::new(
                str_field(&target, "producerId").unwrap_or("producer"),
                "application/json",
            );
            cfg.epoch = non_negative("epoch")?;
            if let Some(b) = non_negative("maxBatchBytes")? {
                cfg.max_batch_bytes = b as usize;
            }
            if let Some(n) = non_negative("maxBatchItems")? {
                cfg.max_batch_items = n as usize;
            }
            cfg.validate().map_err(|e| invalid(e.to_string()))?;
            Ok(json!({}))
        }
        Some("retry-options") => {
            let _max_retries = non_negative("maxRetries")?;
            let mut backoff = gapless_core::resume::BackoffConfig::default();
            if let Some(ms) = non_negative("initialDelayMs")? {
                backoff.initial = Duration::from_millis(ms);
            }
            if let Some(ms) = non_negative("maxDelayMs")? {
                backoff.max = Duration::from_millis(ms);
            }
            if let Some(m) = target.get("multiplier").and_then(Value::as_f64) {
                backoff.factor = m;
            }
            backoff.validate().map_err(|e| invalid(e.to_string()))?;
            Ok(json!({}))
        }
        other => Err(Failure::new(
            None,
            "NOT_SUPPORTED",
            format!("cannot validate {other:?}"),
        )),
    }
}

#[tokio::main]
async fn main() {
    let mut adapter = Adapter::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let out = json!({"type": "error", "success": false, "commandType": "unknown", "errorCode": "PARSE_ERROR", "message": e.to_string()});
                let _ = stdout.write_all(format!("{out}\n").as_bytes()).await;
                let _ = stdout.flush().await;
                continue;
            }
        };
        let kind = str_field(&cmd, "type").unwrap_or("").to_owned();
        let out = match adapter.handle(&cmd).await {
            Ok(mut v) => {
                let mut m = Map::new();
                m.insert("type".into(), json!(kind));
                m.insert("success".into(), json!(true));
                if let Some(obj) = v.as_object_mut() {
                    for (k, val) in std::mem::take(obj) {
                        if !val.is_null() {
                            m.insert(k, val);
                        }
                    }
                }
                Value::Object(m)
            }
            Err(f) => {
                let mut v = json!({"type": "error", "success": false, "commandType": kind, "errorCode": f.code, "message": f.message});
                if let Some(s) = f.status {
                    v["status"] = json!(s);
                }
                v
            }
        };
        if stdout
            .write_all(format!("{out}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let _ = stdout.flush().await;
        if kind == "shutdown" {
            return;
        }
    }
}
