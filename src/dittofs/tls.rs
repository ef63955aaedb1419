//! How the operator speaks HTTPS to a server whose REST API has a certificate
//! (`spec.controlPlane.certSecretName`), built purely from the Secrets' data.
//!
//! Trust: the CA in the certificate Secret's `ca.crt` (what cert-manager writes),
//! verified as usual against the Service's name; or, in any case, exactly the
//! certificate in its `tls.crt` — the operator read it from the Secret the server
//! serves, so a self-signed certificate works without a CA. Under mutual TLS the
//! operator presents the certificate of `operatorCertSecretName`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::effective::ApiTls;

/// Why HTTPS to a server cannot be set up. Names Secrets and keys, never values.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TlsSetupError {
    #[error("Secret {secret} cannot be read yet (it does not exist, or has no data)")]
    Unread { secret: String },
    #[error("key {key} of Secret {secret} is missing")]
    MissingKey { secret: String, key: &'static str },
    #[error("key {key} of Secret {secret} holds no PEM certificate")]
    NoCertificate { secret: String, key: &'static str },
    #[error("key tls.key of Secret {secret} holds no PEM private key")]
    NoKey { secret: String },
    #[error("the certificates of Secret {secret} cannot be used: {message}")]
    Unusable { secret: String, message: String },
}

/// The HTTPS settings for one server, and a digest of what they were made from
/// (clients are shared by digest; a rotated Secret makes a new one).
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub digest: [u8; 32],
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("digest", &hex::encode(self.digest))
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

/// Secret data by Secret name, then key.
pub type SecretData<'a> = &'a dyn Fn(&str) -> Option<&'a BTreeMap<String, Vec<u8>>>;

/// The HTTPS settings for a server with `tls`, from the Secrets' data; `current`
/// when it was made from the same data (nothing is parsed or built again).
pub fn client_tls(
    tls: &ApiTls,
    secrets: SecretData<'_>,
    current: Option<&ClientTls>,
) -> Result<ClientTls, TlsSetupError> {
    let server = secrets(&tls.cert_secret).ok_or_else(|| TlsSetupError::Unread {
        secret: tls.cert_secret.clone(),
    })?;
    let own = match (tls.mutual(), &tls.operator_cert_secret) {
        (true, Some(name)) => Some((
            name,
            secrets(name).ok_or_else(|| TlsSetupError::Unread {
                secret: name.clone(),
            })?,
        )),
        // Validation requires the operator's certificate under mutual TLS; without
        // it the server refuses the handshake, which the caller reports.
        _ => None,
    };
    let mut digest = Sha256::new();
    for part in [server.get("tls.crt"), server.get("ca.crt")] {
        feed(&mut digest, part.map(Vec::as_slice));
    }
    if let Some((_, own)) = own {
        feed(&mut digest, own.get("tls.crt").map(Vec::as_slice));
        feed(&mut digest, own.get("tls.key").map(Vec::as_slice));
    }
    let digest: [u8; 32] = digest.finalize().into();
    if let Some(current) = current.filter(|c| c.digest == digest) {
        return Ok(current.clone());
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let served = certificates(&tls.cert_secret, server, "tls.crt")?;
    let ca = match server.get("ca.crt") {
        Some(pem) if !pem.is_empty() => Some(certificates(&tls.cert_secret, server, "ca.crt")?),
        _ => None,
    };
    let Some(pinned) = served.into_iter().next() else {
        return Err(TlsSetupError::NoCertificate {
            secret: tls.cert_secret.clone(),
            key: "tls.crt",
        });
    };
    let verifier = Arc::new(SecretTrust::new(
        &tls.cert_secret,
        pinned,
        ca,
        provider.clone(),
    )?);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(&tls.cert_secret, e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match own {
        Some((name, own)) => {
            let chain = certificates(name, own, "tls.crt")?;
            let key_pem = own
                .get("tls.key")
                .ok_or_else(|| TlsSetupError::MissingKey {
                    secret: name.clone(),
                    key: "tls.key",
                })?;
            let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsSetupError::NoKey {
                secret: name.clone(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| unusable(name, e))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(ClientTls {
        config: Arc::new(config),
        digest,
    })
}

fn feed(digest: &mut Sha256, part: Option<&[u8]>) {
    let part = part.unwrap_or_default();
    digest.update((part.len() as u64).to_be_bytes());
    digest.update(part);
}

fn certificates(
    secret: &str,
    data: &BTreeMap<String, Vec<u8>>,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = data.get(key).ok_or_else(|| TlsSetupError::MissingKey {
        secret: secret.to_string(),
        key,
    })?;
    // A block that does not parse is an error, not skipped: skipping the first
    // would pin the next certificate of the file (a CA) in place of the leaf.
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| unusable(secret, format!("key {key}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            secret: secret.to_string(),
            key,
        });
    }
    Ok(certs)
}

fn unusable(secret: &str, e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::Unusable {
        secret: secret.to_string(),
        message: e.to_string(),
    }
}

/// Accepts the certificate the Secret holds, or one the Secret's CA signed for
/// the name dialled. Handshake signatures are always verified.
#[derive(Debug)]
struct SecretTrust {
    /// The leaf of `tls.crt`.
    pinned: CertificateDer<'static>,
    ca: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SecretTrust {
    fn new(
        secret: &str,
        pinned: CertificateDer<'static>,
        ca: Option<Vec<CertificateDer<'static>>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsSetupError> {
        let algorithms = provider.signature_verification_algorithms;
        let ca = match ca {
            Some(certs) => {
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots.add(cert).map_err(|e| unusable(secret, e))?;
                }
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| unusable(secret, e))?,
                )
            }
            None => None,
        };
        Ok(Self {
            pinned,
            ca,
            algorithms,
        })
    }
}

impl ServerCertVerifier for SecretTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.ca {
            Some(ca) => {
                ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::issue::{Material, issue_all};

    const HOST: &str = "d-api.team.svc";

    fn material(names: &[&str]) -> Material {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        issue_all(&names, jiff::Timestamp::now()).expect("test certificates")
    }

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn api_tls() -> ApiTls {
        ApiTls {
            cert_secret: "api-tls".into(),
            client_ca_secret: None,
            operator_cert_secret: None,
        }
    }

    fn leaf(m: &Material) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(m.cert_pem.as_bytes()).expect("leaf PEM")
    }

    fn trust(served: &Material, ca: Option<&Material>) -> SecretTrust {
        let ca = ca.map(|m| {
            CertificateDer::pem_slice_iter(m.ca_cert_pem.as_bytes())
                .map(|c| c.expect("CA PEM"))
                .collect()
        });
        SecretTrust::new(
            "api-tls",
            leaf(served),
            ca,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .expect("verifier")
    }

    fn accepts(trust: &SecretTrust, presented: &Material, name: &str) -> bool {
        let name = ServerName::try_from(name.to_string()).expect("name");
        trust
            .verify_server_cert(&leaf(presented), &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn the_certificate_of_the_secret_is_trusted_as_it_is_and_no_other() {
        let served = material(&["elsewhere.example"]);
        let other = material(&[HOST]);
        let pinned = trust(&served, None);
        assert!(
            accepts(&pinned, &served, HOST),
            "exactly the Secret's certificate, whatever names it holds"
        );
        assert!(!accepts(&pinned, &other, HOST), "not another one");
    }

    #[test]
    fn with_a_ca_any_certificate_it_signed_for_the_service_name_is_trusted() {
        let served = material(&[HOST]);
        let by_ca = trust(&served, Some(&served));
        // A renewed leaf of the same CA (the pod has not rolled yet).
        let renewed = Material {
            cert_pem: crate::certs::issue::issue_leaf(
                &served.ca_cert_pem,
                &served.ca_key_pem,
                &[HOST.to_string(), "other.team.svc".to_string()],
                jiff::Timestamp::now(),
            )
            .expect("renewed leaf")
            .cert_pem,
            ..served.clone()
        };
        assert!(accepts(&by_ca, &renewed, HOST));
        assert!(
            !accepts(&by_ca, &renewed, "d-api.elsewhere.svc"),
            "the name dialled must be in the certificate"
        );
        let stranger = material(&[HOST]);
        assert!(!accepts(&by_ca, &stranger, HOST), "another CA's leaf");
    }

    #[test]
    fn missing_or_broken_material_names_the_secret_and_key() {
        let served = material(&[HOST]);
        let empty = BTreeMap::new();
        let none = |_: &str| None;
        assert_eq!(
            client_tls(&api_tls(), &none, None).map(|_| ()),
            Err(TlsSetupError::Unread {
                secret: "api-tls".into()
            })
        );
        let no_crt = secret(&[("tls.key", &served.key_pem)]);
        let data = |_: &str| Some(&no_crt);
        assert_eq!(
            client_tls(&api_tls(), &data, None).map(|_| ()),
            Err(TlsSetupError::MissingKey {
                secret: "api-tls".into(),
                key: "tls.crt"
            })
        );
        let garbage = secret(&[("tls.crt", "not PEM")]);
        let data = |_: &str| Some(&garbage);
        assert_eq!(
            client_tls(&api_tls(), &data, None).map(|_| ()),
            Err(TlsSetupError::NoCertificate {
                secret: "api-tls".into(),
                key: "tls.crt"
            })
        );
        // A block that does not parse is refused, not skipped.
        let broken = format!(
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n{}",
            served.cert_pem
        );
        let data_broken = secret(&[("tls.crt", broken.as_str())]);
        let data = |_: &str| Some(&data_broken);
        assert!(matches!(
            client_tls(&api_tls(), &data, None),
            Err(TlsSetupError::Unusable { .. })
        ));
        // Mutual TLS: the operator's own Secret is read too.
        let server = secret(&[("tls.crt", &served.cert_pem)]);
        let mutual = ApiTls {
            client_ca_secret: Some("client-ca".into()),
            operator_cert_secret: Some("operator".into()),
            ..api_tls()
        };
        let own = secret(&[("tls.crt", &served.cert_pem), ("tls.key", "nope")]);
        let data = |name: &str| match name {
            "api-tls" => Some(&server),
            "operator" => Some(&own),
            _ => Some(&empty),
        };
        assert_eq!(
            client_tls(&mutual, &data, None).map(|_| ()),
            Err(TlsSetupError::NoKey {
                secret: "operator".into()
            })
        );
    }

    #[test]
    fn the_digest_follows_every_secret_the_setting_is_made_from() {
        let served = material(&[HOST]);
        let renewed = material(&[HOST]);
        let digest = |m: &Material, with_ca: bool| {
            let mut pairs = vec![("tls.crt", m.cert_pem.as_str())];
            if with_ca {
                pairs.push(("ca.crt", m.ca_cert_pem.as_str()));
            }
            let data = secret(&pairs);
            client_tls(&api_tls(), &|_: &str| Some(&data), None)
                .expect("setting")
                .digest
        };
        assert_eq!(digest(&served, false), digest(&served, false));
        // The same data: the setting made before, not parsed and built again.
        let data = secret(&[("tls.crt", served.cert_pem.as_str())]);
        let first = client_tls(&api_tls(), &|_: &str| Some(&data), None).expect("setting");
        let again = client_tls(&api_tls(), &|_: &str| Some(&data), Some(&first)).expect("setting");
        assert!(Arc::ptr_eq(&first.config, &again.config));
        assert_ne!(digest(&served, false), digest(&renewed, false));
        assert_ne!(digest(&served, false), digest(&served, true));
    }
}
