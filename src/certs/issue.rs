//! Pure certificate issuance and rotation decisions (no I/O; "now" is always a parameter).
//!
//! The CA is long-lived and is only replaced when it cannot sign any more (missing, broken, or
//! about to expire): replacing it changes the `caBundle` the API server trusts, and every
//! replacement opens a window where the served leaf and the injected bundle disagree. The leaf
//! is short-lived and is re-issued from the stored CA whenever it is not exactly what we want.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::CertError;

/// Lifetime of the CA: long, because replacing it races `caBundle` injection.
pub const CA_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 3650);
/// Lifetime of the serving (leaf) certificate.
pub const LEAF_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 365);
/// `notBefore` is set this far in the past so that an API server whose clock is slightly
/// behind ours accepts a certificate issued a moment ago.
pub const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// A CA with less than this left is replaced (together with its leaf).
pub const CA_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// Common name of the CA (informational; clients trust it by `caBundle`, not by name).
const CA_COMMON_NAME: &str = "dittofs-operator webhook CA";

/// The DNS names by which the API server may reach `service` in `namespace`.
pub fn service_dns_names(service: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{cluster_domain}"),
    ]
}

/// A freshly issued CA and leaf, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Material {
    // Never print private keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A freshly issued leaf, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Issue a new CA and a leaf for `dns_names` signed by it.
pub fn issue_all(dns_names: &[String], now: Timestamp) -> Result<Material, CertError> {
    let ca_key = new_key()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = common_name(CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = to_offset(now - BACKDATE)?;
    let ca_not_after = now + CA_LIFETIME;
    ca_params.not_after = to_offset(ca_not_after)?;
    ca_params.serial_number = Some(random_serial()?);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(CertError::Generate)?;
    let ca_cert_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();

    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = sign_leaf(&issuer, ca_not_after, dns_names, now)?;
    Ok(Material {
        ca_cert_pem,
        ca_key_pem,
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    })
}

/// Issue a new leaf for `dns_names`, signed by the stored CA.
pub fn issue_leaf(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    dns_names: &[String],
    now: Timestamp,
) -> Result<Leaf, CertError> {
    let ca = parse_cert(ca_cert_pem.as_bytes())
        .map_err(|e| CertError::StoredCa(format!("ca.crt does not parse: {e}")))?;
    let ca_key = KeyPair::from_pem(ca_key_pem)
        .map_err(|e| CertError::StoredCa(format!("ca.key is not a usable private key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|e| CertError::StoredCa(format!("ca.crt cannot act as an issuer: {e}")))?;
    sign_leaf(&issuer, ca.not_after, dns_names, now)
}

/// A leaf valid from `now - BACKDATE` for `LEAF_LIFETIME`, never past its CA.
fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    ca_not_after: Timestamp,
    dns_names: &[String],
    now: Timestamp,
) -> Result<Leaf, CertError> {
    let key = new_key()?;
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(CertError::Generate)?;
    let common = dns_names
        .iter()
        .find(|name| name.ends_with(".svc"))
        .or(dns_names.first())
        .map_or("dittofs-operator-webhook", String::as_str);
    params.distinguished_name = common_name(common);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_offset(now - BACKDATE)?;
    params.not_after = to_offset((now + LEAF_LIFETIME).min(ca_not_after))?;
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&key, issuer)
        .map_err(CertError::Generate)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn new_key() -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertError::Generate)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// 16 random bytes, top bit cleared so the DER integer stays positive.
fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| CertError::Random)?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn to_offset(ts: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(ts.as_second())
        .map_err(|_| CertError::TimeOutOfRange(ts.to_string()))
}

/// The PEM blobs read from the Secret; `None` when a key is absent.
#[derive(Clone, Copy, Default)]
pub struct Stored<'a> {
    pub ca_cert: Option<&'a [u8]>,
    pub ca_key: Option<&'a [u8]>,
    pub cert: Option<&'a [u8]>,
    pub key: Option<&'a [u8]>,
}

/// What to do with the stored material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything is as wanted.
    Keep,
    /// The CA is fine; issue a new leaf from it.
    ReissueLeaf(LeafProblem),
    /// The CA cannot be used; issue a new CA and leaf.
    ReplaceCa(CaProblem),
}

/// Why the stored CA cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaProblem {
    Missing,
    KeyMissing,
    Unparsable(String),
    KeyUnparsable(String),
    NotACa,
    KeyMismatch,
    Expiring { not_after: Timestamp },
}

impl fmt::Display for CaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("ca.crt is missing"),
            Self::KeyMissing => f.write_str("ca.key is missing"),
            Self::Unparsable(e) => write!(f, "ca.crt does not parse: {e}"),
            Self::KeyUnparsable(e) => write!(f, "ca.key does not parse: {e}"),
            Self::NotACa => f.write_str("ca.crt is not a CA certificate"),
            Self::KeyMismatch => f.write_str("ca.key does not match ca.crt"),
            Self::Expiring { not_after } => write!(
                f,
                "the CA expires at {not_after} (less than {} days away)",
                CA_RENEW_BEFORE.as_hours() / 24
            ),
        }
    }
}

/// Why the stored leaf cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafProblem {
    Missing,
    Unparsable(String),
    KeyUnparsable(String),
    KeyMismatch,
    NotSignedByCa,
    SansDiffer {
        found: Vec<String>,
        wanted: Vec<String>,
    },
    Expiring {
        not_after: Timestamp,
    },
}

impl fmt::Display for LeafProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("tls.crt or tls.key is missing"),
            Self::Unparsable(e) => write!(f, "tls.crt does not parse: {e}"),
            Self::KeyUnparsable(e) => write!(f, "tls.key does not parse: {e}"),
            Self::KeyMismatch => f.write_str("tls.key does not match tls.crt"),
            Self::NotSignedByCa => f.write_str("tls.crt is not signed by ca.crt"),
            Self::SansDiffer { found, wanted } => write!(
                f,
                "tls.crt names [{}] but the service needs [{}]",
                found.join(", "),
                wanted.join(", ")
            ),
            Self::Expiring { not_after } => write!(
                f,
                "tls.crt expires at {not_after}, within the last third of its lifetime"
            ),
        }
    }
}

/// A new CA and leaf to replace a CA that [`decide`] rejected. When the old CA is merely
/// expiring (still valid), it stays in `ca.crt` after the new one: the `caBundle` built from
/// `ca.crt` then trusts the old leaf still being served as well as the new one, so the switch
/// does not race the server's reload of the Secret.
pub fn replace_ca(
    stored: &Stored<'_>,
    problem: &CaProblem,
    dns_names: &[String],
    now: Timestamp,
) -> Result<Material, CertError> {
    let mut material = issue_all(dns_names, now)?;
    if let (CaProblem::Expiring { not_after }, Some(old)) = (problem, stored.ca_cert)
        && *not_after > now
        && let Some(old_pem) = first_certificate_block(old)
    {
        material.ca_cert_pem.push_str(old_pem);
    }
    Ok(material)
}

/// The text of the first PEM certificate block of `pem`, with its line end.
fn first_certificate_block(pem: &[u8]) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = start + text[start..].find(END)? + END.len();
    let block = &text[start..end];
    Some(match text[end..].chars().next() {
        Some('\n') => &text[start..=end],
        _ => block,
    })
}

/// Decide whether the stored material can be kept, needs a new leaf, or needs a new CA.
pub fn decide(stored: &Stored<'_>, wanted_dns: &[String], now: Timestamp) -> Decision {
    let ca = match check_ca(stored, now) {
        Ok(ca) => ca,
        Err(problem) => return Decision::ReplaceCa(problem),
    };
    match check_leaf(stored, &ca, wanted_dns, now) {
        Ok(()) => Decision::Keep,
        Err(problem) => Decision::ReissueLeaf(problem),
    }
}

fn check_ca(stored: &Stored<'_>, now: Timestamp) -> Result<ParsedCert, CaProblem> {
    let cert_pem = stored.ca_cert.ok_or(CaProblem::Missing)?;
    let key_pem = stored.ca_key.ok_or(CaProblem::KeyMissing)?;
    let ca = parse_cert(cert_pem).map_err(CaProblem::Unparsable)?;
    let key = parse_key(key_pem).map_err(CaProblem::KeyUnparsable)?;
    if !ca.is_ca {
        return Err(CaProblem::NotACa);
    }
    if key.public_key_raw() != ca.public_key_bits.as_slice() {
        return Err(CaProblem::KeyMismatch);
    }
    if ca.not_after - CA_RENEW_BEFORE <= now {
        return Err(CaProblem::Expiring {
            not_after: ca.not_after,
        });
    }
    Ok(ca)
}

fn check_leaf(
    stored: &Stored<'_>,
    ca: &ParsedCert,
    wanted_dns: &[String],
    now: Timestamp,
) -> Result<(), LeafProblem> {
    let (Some(cert_pem), Some(key_pem)) = (stored.cert, stored.key) else {
        return Err(LeafProblem::Missing);
    };
    let leaf = parse_cert(cert_pem).map_err(LeafProblem::Unparsable)?;
    let key = parse_key(key_pem).map_err(LeafProblem::KeyUnparsable)?;
    if key.public_key_raw() != leaf.public_key_bits.as_slice() {
        return Err(LeafProblem::KeyMismatch);
    }
    if !signed_by(&leaf.der, &ca.der) {
        return Err(LeafProblem::NotSignedByCa);
    }
    let mut found = leaf.dns_sans.clone();
    let mut wanted = wanted_dns.to_vec();
    found.sort();
    wanted.sort();
    if found != wanted || leaf.has_other_sans {
        return Err(LeafProblem::SansDiffer {
            found: leaf.dns_sans,
            wanted: wanted_dns.to_vec(),
        });
    }
    // Re-issue once a third of the lifetime (or less) remains.
    let lifetime = leaf.not_after.duration_since(leaf.not_before);
    let remaining = leaf.not_after.duration_since(now);
    if lifetime <= SignedDuration::ZERO || remaining <= lifetime / 3 {
        return Err(LeafProblem::Expiring {
            not_after: leaf.not_after,
        });
    }
    Ok(())
}

/// The facts we need from a certificate, detached from the parser's borrows.
struct ParsedCert {
    der: Vec<u8>,
    not_before: Timestamp,
    not_after: Timestamp,
    is_ca: bool,
    dns_sans: Vec<String>,
    has_other_sans: bool,
    public_key_bits: Vec<u8>,
}

/// Parse the first PEM block of `pem` as an X.509 certificate.
fn parse_cert(pem: &[u8]) -> Result<ParsedCert, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM block: {e}"))?;
    if block.label != "CERTIFICATE" {
        return Err(format!(
            "PEM block is {:?}, expected CERTIFICATE",
            block.label
        ));
    }
    let der = block.contents;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let timestamp = |secs: i64| {
        Timestamp::from_second(secs).map_err(|e| format!("validity date out of range: {e}"))
    };
    let not_before = timestamp(cert.validity().not_before.timestamp())?;
    let not_after = timestamp(cert.validity().not_after.timestamp())?;
    let mut dns_sans = Vec::new();
    let mut has_other_sans = false;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => dns_sans.push((*dns).to_string()),
            _ => has_other_sans = true,
        }
    }
    let is_ca = cert.is_ca();
    let public_key_bits = cert.public_key().subject_public_key.data.to_vec();
    drop(cert);
    Ok(ParsedCert {
        der,
        not_before,
        not_after,
        is_ca,
        dns_sans,
        has_other_sans,
        public_key_bits,
    })
}

fn parse_key(pem: &[u8]) -> Result<KeyPair, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not UTF-8 text".to_string())?;
    KeyPair::from_pem(text).map_err(|e| e.to_string())
}

/// True when `leaf_der` names `ca_der`'s subject as issuer and carries its valid signature.
fn signed_by(leaf_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(leaf_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        service_dns_names("hook", "ops", "cluster.local")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn stored(m: &Material) -> Stored<'_> {
        Stored {
            ca_cert: Some(m.ca_cert_pem.as_bytes()),
            ca_key: Some(m.ca_key_pem.as_bytes()),
            cert: Some(m.cert_pem.as_bytes()),
            key: Some(m.key_pem.as_bytes()),
        }
    }

    fn issued_at(now: &str) -> Material {
        issue_all(&names(), at(now)).unwrap()
    }

    #[test]
    fn dns_names_cover_every_form_the_api_server_may_use() {
        assert_eq!(
            names(),
            [
                "hook",
                "hook.ops",
                "hook.ops.svc",
                "hook.ops.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn issued_ca_is_a_ten_year_p256_ca_backdated_five_minutes() {
        let now = at("2030-01-01T00:00:00Z");
        let m = issue_all(&names(), now).unwrap();
        let ca = parse_cert(m.ca_cert_pem.as_bytes()).unwrap();
        assert!(ca.is_ca);
        assert_eq!(ca.not_before, at("2029-12-31T23:55:00Z"));
        assert_eq!(ca.not_after, now + CA_LIFETIME);
        let key = parse_key(m.ca_key_pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(key.public_key_raw(), ca.public_key_bits.as_slice());
        assert!(m.ca_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn issued_leaf_is_a_one_year_server_cert_for_the_service_names_signed_by_the_ca() {
        let now = at("2030-01-01T00:00:00Z");
        let m = issue_all(&names(), now).unwrap();
        let ca = parse_cert(m.ca_cert_pem.as_bytes()).unwrap();
        let leaf = parse_cert(m.cert_pem.as_bytes()).unwrap();
        assert!(!leaf.is_ca);
        assert_eq!(leaf.dns_sans, names());
        assert!(!leaf.has_other_sans);
        assert_eq!(leaf.not_before, now - BACKDATE);
        assert_eq!(leaf.not_after, now + LEAF_LIFETIME);
        assert!(signed_by(&leaf.der, &ca.der));
        let key = parse_key(m.key_pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(key.public_key_raw(), leaf.public_key_bits.as_slice());
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
    }

    #[test]
    fn two_issuances_never_share_keys_or_serials() {
        let a = issued_at("2030-01-01T00:00:00Z");
        let b = issued_at("2030-01-01T00:00:00Z");
        assert_ne!(a.ca_key_pem, b.ca_key_pem);
        assert_ne!(a.key_pem, b.key_pem);
        let serial = |pem: &str| {
            let der = parse_cert(pem.as_bytes()).unwrap().der;
            let (_, c) = X509Certificate::from_der(&der).unwrap();
            c.raw_serial().to_vec()
        };
        assert_ne!(serial(&a.cert_pem), serial(&b.cert_pem));
        assert_ne!(serial(&a.ca_cert_pem), serial(&b.ca_cert_pem));
    }

    #[test]
    fn fresh_material_is_kept() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let decision = decide(&stored(&m), &names(), at("2030-06-01T00:00:00Z"));
        assert_eq!(decision, Decision::Keep);
    }

    #[test]
    fn san_order_does_not_matter() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let mut reversed = names();
        reversed.reverse();
        assert_eq!(
            decide(&stored(&m), &reversed, at("2030-01-02T00:00:00Z")),
            Decision::Keep
        );
    }

    #[test]
    fn leaf_is_reissued_once_a_third_of_its_life_remains() {
        let issued = at("2030-01-01T00:00:00Z");
        let m = issue_all(&names(), issued).unwrap();
        let not_after = issued + LEAF_LIFETIME;
        let lifetime = LEAF_LIFETIME + BACKDATE;
        let threshold = not_after - lifetime / 3;
        let just_before = threshold - SignedDuration::from_secs(1);
        assert_eq!(decide(&stored(&m), &names(), just_before), Decision::Keep);
        assert_eq!(
            decide(&stored(&m), &names(), threshold),
            Decision::ReissueLeaf(LeafProblem::Expiring { not_after })
        );
        // Long expired: still only the leaf, the CA is fine.
        assert_eq!(
            decide(
                &stored(&m),
                &names(),
                not_after + SignedDuration::from_hours(1)
            ),
            Decision::ReissueLeaf(LeafProblem::Expiring { not_after })
        );
    }

    #[test]
    fn leaf_with_other_names_is_reissued() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let wanted = service_dns_names("hook", "other-ns", "cluster.local");
        match decide(&stored(&m), &wanted, at("2030-01-02T00:00:00Z")) {
            Decision::ReissueLeaf(LeafProblem::SansDiffer { found, wanted: w }) => {
                assert_eq!(found, names());
                assert_eq!(w, wanted);
            }
            other => panic!("unexpected decision {other:?}"),
        }
        let mut fewer = names();
        fewer.pop();
        assert!(matches!(
            decide(&stored(&m), &fewer, at("2030-01-02T00:00:00Z")),
            Decision::ReissueLeaf(LeafProblem::SansDiffer { .. })
        ));
    }

    #[test]
    fn leaf_from_another_ca_is_reissued_and_the_stored_ca_kept() {
        let ours = issued_at("2030-01-01T00:00:00Z");
        let theirs = issued_at("2030-01-01T00:00:00Z");
        let mixed = Stored {
            cert: Some(theirs.cert_pem.as_bytes()),
            key: Some(theirs.key_pem.as_bytes()),
            ..stored(&ours)
        };
        assert_eq!(
            decide(&mixed, &names(), at("2030-01-02T00:00:00Z")),
            Decision::ReissueLeaf(LeafProblem::NotSignedByCa)
        );
    }

    #[test]
    fn leaf_with_the_wrong_key_is_reissued() {
        let a = issued_at("2030-01-01T00:00:00Z");
        let b = issued_at("2030-01-01T00:00:00Z");
        let mixed = Stored {
            key: Some(b.key_pem.as_bytes()),
            ..stored(&a)
        };
        assert_eq!(
            decide(&mixed, &names(), at("2030-01-02T00:00:00Z")),
            Decision::ReissueLeaf(LeafProblem::KeyMismatch)
        );
    }

    #[test]
    fn unparsable_or_missing_leaf_is_reissued() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let now = at("2030-01-02T00:00:00Z");
        let garbage = Stored {
            cert: Some(b"not a certificate"),
            ..stored(&m)
        };
        assert!(matches!(
            decide(&garbage, &names(), now),
            Decision::ReissueLeaf(LeafProblem::Unparsable(_))
        ));
        let key_as_cert = Stored {
            cert: Some(m.key_pem.as_bytes()),
            ..stored(&m)
        };
        assert!(matches!(
            decide(&key_as_cert, &names(), now),
            Decision::ReissueLeaf(LeafProblem::Unparsable(_))
        ));
        let bad_key = Stored {
            key: Some(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            ..stored(&m)
        };
        assert!(matches!(
            decide(&bad_key, &names(), now),
            Decision::ReissueLeaf(LeafProblem::KeyUnparsable(_))
        ));
        let no_leaf = Stored {
            cert: None,
            ..stored(&m)
        };
        assert_eq!(
            decide(&no_leaf, &names(), now),
            Decision::ReissueLeaf(LeafProblem::Missing)
        );
    }

    #[test]
    fn a_valid_ca_is_never_replaced_because_of_its_leaf() {
        // Every leaf problem above leads to ReissueLeaf, never ReplaceCa; here the worst case:
        // a leaf that is garbage, expired, and for other names at once.
        let m = issued_at("2030-01-01T00:00:00Z");
        let broken = Stored {
            cert: Some(b"garbage"),
            key: Some(b"garbage"),
            ..stored(&m)
        };
        assert!(matches!(
            decide(&broken, &[], at("2035-01-01T00:00:00Z")),
            Decision::ReissueLeaf(_)
        ));
    }

    #[test]
    fn broken_or_missing_ca_is_replaced() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let other = issued_at("2030-01-01T00:00:00Z");
        let now = at("2030-01-02T00:00:00Z");
        type Case<'a> = (Stored<'a>, fn(&CaProblem) -> bool);
        let cases: Vec<Case<'_>> = vec![
            (Stored::default(), |p| *p == CaProblem::Missing),
            (
                Stored {
                    ca_key: None,
                    ..stored(&m)
                },
                |p| *p == CaProblem::KeyMissing,
            ),
            (
                Stored {
                    ca_cert: Some(b"junk"),
                    ..stored(&m)
                },
                |p| matches!(p, CaProblem::Unparsable(_)),
            ),
            (
                Stored {
                    ca_key: Some(b"junk"),
                    ..stored(&m)
                },
                |p| matches!(p, CaProblem::KeyUnparsable(_)),
            ),
            (
                Stored {
                    ca_key: Some(other.ca_key_pem.as_bytes()),
                    ..stored(&m)
                },
                |p| *p == CaProblem::KeyMismatch,
            ),
            (
                // The leaf in the CA's place: parses, matches its key, but is no CA.
                Stored {
                    ca_cert: Some(m.cert_pem.as_bytes()),
                    ca_key: Some(m.key_pem.as_bytes()),
                    ..stored(&m)
                },
                |p| *p == CaProblem::NotACa,
            ),
        ];
        for (i, (s, expected)) in cases.iter().enumerate() {
            match decide(s, &names(), now) {
                Decision::ReplaceCa(p) => assert!(expected(&p), "case {i}: got {p:?}"),
                other => panic!("case {i}: unexpected decision {other:?}"),
            }
        }
    }

    #[test]
    fn ca_close_to_expiry_is_replaced() {
        let issued = at("2030-01-01T00:00:00Z");
        let m = issue_all(&names(), issued).unwrap();
        let not_after = issued + CA_LIFETIME;
        let renew_at = not_after - CA_RENEW_BEFORE;
        assert!(matches!(
            decide(
                &stored(&m),
                &names(),
                renew_at - SignedDuration::from_secs(1)
            ),
            Decision::ReissueLeaf(LeafProblem::Expiring { .. })
        ));
        assert_eq!(
            decide(&stored(&m), &names(), renew_at),
            Decision::ReplaceCa(CaProblem::Expiring { not_after })
        );
    }

    fn certificate_blocks(pem: &str) -> usize {
        pem.matches("-----BEGIN CERTIFICATE-----").count()
    }

    #[test]
    fn an_expiring_ca_is_replaced_with_the_old_one_kept_in_the_bundle() {
        let issued = at("2030-01-01T00:00:00Z");
        let old = issue_all(&names(), issued).unwrap();
        let now = issued + CA_LIFETIME - CA_RENEW_BEFORE;
        let Decision::ReplaceCa(problem) = decide(&stored(&old), &names(), now) else {
            panic!("the CA should be due for replacement");
        };
        let new = replace_ca(&stored(&old), &problem, &names(), now).unwrap();
        assert_eq!(certificate_blocks(&new.ca_cert_pem), 2);
        assert!(new.ca_cert_pem.ends_with(&old.ca_cert_pem));
        assert_ne!(new.ca_key_pem, old.ca_key_pem);
        // The first block is the new CA: it signs the new leaf and is kept from now on.
        assert_eq!(decide(&stored(&new), &names(), now), Decision::Keep);
        let first = parse_cert(new.ca_cert_pem.as_bytes()).unwrap();
        assert_eq!(first.not_after, now + CA_LIFETIME);

        // Ten years on, only the immediately previous CA is carried: the bundle stays small.
        let later = now + CA_LIFETIME - CA_RENEW_BEFORE;
        let Decision::ReplaceCa(problem) = decide(&stored(&new), &names(), later) else {
            panic!("the CA should be due for replacement");
        };
        let newer = replace_ca(&stored(&new), &problem, &names(), later).unwrap();
        assert_eq!(certificate_blocks(&newer.ca_cert_pem), 2);
        assert!(
            newer
                .ca_cert_pem
                .contains(&new.ca_cert_pem[..first_block_len(&new)])
        );
        assert!(!newer.ca_cert_pem.contains(&old.ca_cert_pem));
    }

    fn first_block_len(m: &Material) -> usize {
        first_certificate_block(m.ca_cert_pem.as_bytes())
            .unwrap()
            .len()
    }

    #[test]
    fn a_broken_or_expired_ca_is_not_carried_into_the_bundle() {
        let issued = at("2030-01-01T00:00:00Z");
        let old = issue_all(&names(), issued).unwrap();
        let other = issue_all(&names(), issued).unwrap();
        let mismatched = Stored {
            ca_key: Some(other.ca_key_pem.as_bytes()),
            ..stored(&old)
        };
        let new = replace_ca(&mismatched, &CaProblem::KeyMismatch, &names(), issued).unwrap();
        assert_eq!(certificate_blocks(&new.ca_cert_pem), 1);

        let expired_at = issued + CA_LIFETIME + SignedDuration::from_hours(1);
        let Decision::ReplaceCa(problem) = decide(&stored(&old), &names(), expired_at) else {
            panic!("an expired CA must be replaced");
        };
        let new = replace_ca(&stored(&old), &problem, &names(), expired_at).unwrap();
        assert_eq!(certificate_blocks(&new.ca_cert_pem), 1);
    }

    #[test]
    fn reissued_leaf_chains_to_the_stored_ca_and_is_kept() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let later = at("2030-10-01T00:00:00Z");
        assert!(matches!(
            decide(&stored(&m), &names(), later),
            Decision::ReissueLeaf(LeafProblem::Expiring { .. })
        ));
        let leaf = issue_leaf(&m.ca_cert_pem, &m.ca_key_pem, &names(), later).unwrap();
        let renewed = Stored {
            cert: Some(leaf.cert_pem.as_bytes()),
            key: Some(leaf.key_pem.as_bytes()),
            ..stored(&m)
        };
        assert_eq!(decide(&renewed, &names(), later), Decision::Keep);
        let parsed = parse_cert(leaf.cert_pem.as_bytes()).unwrap();
        assert_eq!(parsed.not_after, later + LEAF_LIFETIME);
    }

    #[test]
    fn leaf_never_outlives_its_ca() {
        let issued = at("2030-01-01T00:00:00Z");
        let m = issue_all(&names(), issued).unwrap();
        let ca_not_after = issued + CA_LIFETIME;
        let late = ca_not_after - SignedDuration::from_hours(24 * 100);
        let leaf = issue_leaf(&m.ca_cert_pem, &m.ca_key_pem, &names(), late).unwrap();
        assert_eq!(
            parse_cert(leaf.cert_pem.as_bytes()).unwrap().not_after,
            ca_not_after
        );
    }

    #[test]
    fn issuing_from_a_broken_ca_is_an_error_naming_it() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let err =
            issue_leaf("junk", &m.ca_key_pem, &names(), at("2030-01-02T00:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        let err =
            issue_leaf(&m.ca_cert_pem, "junk", &names(), at("2030-01-02T00:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_private_keys() {
        let m = issued_at("2030-01-01T00:00:00Z");
        let text = format!("{m:?}");
        assert!(!text.contains("PRIVATE KEY"));
        assert!(text.contains("CERTIFICATE"));
    }
}
