//! HTTP to one DittoFS server's REST API: hyper-util's pooled client (already in the
//! tree through kube), names resolved by the system resolver unless a test
//! overrides it, every call bounded.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Sensitive;
use super::api::Problem;
use super::tls::ClientTls;
use rustls::ClientConfig;

/// An idle connection to a server is closed after this long: longer than the gaps
/// between the calls of one pass, shorter than the poll interval.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting takes at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole call (connect, request, answer) takes at most this long. The server's
/// own handlers stop at 30 s (`chi middleware.Timeout`); an adapter restart after
/// a port change answers within its 30 s shutdown timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// An HTTPS client no call used for this long is dropped (its Secret rotated,
/// or its server is gone).
const SECURE_CLIENT_IDLE: Duration = Duration::from_secs(600);
/// Largest answer read: a share or store list of a large server is well below.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why a call failed. Never carries a request body, a password or a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer: the name did not resolve, the connection failed or broke.
    #[error("{what}: cannot reach the server: {message}")]
    Unreachable { what: String, message: String },
    /// No answer in time.
    #[error("{what}: no answer within {} s", .timeout.as_secs())]
    Timeout { what: String, timeout: Duration },
    /// The server answered with an error status: its own words (`detail` of a
    /// problem document, or the plain-text body of the middleware).
    #[error("{what}: {status} {detail}")]
    Refused {
        what: String,
        status: u16,
        detail: String,
    },
    /// A success whose body is not what v0.29 sends.
    #[error("{what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
}

impl CallError {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server could not be asked (or did not answer): a retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable { .. } | CallError::Timeout { .. } => true,
            CallError::Refused { status, .. } => *status >= 500,
            CallError::Decode { .. } => false,
        }
    }
}

/// How the names of DittoFS Services are resolved.
#[derive(Clone)]
pub enum Resolver {
    /// The system resolver (getaddrinfo): cluster DNS in a pod, `/etc/hosts` too.
    System(GaiResolver),
    /// A fixed table, for tests: every name to one address, or by name.
    Fixed(Arc<FixedTable>),
}

/// The addresses of a [`Resolver::Fixed`].
#[derive(Default)]
pub struct FixedTable {
    pub by_name: HashMap<String, IpAddr>,
    /// For names not in the table.
    pub otherwise: Option<IpAddr>,
}

impl Resolver {
    pub fn system() -> Self {
        Resolver::System(GaiResolver::new())
    }

    /// Every name resolves to `ip` (a test server on loopback).
    pub fn everything_to(ip: IpAddr) -> Self {
        Resolver::Fixed(Arc::new(FixedTable {
            by_name: HashMap::new(),
            otherwise: Some(ip),
        }))
    }
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Resolver::System(gai) => gai.poll_ready(cx),
            Resolver::Fixed(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            Resolver::System(gai) => {
                let lookup = gai.call(name);
                Box::pin(async move {
                    let addrs: Vec<SocketAddr> = lookup.await?.collect();
                    Ok(addrs.into_iter())
                })
            }
            Resolver::Fixed(table) => {
                let ip = table
                    .by_name
                    .get(name.as_str())
                    .copied()
                    .or(table.otherwise);
                Box::pin(async move {
                    match ip {
                        // Port 0: the URL's port is used.
                        Some(ip) => Ok(vec![SocketAddr::new(ip, 0)].into_iter()),
                        None => Err(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("{} is not in the resolver table", name.as_str()),
                        )),
                    }
                })
            }
        }
    }
}

/// Where a server's REST API is: its base URL and, over HTTPS, how to trust it.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// `http://host:port` or `https://host:port`.
    pub base: String,
    pub tls: Option<ClientTls>,
}

type Plain = HttpClient<HttpConnector<Resolver>, Full<Bytes>>;
type Secure = HttpClient<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;
/// HTTPS clients by the digest of their setting, with when each was last used.
type SecureClients = HashMap<[u8; 32], (Secure, Instant)>;

/// The client every pass shares: one connection pool for all plain-HTTP DittoFS
/// servers, and one per distinct HTTPS setting (a server's certificate Secrets).
#[derive(Clone)]
pub struct Client {
    http: Plain,
    secure: Arc<Mutex<SecureClients>>,
    connector: HttpConnector<Resolver>,
    idle: Duration,
    timeout: Duration,
}

impl Client {
    pub fn new(resolver: Resolver) -> Self {
        Self::with_idle_timeout(resolver, POOL_IDLE_TIMEOUT)
    }

    /// A client whose idle connections close after `idle` (tests).
    pub fn with_idle_timeout(resolver: Resolver, idle: Duration) -> Self {
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Self {
            http: pooled(connector.clone(), idle),
            secure: Arc::default(),
            connector,
            idle,
            timeout: CALL_TIMEOUT,
        }
    }

    /// The HTTPS client of `tls`, made on first use.
    fn secure(&self, tls: &ClientTls) -> Secure {
        let mut clients = self.secure.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((client, used)) = clients.get_mut(&tls.digest) {
            *used = now;
            return client.clone();
        }
        clients.retain(|_, (_, used)| now.duration_since(*used) < SECURE_CLIENT_IDLE);
        let mut connector = self.connector.clone();
        connector.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(ClientConfig::clone(&tls.config))
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        let client = pooled(https, self.idle);
        clients.insert(tls.digest, (client.clone(), now));
        client
    }

    /// The same client with another bound per call (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One call: `method` on `path` of `to`, with a bearer
    /// token when given and a JSON body when given; the answer decoded as `T`.
    /// `what` names the call in errors.
    pub async fn call<T, B>(
        &self,
        what: &str,
        to: &Endpoint,
        method: Method,
        path: &str,
        token: Option<&Sensitive>,
        body: Option<&B>,
    ) -> Result<T, CallError>
    where
        T: DeserializeOwned,
        B: Serialize + ?Sized,
    {
        let bytes = self.exchange(what, to, method, path, token, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// [`Client::call`] for answers whose body is not read (204, or not needed).
    pub async fn call_ignoring_body<B>(
        &self,
        what: &str,
        to: &Endpoint,
        method: Method,
        path: &str,
        token: Option<&Sensitive>,
        body: Option<&B>,
    ) -> Result<(), CallError>
    where
        B: Serialize + ?Sized,
    {
        self.exchange(what, to, method, path, token, body)
            .await
            .map(|_| ())
    }

    async fn exchange<B>(
        &self,
        what: &str,
        to: &Endpoint,
        method: Method,
        path: &str,
        token: Option<&Sensitive>,
        body: Option<&B>,
    ) -> Result<Bytes, CallError>
    where
        B: Serialize + ?Sized,
    {
        let unreachable = |message: String| CallError::Unreachable {
            what: what.to_string(),
            message,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", to.base))
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body).map_err(|e| CallError::Decode {
                    what: what.to_string(),
                    message: format!("cannot encode the request: {e}"),
                })?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| unreachable(format!("invalid request: {e}")))?;
        let exchange = async {
            let response = match &to.tls {
                None => self.http.request(request).await,
                Some(tls) => self.secure(tls).request(request).await,
            }
            .map_err(|e| unreachable(describe(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout {
                what: what.to_string(),
                timeout: self.timeout,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        Err(CallError::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            detail: detail(status, &body),
        })
    }
}

/// A pooled client over `connector`.
fn pooled<C>(connector: C, idle: Duration) -> HttpClient<C, Full<Bytes>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    // Without a timer the pool never evicts an idle connection: it only checks its
    // age when the next request to that server wants it, so every server polled
    // once would keep a connection (and its buffers) open for good.
    HttpClient::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(2)
        .build(connector)
}

/// The server's words for an error answer: a problem document's `detail` (or
/// `title`), else the plain-text body, else the status's reason.
fn detail(status: StatusCode, body: &[u8]) -> String {
    if let Ok(problem) = serde_json::from_slice::<Problem>(body) {
        let text = if problem.detail.is_empty() {
            problem.title
        } else {
            problem.detail
        };
        if !text.is_empty() {
            return text;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(300).collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or_default().to_string()
    } else {
        text
    }
}

/// A connection error with its cause (hyper-util's top-level message alone says
/// only "client error (Connect)").
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_detail_then_text_then_reason() {
        let problem = br#"{"type":"about:blank","title":"Conflict","status":409,"detail":"Share already exists"}"#;
        assert_eq!(
            detail(StatusCode::CONFLICT, problem),
            "Share already exists"
        );
        assert_eq!(
            detail(StatusCode::FORBIDDEN, b"Admin access required\n"),
            "Admin access required"
        );
        assert_eq!(detail(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
    }

    /// An idle connection is closed once its time is up, whether or not another
    /// call goes to that server (a server polled once must not hold one for good).
    #[tokio::test]
    async fn idle_connections_are_closed_without_another_call() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 4096];
            let _ = socket.read(&mut request).await.expect("request");
            let body = b"{}";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.expect("answer");
            socket.write_all(body).await.expect("body");
            // The client keeps the connection alive; it must close it by itself.
            let started = std::time::Instant::now();
            let closed = socket.read(&mut request).await.expect("read");
            (closed, started.elapsed())
        });
        let client = Client::with_idle_timeout(
            Resolver::everything_to(IpAddr::from([127, 0, 0, 1])),
            Duration::from_millis(200),
        );
        let answer: serde_json::Value = client
            .call(
                "probe",
                &Endpoint {
                    base: format!("http://somewhere:{port}"),
                    tls: None,
                },
                Method::GET,
                "/x",
                None,
                None::<&()>,
            )
            .await
            .expect("answer");
        assert_eq!(answer, serde_json::json!({}));
        let (read, after) = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the idle connection is closed in time")
            .expect("server task");
        assert_eq!(read, 0, "end of stream: the client closed it");
        assert!(
            after >= Duration::from_millis(150),
            "not before its time: {after:?}"
        );
        // Alive until here: dropping the client would close the connection too.
        drop(client);
    }

    #[test]
    fn which_failures_may_pass() {
        let refused = |status| CallError::Refused {
            what: "x".into(),
            status,
            detail: String::new(),
        };
        assert!(refused(500).is_transient());
        assert!(refused(503).is_transient());
        assert!(!refused(400).is_transient());
        assert!(!refused(401).is_transient());
    }
}
