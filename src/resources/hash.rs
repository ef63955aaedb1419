//! The config hash (SPEC R2.2): SHA-256 over everything a running pod depends on
//! that does not already change its template — the config file and the Secret
//! data it reads — plus the pod template itself. Service-only fields are not in
//! the pod template, so editing them never restarts the server.

use sha2::{Digest, Sha256};

use super::SecretData;

/// Feed `bytes` with a length prefix, so no two inputs can run together.
fn framed(h: &mut Sha256, tag: &str, bytes: &[u8]) {
    h.update(tag.as_bytes());
    h.update(b":");
    h.update(bytes.len().to_string().as_bytes());
    h.update(b":");
    h.update(bytes);
}

/// Hex SHA-256 of `config_yaml`, every Secret (sorted by name, then key; both are
/// `BTreeMap`s) and the canonical JSON of the pod template without the hash.
pub fn config_hash(config_yaml: &str, secrets: &SecretData, pod_template_json: &[u8]) -> String {
    let mut h = Sha256::new();
    framed(&mut h, "config", config_yaml.as_bytes());
    for (name, data) in secrets {
        framed(&mut h, "secret", name.as_bytes());
        for (key, value) in data {
            framed(&mut h, "key", key.as_bytes());
            framed(&mut h, "value", value);
        }
    }
    framed(&mut h, "pod", pod_template_json);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn secrets(pairs: &[(&str, &str, &str)]) -> SecretData {
        let mut out: SecretData = BTreeMap::new();
        for (n, k, v) in pairs {
            out.entry(n.to_string())
                .or_default()
                .insert(k.to_string(), v.as_bytes().to_vec());
        }
        out
    }

    #[test]
    fn framing_keeps_inputs_apart() {
        let a = config_hash("", &secrets(&[("s", "ab", "c")]), b"{}");
        let b = config_hash("", &secrets(&[("s", "a", "bc")]), b"{}");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn every_input_counts() {
        let base = config_hash("x", &secrets(&[("s", "k", "v")]), b"{}");
        assert_ne!(base, config_hash("y", &secrets(&[("s", "k", "v")]), b"{}"));
        assert_ne!(base, config_hash("x", &secrets(&[("s", "k", "w")]), b"{}"));
        assert_ne!(base, config_hash("x", &secrets(&[("s", "k", "v")]), b"{ }"));
        assert_eq!(base, config_hash("x", &secrets(&[("s", "k", "v")]), b"{}"));
    }
}
