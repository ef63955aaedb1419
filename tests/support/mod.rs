//! A minimal HTTPS client for tests and the load bench: rustls (ring) over tokio, raw
//! HTTP/1.1 with keep-alive, so what is measured and asserted is the server alone.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Install ring as the process provider (ignore "already installed").
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client configuration trusting the CA certificates in `ca_pems`.
pub fn client_config(
    ca_pems: &[&str],
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// TLS 1.3 + 1.2, ALPN http/1.1.
pub fn http1_config(ca_pem: &str) -> Arc<ClientConfig> {
    client_config(
        &[ca_pem],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"http/1.1"],
    )
}

pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// One HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A keep-alive HTTP/1.1 connection over TLS.
pub struct Http1Conn {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Http1Conn {
    pub async fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Self> {
        Ok(Self {
            stream: connect(addr, config).await?,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    pub fn tls(&self) -> &TlsStream<TcpStream> {
        &self.stream
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        self.stream.write_all(&request).await?;
        self.stream.flush().await?;
        self.read_response().await
    }

    /// POST a body the server may answer before reading it all (e.g. 413): write and
    /// read concurrently, ignoring a write cut short by the server closing.
    pub async fn post_early_answer(
        self,
        path: &str,
        body: Vec<u8>,
    ) -> std::io::Result<HttpResponse> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (mut reader, mut writer) = tokio::io::split(self.stream);
        let write = tokio::spawn(async move {
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&body).await;
            let _ = writer.flush().await;
            writer
        });
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let response = loop {
            if let Some(response) = parse_complete(&buf)? {
                break response;
            }
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        write.abort();
        Ok(response)
    }

    pub async fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<HttpResponse> {
        self.send("POST", path, body).await
    }

    async fn read_response(&mut self) -> std::io::Result<HttpResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let (status, headers, length) = parse_head(&self.buf[..head_end])?;
        let body_start = head_end + 4;
        while self.buf.len() < body_start + length {
            self.fill().await?;
        }
        let body = self.buf[body_start..body_start + length].to_vec();
        self.buf.drain(..body_start + length);
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A whole response in `buf`, if it is there yet.
fn parse_complete(buf: &[u8]) -> std::io::Result<Option<HttpResponse>> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let (status, headers, length) = parse_head(&buf[..head_end])?;
    let body_start = head_end + 4;
    if buf.len() < body_start + length {
        return Ok(None);
    }
    Ok(Some(HttpResponse {
        status,
        headers,
        body: buf[body_start..body_start + length].to_vec(),
    }))
}

type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(head: &[u8]) -> std::io::Result<Head> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let head = std::str::from_utf8(head).map_err(|_| bad("head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("status line"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| bad("content-length"))?;
    Ok((status, headers, length))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An AdmissionReview v1 request for a DittoServer `object` (`old` on UPDATE).
pub fn review(
    uid: &str,
    operation: &str,
    object: Option<serde_json::Value>,
    old: Option<serde_json::Value>,
) -> serde_json::Value {
    let gvk = serde_json::json!({"group": "dittofs.dittofs.com", "version": "v1alpha1", "kind": "DittoServer"});
    let gvr = serde_json::json!({"group": "dittofs.dittofs.com", "version": "v1alpha1", "resource": "dittoservers"});
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": "demo",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "tester"},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

/// A DittoServer object with `spec`.
pub fn ditto_server(spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "dittofs.dittofs.com/v1alpha1",
        "kind": "DittoServer",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": spec
    })
}

/// Everything the operator builds for `ds`, with fixed managed credentials.
fn built_children(
    ds: &dittofs_operator::crd::DittoServer,
) -> dittofs_operator::resources::Children {
    use dittofs_operator::effective::EffectiveSpec;
    use dittofs_operator::resources::{BuildInputs, ManagedSecretValues, build_all};
    let inputs = BuildInputs {
        secrets: Default::default(),
        managed: ManagedSecretValues {
            jwt_secret: "j".repeat(43),
            admin_password: "p".repeat(32),
            account_password: "a".repeat(32),
        },
        ..Default::default()
    };
    build_all(ds, &EffectiveSpec::resolve(ds), &inputs).expect("build")
}

/// The StatefulSet the operator builds for `ds`, with fixed managed credentials (what
/// the admission-policy tests judge).
pub fn built_stateful_set(
    ds: &dittofs_operator::crd::DittoServer,
) -> k8s_openapi::api::apps::v1::StatefulSet {
    built_children(ds).stateful_set
}

/// The NetworkPolicy the operator builds for `ds` (`None` with
/// `networkPolicy.enabled: false`), what the admission-policy tests judge.
pub fn built_network_policy(
    ds: &dittofs_operator::crd::DittoServer,
) -> Option<k8s_openapi::api::networking::v1::NetworkPolicy> {
    built_children(ds).network_policy
}
