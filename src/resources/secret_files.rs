//! The Secrets the server reads as files: which key lands in which file, in one
//! place for the pod's volumes, its mounts and the paths `config.yaml` names.

use crate::effective::EffectiveSpec;

/// A file in the pod, from one key of a Secret volume mounted at `dir`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretFile {
    pub volume: &'static str,
    pub dir: &'static str,
    pub file: &'static str,
}

impl SecretFile {
    /// The path the server is given.
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.file)
    }
}

/// The metrics bearer token (`metrics.token_file`).
pub const METRICS_TOKEN: SecretFile = SecretFile {
    volume: "metrics-token",
    dir: "/metrics-token",
    file: "token",
};
/// The REST API's certificate and key (`controlplane.tls.cert_file`, `key_file`).
pub const API_CERT: SecretFile = SecretFile {
    volume: "api-tls",
    dir: "/tls",
    file: "tls.crt",
};
pub const API_KEY: SecretFile = SecretFile {
    volume: "api-tls",
    dir: "/tls",
    file: "tls.key",
};
/// The CA client certificates must be signed by (`controlplane.tls.client_ca`).
pub const API_CLIENT_CA: SecretFile = SecretFile {
    volume: "api-client-ca",
    dir: "/tls-client-ca",
    file: "ca.crt",
};

/// One Secret volume: the Secret, and each key with the file it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    pub volume: &'static str,
    pub dir: &'static str,
    pub secret: String,
    /// (key in the Secret, file name under `dir`)
    pub items: Vec<(String, &'static str)>,
}

/// Every Secret volume of the server pod. Only the keys the server reads are
/// projected, so nothing else in those Secrets reaches the pod.
pub fn secret_mounts(eff: &EffectiveSpec) -> Vec<SecretMount> {
    let mut mounts = Vec::new();
    if let Some(token) = eff.metrics.as_ref().and_then(|m| m.token.as_ref()) {
        mounts.push(mount(
            METRICS_TOKEN,
            &token.name,
            vec![(token.key.clone(), METRICS_TOKEN)],
        ));
    }
    if let Some(tls) = &eff.api_tls {
        mounts.push(mount(
            API_CERT,
            &tls.cert_secret,
            vec![
                ("tls.crt".to_string(), API_CERT),
                ("tls.key".to_string(), API_KEY),
            ],
        ));
        if let Some(ca) = &tls.client_ca_secret {
            mounts.push(mount(
                API_CLIENT_CA,
                ca,
                vec![("ca.crt".to_string(), API_CLIENT_CA)],
            ));
        }
    }
    mounts
}

fn mount(at: SecretFile, secret: &str, items: Vec<(String, SecretFile)>) -> SecretMount {
    SecretMount {
        volume: at.volume,
        dir: at.dir,
        secret: secret.to_string(),
        items: items.into_iter().map(|(key, f)| (key, f.file)).collect(),
    }
}
