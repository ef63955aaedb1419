//! TLS for the admission server: the rustls configuration, a certificate resolver
//! whose certificate can be swapped atomically, and its two sources — PEM files
//! (a mounted Secret, polled and reloaded) and an in-memory self-signed pair.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::metrics::WebhookMetrics;
use crate::probes::ReadinessGate;

/// ALPN protocols offered, in preference order. HTTP/2 lets the API server multiplex
/// many admission calls over one connection; the rapid-reset class of attacks
/// (CVE-2023-44487) that made Go webhooks turn h2 off is mitigated in hyper (bounded
/// pending resets) and further bounded by our max concurrent streams. HTTP/1.1 stays
/// for clients such as curl and older API servers.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Errors of the TLS layer.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a valid PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "the private key does not match the certificate ({reason}); keeping the previous certificate"
    )]
    KeyMismatch { reason: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(rcgen::Error),
    #[error("cannot write the CA certificate to {path}: {source}")]
    WriteCa {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The ring provider, the only one compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server TLS configuration: TLS 1.3 and 1.2 only, no client authentication, the
/// certificate chosen by `resolver` at every handshake, ALPN [`ALPN_PROTOCOLS`].
pub fn server_config(resolver: Arc<CertStore>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The serving certificate, swapped atomically; each handshake takes the current one,
/// so established connections and in-flight requests are never disturbed by a reload.
/// Empty until a first certificate loads (handshakes are refused meanwhile and the
/// readiness gate stays closed).
#[derive(Default)]
pub struct CertStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("loaded", &self.current().is_some())
            .finish()
    }
}

impl CertStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The certificate served to new connections.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        // Writers only replace the Arc; a poisoned lock still holds a whole value.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Serve `key` to every new connection from now on.
    pub fn replace(&self, key: CertifiedKey) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(key));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// Build a [`CertifiedKey`] from PEM text, checking that the key belongs to the
/// certificate. `cert_path`/`key_path` only name the inputs in errors.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: key_path.to_path_buf(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // A strict check: "cannot tell" is refused too, so a half-rotated pair never loads.
    certified.keys_match().map_err(|e| TlsError::KeyMismatch {
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// Outcome of one look at the certificate files.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files hold what is already served (or what already failed).
    Unchanged,
    /// A new certificate is now served.
    Loaded,
}

/// PEM certificate + key files (e.g. a mounted `kubernetes.io/tls` Secret), reloaded
/// when their content changes and only when the pair is complete and consistent.
#[derive(Debug)]
pub struct FileCertSource {
    cert_path: PathBuf,
    key_path: PathBuf,
    /// Digest of the (cert, key) bytes last looked at, loaded or failed: a pair is
    /// parsed, and a failure logged, once per distinct content.
    last_seen: Option<[u8; 32]>,
}

impl FileCertSource {
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> Self {
        Self {
            cert_path,
            key_path,
            last_seen: None,
        }
    }

    /// Read both files; when their content changed, parse and check them and, if
    /// valid, make them the served certificate. On error the store is untouched.
    pub fn reload(&mut self, store: &CertStore) -> Result<Reload, TlsError> {
        let cert = std::fs::read(&self.cert_path).map_err(|source| TlsError::Read {
            path: self.cert_path.clone(),
            source,
        })?;
        let key = std::fs::read(&self.key_path).map_err(|source| TlsError::Read {
            path: self.key_path.clone(),
            source,
        })?;
        let digest = pair_digest(&cert, &key);
        if self.last_seen == Some(digest) {
            return Ok(Reload::Unchanged);
        }
        self.last_seen = Some(digest);
        let certified = certified_key_from_pem(&cert, &key, &self.cert_path, &self.key_path)?;
        store.replace(certified);
        Ok(Reload::Loaded)
    }

    /// Poll the files every `interval` until `shutdown`, reloading on change. The
    /// readiness gate opens at the first successful load.
    pub async fn watch(
        mut self,
        store: Arc<CertStore>,
        interval: Duration,
        gate: ReadinessGate,
        metrics: WebhookMetrics,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A failure that repeats poll after poll (files still missing) is logged and
        // counted once; content that fails to load is judged once (see `last_seen`).
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.reload(&store) {
                Ok(Reload::Loaded) => {
                    last_error = None;
                    metrics.certificate_reloaded(true);
                    gate.set_ready(true);
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate loaded");
                }
                // Content already judged: a later failure of other content is news.
                Ok(Reload::Unchanged) => last_error = None,
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_ref() == Some(&message) {
                        continue;
                    }
                    last_error = Some(message);
                    metrics.certificate_reloaded(false);
                    if store.current().is_some() {
                        tracing::warn!(error = %e, "certificate files not loaded; still serving the previous certificate");
                    } else {
                        tracing::warn!(error = %e, "no valid certificate yet; refusing TLS handshakes until one loads");
                    }
                }
            }
        }
    }
}

fn pair_digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((cert.len() as u64).to_be_bytes());
    hasher.update(cert);
    hasher.update(key);
    hasher.finalize().into()
}

/// A development certificate: an in-memory CA and a leaf it signed.
pub struct SelfSigned {
    /// PEM of the CA certificate, for clients to trust (`caBundle`, `curl --cacert`).
    pub ca_pem: String,
    /// PEM of the leaf certificate.
    pub cert_pem: String,
    /// PEM (PKCS#8) of the leaf's private key.
    pub key_pem: String,
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

/// Names the development certificate is valid for.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl SelfSigned {
    /// Generate a CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> Result<Self, TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut ca_params = CertificateParams::default();
        let mut ca_dn = DistinguishedName::new();
        ca_dn.push(DnType::CommonName, "dittofs-operator development CA");
        ca_params.distinguished_name = ca_dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(TlsError::Generate)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(TlsError::Generate)?;
        let owned: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        let mut leaf_params = CertificateParams::new(owned).map_err(TlsError::Generate)?;
        let mut leaf_dn = DistinguishedName::new();
        leaf_dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        leaf_params.distinguished_name = leaf_dn;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .map_err(TlsError::Generate)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// The leaf as a rustls key.
    pub fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        let here = Path::new("<self-signed>");
        certified_key_from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
            here,
            here,
        )
    }

    /// Write the CA PEM to `path` atomically (temporary file + rename), so a client
    /// polling for it never reads half a certificate.
    pub fn write_ca(&self, path: &Path) -> Result<(), TlsError> {
        let err = |source| TlsError::WriteCa {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.ca_pem.as_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = dir.join("tls.crt");
        let k = dir.join("tls.key");
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    fn served_leaf(store: &CertStore) -> Vec<u8> {
        store.current().unwrap().cert[0].to_vec()
    }

    #[test]
    fn loads_a_valid_pair_then_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let pair = SelfSigned::generate(&SELF_SIGNED_NAMES).unwrap();
        let (c, k) = write_pair(dir.path(), &pair.cert_pem, &pair.key_pem);
        let store = CertStore::new();
        let mut source = FileCertSource::new(c, k);
        assert_eq!(source.reload(&store).unwrap(), Reload::Loaded);
        assert_eq!(source.reload(&store).unwrap(), Reload::Unchanged);
    }

    #[test]
    fn a_mismatched_or_truncated_pair_never_replaces_the_served_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = SelfSigned::generate(&SELF_SIGNED_NAMES).unwrap();
        let second = SelfSigned::generate(&SELF_SIGNED_NAMES).unwrap();
        let (c, k) = write_pair(dir.path(), &first.cert_pem, &first.key_pem);
        let store = CertStore::new();
        let mut source = FileCertSource::new(c.clone(), k.clone());
        source.reload(&store).unwrap();
        let served = served_leaf(&store);

        // New certificate written, key not yet: mismatch.
        std::fs::write(&c, &second.cert_pem).unwrap();
        let err = source.reload(&store).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert_eq!(served_leaf(&store), served);

        // Half a certificate file.
        let half = &second.cert_pem[..second.cert_pem.len() / 2];
        std::fs::write(&c, half).unwrap();
        std::fs::write(&k, &second.key_pem).unwrap();
        assert!(source.reload(&store).is_err());
        assert_eq!(served_leaf(&store), served);

        // The complete pair loads.
        std::fs::write(&c, &second.cert_pem).unwrap();
        assert_eq!(source.reload(&store).unwrap(), Reload::Loaded);
        assert_ne!(served_leaf(&store), served);
    }

    #[test]
    fn missing_files_are_an_error_naming_the_path() {
        let store = CertStore::new();
        let mut source = FileCertSource::new("/nonexistent/tls.crt".into(), "/x/tls.key".into());
        let err = source.reload(&store).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/tls.crt"), "{err}");
        assert!(store.current().is_none());
    }

    #[test]
    fn server_config_offers_h2_and_http11_only_over_tls12_and_13() {
        let config = server_config(Arc::new(CertStore::new())).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
