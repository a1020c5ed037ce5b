//! One delivery attempt: a guarded GET of the affiliate's postback URL
//! ([`Sender::send`]), or a guarded request built for a server-side
//! destination ([`Sender::send_request`]: method, headers and body given,
//! the answer's status and body returned for the platform to classify).
//!
//! The affiliate chooses the URL, so every attempt is treated as a request an
//! outsider asked clickback to make on its behalf (SSRF):
//! - a host that is an IP literal inside the network ([`is_internal`]) is
//!   refused before anything is sent;
//! - a name is resolved by clickback's own resolver, which drops internal
//!   addresses and hands the HTTP client only the addresses it checked, so the
//!   connection goes to a checked address and a second DNS answer cannot swap
//!   it (DNS rebinding);
//! - redirects are not followed (a 3xx is a failure naming its `Location`), and
//!   no proxy from the environment is used.
//!
//! `allow_private` lifts the guard for tests and private networks.
//!
//! Each target host gets at most `per_host` requests in flight; one more is
//! answered [`SendResult::HostBusy`] at once, without waiting, so a slow
//! affiliate holds its own jobs back and nobody else's.
//!
//! The URL's query often carries the affiliate's secret token (or a
//! platform's `api_secret`), so no error text produced here contains the URL,
//! and header values are never quoted.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::platforms::OutboundRequest;
use crate::domain::net::is_internal;

/// How much of an answer's body is read before the connection is dropped:
/// a postback's status is all that counts, a platform's error fits easily,
/// and a receiver must not make clickback download a file.
const MAX_BODY: usize = 64 * 1024;

/// How many idle hosts the per-host limiter remembers before it forgets the
/// idle ones, so the map cannot grow with every host ever called.
const MAX_TRACKED_HOSTS: usize = 1024;

/// The longest `Location` quoted in a redirect error.
const MAX_LOCATION_CHARS: usize = 512;

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Longest wait for a TCP (and TLS) connection, so a black-holed host
    /// fails fast.
    pub connect_timeout: Duration,
    /// Longest whole attempt, connecting to reading the answer, so one slow
    /// affiliate cannot hold a worker.
    pub timeout: Duration,
    /// Concurrent requests per target host, so one slow affiliate cannot
    /// starve the others; at least 1.
    pub per_host: usize,
    /// Lets deliveries reach internal addresses (`CLICKBACK_ALLOW_PRIVATE_TARGETS`):
    /// tests and private networks only.
    pub allow_private: bool,
    /// Names answered before DNS, like `/etc/hosts`; lets tests make a name
    /// resolve to loopback. The guard applies to these answers too.
    pub static_hosts: Vec<(String, IpAddr)>,
    /// Sent as `User-Agent`, so affiliates can tell clickback's calls apart,
    /// e.g. `clickback/0.1.0 (+https://github.com/clickback/clickback)`.
    pub user_agent: String,
}

/// Makes delivery attempts; cheap to clone, all clones share one HTTP client
/// (and its connection pool) and one per-host limit.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    /// Built once: redirects off, no proxy, the guarded resolver.
    client: reqwest::Client,
    /// Whether internal addresses may be called.
    allow_private: bool,
    /// Requests in flight allowed per host.
    per_host: usize,
    /// For the text of a connect timeout.
    connect_timeout: Duration,
    /// For the text of a total timeout.
    timeout: Duration,
    /// Host → its in-flight permits. A permit holds a clone of the `Arc`, so a
    /// strong count of 1 means the host is idle and may be forgotten.
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("allow_private", &self.inner.allow_private)
            .field("per_host", &self.inner.per_host)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// The receiver answered 2xx: the delivery is done.
    Delivered {
        /// The HTTP status answered.
        status: u16,
    },
    /// The attempt failed and may be retried.
    Failed {
        /// The HTTP status when the receiver answered (non-2xx), `None` when
        /// no answer came (timeout, connection error, refused target, bad URL).
        status: Option<u16>,
        /// What went wrong, for the delivery log; never contains the URL.
        error: String,
    },
    /// The host already has `per_host` requests in flight: nothing was sent,
    /// try again shortly.
    HostBusy,
}

/// What [`Sender::send_request`] came to: the answer itself, for the
/// platform's own reading (`platforms::classify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with a status other than a redirect.
    Status {
        /// The HTTP status.
        status: u16,
        /// At most 64 KiB of the answer's body, enough for any platform's
        /// error message.
        body: Vec<u8>,
    },
    /// No usable answer (bad URL or header, refused target, timeout,
    /// connection error, redirect not followed): retry on the schedule. The
    /// text never contains the URL's query or a header value.
    Failed(String),
    /// The host already has `per_host` requests in flight: nothing was sent,
    /// try again shortly.
    HostBusy,
}

/// What an exchange came to, before [`Sender::send`] and
/// [`Sender::send_request`] each put it in their caller's terms.
enum Exchange {
    /// An answer other than a redirect, with at most 64 KiB of its body.
    Answered { status: u16, body: Vec<u8> },
    /// A redirect, not followed.
    Redirected { status: u16, location: String },
    /// No answer; the text never contains the URL's query or a header value.
    Failed(String),
    /// The host has its share of requests in flight: nothing was sent.
    HostBusy,
}

impl Sender {
    /// Builds the one HTTP client every attempt uses.
    pub fn new(config: SenderConfig) -> Result<Self, String> {
        if config.per_host == 0 {
            return Err("per_host must be at least 1".to_owned());
        }
        let resolver = GuardedResolver {
            static_hosts: config
                .static_hosts
                .iter()
                .map(|(name, ip)| (name.to_ascii_lowercase(), *ip))
                .collect(),
            allow_private: config.allow_private,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(config.user_agent.as_str())
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", causes(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                allow_private: config.allow_private,
                per_host: config.per_host,
                connect_timeout: config.connect_timeout,
                timeout: config.timeout,
                hosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// GET `url` with `Idempotency-Key: <idempotency_key>` and the User-Agent;
    /// redirects not followed; body read at most 64 KiB and discarded.
    ///
    /// Never waits for a busy host: answers [`SendResult::HostBusy`] instead.
    pub async fn send(&self, url: &str, idempotency_key: &str) -> SendResult {
        let request = OutboundRequest {
            method: reqwest::Method::GET,
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            idempotency_key: idempotency_key.to_owned(),
        };
        match self.exchange(request).await {
            Exchange::Answered { status, .. } if (200..300).contains(&status) => {
                SendResult::Delivered { status }
            }
            Exchange::Answered { status, .. } => SendResult::Failed {
                status: Some(status),
                error: format!("HTTP {status}"),
            },
            Exchange::Redirected { status, location } => SendResult::Failed {
                status: Some(status),
                error: format!("redirect to {location} not followed"),
            },
            Exchange::Failed(error) => failed(error),
            Exchange::HostBusy => SendResult::HostBusy,
        }
    }

    /// Makes `request` under the same guards as [`Sender::send`]: URL and
    /// scheme checked, internal IP literals refused, names resolved by the
    /// guarded resolver, the per-host limit (answered [`Answer::HostBusy`]
    /// at once), redirects not followed, the timeouts. Sends the request's
    /// method, headers and body, plus the User-Agent and, unless the request
    /// sets it, `Idempotency-Key: <idempotency_key>`.
    ///
    /// Returns the status and at most 64 KiB of the body, whatever the
    /// status: deciding what it means is the platform's business.
    pub async fn send_request(&self, request: OutboundRequest) -> Answer {
        match self.exchange(request).await {
            Exchange::Answered { status, body } => Answer::Status { status, body },
            Exchange::Redirected { status, location } => Answer::Failed(format!(
                "HTTP {status}: redirect to {location} not followed"
            )),
            Exchange::Failed(error) => Answer::Failed(error),
            Exchange::HostBusy => Answer::HostBusy,
        }
    }

    /// The one way out: `request` checked against the guard, sent under the
    /// host's permit, its answer read (at most 64 KiB of body, which also
    /// lets the connection be reused) or its redirect named.
    async fn exchange(&self, request: OutboundRequest) -> Exchange {
        let (url, host) = match self.target(&request.url) {
            Ok(target) => target,
            Err(error) => return Exchange::Failed(error),
        };
        let headers = match header_map(&request) {
            Ok(headers) => headers,
            Err(error) => return Exchange::Failed(error),
        };
        let query = url.query().unwrap_or("").to_owned();
        let Some(_permit) = self.try_acquire(&host) else {
            return Exchange::HostBusy;
        };

        let mut builder = self
            .inner
            .client
            .request(request.method, url)
            .headers(headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => return Exchange::Failed(redact(self.describe(e), &query)),
        };
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Exchange::Redirected {
                status,
                location: location_of(&response),
            };
        }
        Exchange::Answered {
            status,
            body: read_body(response).await,
        }
    }

    /// `url` parsed and checked against the guard: `http(s)` with a host,
    /// not an internal IP literal unless private targets are allowed.
    /// Returns it with the lowercased host, the key of the per-host limit.
    fn target(&self, url: &str) -> Result<(reqwest::Url, String), String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("bad URL: the scheme must be http or https".to_owned());
        }
        let (host, literal) = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => (name.to_ascii_lowercase(), None),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            _ => return Err("bad URL: no host".to_owned()),
        };
        if !self.inner.allow_private {
            if let Some(ip) = literal.filter(|ip| is_internal(*ip)) {
                return Err(PrivateTarget(ip).to_string());
            }
        }
        Ok((url, host))
    }

    /// A permit for one request to `host`, or `None` when it has `per_host`
    /// in flight.
    fn try_acquire(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut hosts = self
                .inner
                .hosts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if hosts.len() >= MAX_TRACKED_HOSTS && !hosts.contains_key(host) {
                hosts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            Arc::clone(
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.inner.per_host))),
            )
        };
        semaphore.try_acquire_owned().ok()
    }

    /// The error text of a request that got no answer.
    fn describe(&self, e: reqwest::Error) -> String {
        let e = e.without_url();
        if let Some(refused) = private_target_in(&e) {
            return refused;
        }
        if e.is_timeout() {
            return if e.is_connect() {
                format!("connect timed out after {:?}", self.inner.connect_timeout)
            } else {
                format!("timed out after {:?}", self.inner.timeout)
            };
        }
        let kind = if e.is_connect() {
            "connect error"
        } else {
            "request error"
        };
        format!("{kind}: {}", causes(&e))
    }
}

fn failed(error: String) -> SendResult {
    SendResult::Failed {
        status: None,
        error,
    }
}

/// The request's headers plus `Idempotency-Key`; an invalid one is named,
/// never quoted (its value may be a token).
fn header_map(request: &OutboundRequest) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(request.headers.len() + 1);
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "a header name is not valid".to_owned())?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    if !request.idempotency_key.is_empty() && !headers.contains_key("idempotency-key") {
        let key = HeaderValue::from_str(&request.idempotency_key)
            .map_err(|_| "the idempotency key is not a valid header value".to_owned())?;
        headers.insert("idempotency-key", key);
    }
    Ok(headers)
}

/// The `Location` of a redirect, shortened, for its error text.
fn location_of(response: &reqwest::Response) -> String {
    match response.headers().get(LOCATION) {
        None => "(no Location)".to_owned(),
        Some(value) => match value.to_str() {
            Ok(text) => shorten(text),
            Err(_) => "(a Location that is not visible ASCII)".to_owned(),
        },
    }
}

/// At most [`MAX_BODY`] bytes of the answer; a body cut short by an error
/// is returned as far as it came.
async fn read_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    body
}

/// The messages of `e`'s causes, joined with `: ` (the top message of a
/// reqwest error only says a request failed).
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(cause) = source {
        depth += 1;
        if depth > 16 {
            break;
        }
        let text = cause.to_string();
        // hyper's client error only repeats the kind ("client error (Connect)").
        if !text.is_empty() && !text.starts_with("client error (") && parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// The refusal text when the resolver refused every address of the host.
fn private_target_in(e: &reqwest::Error) -> Option<String> {
    let mut source = e.source();
    let mut depth = 0;
    while let Some(cause) = source {
        depth += 1;
        if depth > 16 {
            break;
        }
        if let Some(refused) = cause.downcast_ref::<PrivateTarget>() {
            return Some(refused.to_string());
        }
        let text = cause.to_string();
        if text.starts_with(PrivateTarget::PREFIX) {
            return Some(text);
        }
        source = cause.source();
    }
    None
}

/// `text` without `query` in it, in case a cause quoted the request.
fn redact(text: String, query: &str) -> String {
    if query.is_empty() || !text.contains(query) {
        text
    } else {
        text.replace(query, "…")
    }
}

/// At most [`MAX_LOCATION_CHARS`] of a `Location`.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_LOCATION_CHARS {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX_LOCATION_CHARS).collect();
        short.push('…');
        short
    }
}

/// A host that is, or only resolves to, an address inside the network.
#[derive(Debug)]
struct PrivateTarget(IpAddr);

impl PrivateTarget {
    /// How the refusal starts, the reason the delivery log shows.
    const PREFIX: &'static str = "private_target:";
}

impl fmt::Display for PrivateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} is an internal address", Self::PREFIX, self.0)
    }
}

impl StdError for PrivateTarget {}

/// Resolves names for the HTTP client and drops internal addresses, so the
/// client can only connect to addresses that were checked.
#[derive(Clone)]
struct GuardedResolver {
    /// Lowercased names answered before DNS.
    static_hosts: Arc<[(String, IpAddr)]>,
    /// Whether internal addresses are kept.
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let listed: Vec<IpAddr> = resolver
                .static_hosts
                .iter()
                .filter(|(name, _)| *name == host)
                .map(|(_, ip)| *ip)
                .collect();
            let found = if listed.is_empty() {
                tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|addr| addr.ip())
                    .collect()
            } else {
                listed
            };
            let mut refused = None;
            let mut allowed = Vec::with_capacity(found.len());
            for ip in found {
                if resolver.allow_private || !is_internal(ip) {
                    allowed.push(SocketAddr::new(ip, 0));
                } else if refused.is_none() {
                    refused = Some(ip);
                }
            }
            match refused {
                Some(ip) if allowed.is_empty() => Err(PrivateTarget(ip).into()),
                None if allowed.is_empty() => {
                    Err(io::Error::new(io::ErrorKind::NotFound, "the name has no address").into())
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, Notify};

    use super::Answer as Reply;
    use super::*;

    /// How long a test waits for something that should happen at once.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// How the test receiver answers.
    #[derive(Clone)]
    enum Answer {
        /// Writes this response as soon as the request head arrived.
        Now(String),
        /// Reads the request and never answers.
        Never,
        /// Writes this response once `Receiver::release` is notified.
        WhenReleased(String),
    }

    /// An HTTP server on 127.0.0.1 that records what reaches it.
    struct Receiver {
        addr: SocketAddr,
        /// The head of every request, in order.
        requests: mpsc::UnboundedReceiver<String>,
        /// How many TCP connections were accepted.
        connections: Arc<AtomicUsize>,
        /// Lets `Answer::WhenReleased` answer.
        release: Arc<Notify>,
    }

    impl Receiver {
        async fn start(answer: Answer) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let (tx, requests) = mpsc::unbounded_channel();
            let connections = Arc::new(AtomicUsize::new(0));
            let release = Arc::new(Notify::new());
            let (count, notify) = (Arc::clone(&connections), Arc::clone(&release));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(
                        stream,
                        answer.clone(),
                        tx.clone(),
                        Arc::clone(&notify),
                    ));
                }
            });
            Self {
                addr,
                requests,
                connections,
                release,
            }
        }

        fn url(&self, path_and_query: &str) -> String {
            format!("http://{}{path_and_query}", self.addr)
        }

        /// The next request head, waiting at most [`DEADLINE`].
        async fn next_request(&mut self) -> String {
            tokio::time::timeout(DEADLINE, self.requests.recv())
                .await
                .expect("a request reached the receiver in time")
                .expect("the receiver is running")
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }
    }

    async fn serve(
        mut stream: TcpStream,
        answer: Answer,
        requests: mpsc::UnboundedSender<String>,
        release: Arc<Notify>,
    ) {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        // The body too, as far as Content-Length announces it.
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).into_owned();
            let length = header(&text, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while head.len() < end + 4 + length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        }
        let _ = requests.send(String::from_utf8_lossy(&head).into_owned());
        let response = match answer {
            Answer::Now(response) => response,
            Answer::Never => {
                // Hold the connection open, answering nothing, until the peer goes.
                let _ = stream.read(&mut buf).await;
                return;
            }
            Answer::WhenReleased(response) => {
                release.notified().await;
                response
            }
        };
        let _ = stream.write_all(response.as_bytes()).await;
        // Keep the connection open until the client drops it, so a short body
        // looks unfinished rather than cut off.
        let _ = stream.read(&mut buf).await;
    }

    fn answer(status_line: &str, extra_headers: &str) -> String {
        format!("HTTP/1.1 {status_line}\r\n{extra_headers}Content-Length: 2\r\nConnection: close\r\n\r\nok")
    }

    fn config(allow_private: bool) -> SenderConfig {
        SenderConfig {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            per_host: 4,
            allow_private,
            static_hosts: Vec::new(),
            user_agent: "clickback-test/1.0".to_owned(),
        }
    }

    fn sender(config: SenderConfig) -> Sender {
        Sender::new(config).expect("valid sender config")
    }

    /// `header: value` of a request head, by case-insensitive name.
    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn error_of(result: SendResult) -> String {
        match result {
            SendResult::Failed { error, .. } => error,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_2xx_answer_is_delivered_with_the_idempotency_key_and_user_agent() {
        let mut receiver = Receiver::start(Answer::Now(answer("204 No Content", ""))).await;
        let sender = sender(config(true));

        let result = sender
            .send(&receiver.url("/pb?cid=C1&st=approved"), "conv-1:approved")
            .await;

        assert_eq!(result, SendResult::Delivered { status: 204 });
        let head = receiver.next_request().await;
        assert!(
            head.starts_with("GET /pb?cid=C1&st=approved HTTP/1.1\r\n"),
            "{head}"
        );
        assert_eq!(header(&head, "idempotency-key"), Some("conv-1:approved"));
        assert_eq!(header(&head, "user-agent"), Some("clickback-test/1.0"));
    }

    #[tokio::test]
    async fn a_500_answer_is_a_failure_with_its_status() {
        let receiver = Receiver::start(Answer::Now(answer("500 Internal Server Error", ""))).await;
        let sender = sender(config(true));

        let result = sender.send(&receiver.url("/pb"), "k").await;

        assert_eq!(
            result,
            SendResult::Failed {
                status: Some(500),
                error: "HTTP 500".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn a_redirect_is_a_failure_naming_its_location_and_is_not_followed() {
        let target = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let location = target.url("/elsewhere");
        let receiver = Receiver::start(Answer::Now(answer(
            "302 Found",
            &format!("Location: {location}\r\n"),
        )))
        .await;
        let sender = sender(config(true));

        let result = sender.send(&receiver.url("/pb"), "k").await;

        assert_eq!(
            result,
            SendResult::Failed {
                status: Some(302),
                error: format!("redirect to {location} not followed"),
            }
        );
        assert_eq!(receiver.connections(), 1);
        assert_eq!(target.connections(), 0, "the redirect was followed");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_times_out_within_the_timeout() {
        let mut receiver = Receiver::start(Answer::Never).await;
        let sender = sender(SenderConfig {
            timeout: Duration::from_millis(300),
            ..config(true)
        });
        let started = Instant::now();

        let result = tokio::time::timeout(DEADLINE, sender.send(&receiver.url("/pb"), "k"))
            .await
            .expect("the attempt ended before the test deadline");

        assert_eq!(
            result,
            SendResult::Failed {
                status: None,
                error: "timed out after 300ms".to_owned()
            }
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        receiver.next_request().await;
    }

    #[tokio::test]
    async fn internal_ip_literals_are_refused_before_anything_is_sent() {
        let receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let port = receiver.addr.port();
        let sender = sender(config(false));

        for (url, ip) in [
            (format!("http://127.0.0.1:{port}/pb"), "127.0.0.1"),
            (format!("http://[::1]:{port}/pb"), "::1"),
            (
                format!("http://[::ffff:127.0.0.1]:{port}/pb"),
                "::ffff:127.0.0.1",
            ),
            (format!("http://0x7f.1:{port}/pb"), "127.0.0.1"),
            ("http://10.0.0.1/pb".to_owned(), "10.0.0.1"),
            (
                "http://169.254.169.254/latest/meta-data/".to_owned(),
                "169.254.169.254",
            ),
        ] {
            let result = sender.send(&url, "k").await;

            assert_eq!(
                result,
                SendResult::Failed {
                    status: None,
                    error: format!("private_target: {ip} is an internal address"),
                },
                "{url}"
            );
        }
        assert_eq!(receiver.connections(), 0);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_internal_address_is_refused_without_connecting() {
        let receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let port = receiver.addr.port();
        let sender = sender(SenderConfig {
            static_hosts: vec![("Tracker.Test".to_owned(), "127.0.0.1".parse().expect("ip"))],
            ..config(false)
        });

        let by_static_name = sender
            .send(&format!("http://tracker.test:{port}/pb?token=s3cret"), "k")
            .await;
        let by_localhost = sender
            .send(&format!("http://localhost:{port}/pb"), "k")
            .await;

        assert_eq!(
            by_static_name,
            SendResult::Failed {
                status: None,
                error: "private_target: 127.0.0.1 is an internal address".to_owned(),
            }
        );
        let localhost_error = error_of(by_localhost);
        assert!(
            localhost_error.starts_with("private_target: ")
                && localhost_error.ends_with(" is an internal address"),
            "{localhost_error}"
        );
        assert_eq!(receiver.connections(), 0);
    }

    #[tokio::test]
    async fn with_private_targets_allowed_a_static_name_reaches_its_address() {
        let mut receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let port = receiver.addr.port();
        let sender = sender(SenderConfig {
            static_hosts: vec![("tracker.test".to_owned(), "127.0.0.1".parse().expect("ip"))],
            ..config(true)
        });

        let result = sender
            .send(&format!("http://tracker.test:{port}/pb"), "k")
            .await;

        assert_eq!(result, SendResult::Delivered { status: 200 });
        let head = receiver.next_request().await;
        assert_eq!(
            header(&head, "host"),
            Some(format!("tracker.test:{port}").as_str())
        );
    }

    #[tokio::test]
    async fn a_host_with_its_limit_in_flight_is_answered_busy_without_sending() {
        let mut receiver = Receiver::start(Answer::WhenReleased(answer("200 OK", ""))).await;
        let sender = sender(SenderConfig {
            per_host: 1,
            ..config(true)
        });
        let first = tokio::spawn({
            let sender = sender.clone();
            let url = receiver.url("/first");
            async move { sender.send(&url, "k1").await }
        });
        receiver.next_request().await;

        let second = tokio::time::timeout(DEADLINE, sender.send(&receiver.url("/second"), "k2"))
            .await
            .expect("a busy host is answered at once");

        assert_eq!(second, SendResult::HostBusy);
        assert_eq!(receiver.connections(), 1);
        receiver.release.notify_one();
        let first = tokio::time::timeout(DEADLINE, first)
            .await
            .expect("the first attempt ended in time")
            .expect("the first attempt did not panic");
        assert_eq!(first, SendResult::Delivered { status: 200 });
        // The finished attempt gave its place back.
        let third = tokio::spawn({
            let sender = sender.clone();
            let url = receiver.url("/third");
            async move { sender.send(&url, "k3").await }
        });
        receiver.next_request().await;
        receiver.release.notify_one();
        let third = tokio::time::timeout(DEADLINE, third)
            .await
            .expect("the third attempt ended in time")
            .expect("the third attempt did not panic");
        assert_eq!(third, SendResult::Delivered { status: 200 });
    }

    #[tokio::test]
    async fn errors_never_quote_the_urls_query() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("local addr").port()
        };
        let silent = Receiver::start(Answer::Never).await;
        let sender = sender(SenderConfig {
            timeout: Duration::from_millis(300),
            ..config(true)
        });

        let refused = sender
            .send(&format!("http://127.0.0.1:{closed}/pb?token=hunter2"), "k")
            .await;
        let timed_out = sender.send(&silent.url("/pb?token=hunter2"), "k").await;
        let unresolvable = sender
            .send("http://no-such-host.invalid/pb?token=hunter2", "k")
            .await;

        for error in [
            error_of(refused),
            error_of(timed_out),
            error_of(unresolvable),
        ] {
            assert!(!error.contains("hunter2"), "{error}");
            assert!(!error.contains("/pb"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failure_without_status() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("local addr").port()
        };
        let sender = sender(config(true));

        let result = sender
            .send(&format!("http://127.0.0.1:{closed}/pb"), "k")
            .await;

        let SendResult::Failed { status, error } = result else {
            panic!("expected a failure, got {result:?}");
        };
        assert_eq!(status, None);
        assert!(error.starts_with("connect error: "), "{error}");
    }

    #[tokio::test]
    async fn a_large_answer_is_not_downloaded() {
        // Announces 100 MiB, sends 128 KiB and then nothing: reading to the end
        // would wait for the whole timeout.
        let body = "x".repeat(128 * 1024);
        let receiver = Receiver::start(Answer::Now(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            100 * 1024 * 1024
        )))
        .await;
        let sender = sender(SenderConfig {
            timeout: Duration::from_secs(60),
            ..config(true)
        });

        let result = tokio::time::timeout(DEADLINE, sender.send(&receiver.url("/pb"), "k"))
            .await
            .expect("the attempt stopped reading early");

        assert_eq!(result, SendResult::Delivered { status: 200 });
    }

    #[tokio::test]
    async fn bad_urls_and_keys_are_failures_without_a_request() {
        let receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let sender = sender(config(true));

        for url in [
            "not a url",
            "ftp://tracker.example/pb",
            "file:///etc/passwd",
        ] {
            let error = error_of(sender.send(url, "k").await);
            assert!(error.starts_with("bad URL: "), "{url}: {error}");
        }
        let bad_key = error_of(sender.send(&receiver.url("/pb"), "line\nbreak").await);

        assert_eq!(bad_key, "the idempotency key is not a valid header value");
        assert_eq!(receiver.connections(), 0);
    }

    fn request(url: String) -> OutboundRequest {
        OutboundRequest {
            method: reqwest::Method::POST,
            url,
            headers: vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Access-Token".to_owned(), "tok-123".to_owned()),
            ],
            body: Some(br#"{"event":"Purchase"}"#.to_vec()),
            idempotency_key: "conv-1:approved:tiktok".to_owned(),
        }
    }

    fn failure_of(answer: Reply) -> String {
        match answer {
            Reply::Failed(error) => error,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_arrives_with_its_method_headers_and_body_and_its_answer_is_read() {
        let mut receiver = Receiver::start(Answer::Now(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 28\r\nConnection: close\r\n\r\n{\"code\":40002,\"message\":\"x\"}"
                .to_owned(),
        ))
        .await;
        let sender = sender(config(true));

        let answer = sender
            .send_request(request(receiver.url("/open_api/v1.3/event/track/?a=1")))
            .await;

        assert_eq!(
            answer,
            Reply::Status {
                status: 400,
                body: br#"{"code":40002,"message":"x"}"#.to_vec(),
            }
        );
        let seen = receiver.next_request().await;
        assert!(
            seen.starts_with("POST /open_api/v1.3/event/track/?a=1 HTTP/1.1\r\n"),
            "{seen}"
        );
        assert_eq!(header(&seen, "content-type"), Some("application/json"));
        assert_eq!(header(&seen, "access-token"), Some("tok-123"));
        assert_eq!(
            header(&seen, "idempotency-key"),
            Some("conv-1:approved:tiktok")
        );
        assert_eq!(header(&seen, "user-agent"), Some("clickback-test/1.0"));
        assert!(seen.ends_with("\r\n\r\n{\"event\":\"Purchase\"}"), "{seen}");
    }

    #[tokio::test]
    async fn a_request_that_sets_its_own_idempotency_key_keeps_it() {
        let mut receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let sender = sender(config(true));
        let mut own = request(receiver.url("/hook"));
        own.headers
            .push(("Idempotency-Key".to_owned(), "mine".to_owned()));

        let answer = sender.send_request(own).await;

        assert_eq!(
            answer,
            Reply::Status {
                status: 200,
                body: b"ok".to_vec()
            }
        );
        let seen = receiver.next_request().await;
        assert_eq!(header(&seen, "idempotency-key"), Some("mine"));
        assert_eq!(seen.matches("dempotency-").count(), 1, "{seen}");
    }

    #[tokio::test]
    async fn a_general_request_to_an_internal_literal_is_refused_before_sending() {
        let receiver = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let sender = sender(config(false));

        let error = failure_of(sender.send_request(request(receiver.url("/hook"))).await);

        assert_eq!(error, "private_target: 127.0.0.1 is an internal address");
        assert_eq!(receiver.connections(), 0);
    }

    #[tokio::test]
    async fn general_request_errors_never_quote_the_query_or_a_header_value() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("local addr").port()
        };
        let silent = Receiver::start(Answer::Never).await;
        let sender = sender(SenderConfig {
            timeout: Duration::from_millis(300),
            ..config(true)
        });
        let mut bad_header = request(silent.url("/mp/collect?api_secret=hunter2"));
        bad_header.headers[1].1 = "tok\nen-hunter2".to_owned();

        let errors = [
            failure_of(
                sender
                    .send_request(request(format!(
                        "http://127.0.0.1:{closed}/mp/collect?api_secret=hunter2"
                    )))
                    .await,
            ),
            failure_of(
                sender
                    .send_request(request(silent.url("/mp/collect?api_secret=hunter2")))
                    .await,
            ),
            failure_of(
                sender
                    .send_request(request(
                        "http://no-such-host.invalid/mp/collect?api_secret=hunter2".to_owned(),
                    ))
                    .await,
            ),
            failure_of(sender.send_request(bad_header).await),
        ];

        for error in &errors {
            assert!(!error.contains("hunter2"), "{error}");
            assert!(!error.contains("/mp/collect"), "{error}");
        }
        assert_eq!(
            errors[3],
            "the value of header access-token is not a valid header value"
        );
    }

    #[tokio::test]
    async fn a_general_request_does_not_follow_redirects() {
        let target = Receiver::start(Answer::Now(answer("200 OK", ""))).await;
        let receiver = Receiver::start(Answer::Now(answer(
            "307 Temporary Redirect",
            &format!("Location: {}\r\n", target.url("/x")),
        )))
        .await;
        let sender = sender(config(true));

        let error = failure_of(sender.send_request(request(receiver.url("/hook"))).await);

        assert!(error.starts_with("HTTP 307: redirect to "), "{error}");
        assert_eq!(target.connections(), 0);
    }

    #[tokio::test]
    async fn a_general_request_to_a_busy_host_is_answered_at_once() {
        let mut receiver = Receiver::start(Answer::WhenReleased(answer("200 OK", ""))).await;
        let sender = sender(SenderConfig {
            per_host: 1,
            ..config(true)
        });
        let first = tokio::spawn({
            let sender = sender.clone();
            let request = request(receiver.url("/first"));
            async move { sender.send_request(request).await }
        });
        receiver.next_request().await;

        let second = tokio::time::timeout(
            DEADLINE,
            sender.send_request(request(receiver.url("/second"))),
        )
        .await
        .expect("a busy host is answered at once");

        assert_eq!(second, Reply::HostBusy);
        receiver.release.notify_one();
        let first = tokio::time::timeout(DEADLINE, first)
            .await
            .expect("the first attempt ended in time")
            .expect("the first attempt did not panic");
        assert!(
            matches!(first, Reply::Status { status: 200, .. }),
            "{first:?}"
        );
    }

    #[tokio::test]
    async fn only_the_first_64_kib_of_an_answer_are_read() {
        let body = "x".repeat(128 * 1024);
        let receiver = Receiver::start(Answer::Now(format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{body}",
            100 * 1024 * 1024
        )))
        .await;
        let sender = sender(SenderConfig {
            timeout: Duration::from_secs(60),
            ..config(true)
        });

        let answer = tokio::time::timeout(
            DEADLINE,
            sender.send_request(request(receiver.url("/hook"))),
        )
        .await
        .expect("the attempt stopped reading early");

        let Reply::Status { status, body } = answer else {
            panic!("expected an answer, got {answer:?}");
        };
        assert_eq!(status, 500);
        assert_eq!(body.len(), MAX_BODY);
    }

    #[test]
    fn a_zero_per_host_limit_is_refused() {
        let refused = Sender::new(SenderConfig {
            per_host: 0,
            ..config(false)
        });

        assert_eq!(
            refused.err(),
            Some("per_host must be at least 1".to_owned())
        );
    }
}
