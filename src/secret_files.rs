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

/// The LDAP server's CA bundle (`ldap.tls.ca_cert_file`).
pub const LDAP_CA: SecretFile = SecretFile {
    volume: "ldap-ca",
    dir: "/ldap-ca",
    file: "ca.crt",
};
/// The service keytab (`kerberos.keytab_path`): the Go operator's path, so a
/// server it started finds its keytab where it was.
pub const KEYTAB: SecretFile = SecretFile {
    volume: "kerberos-keytab",
    dir: "/kerberos",
    file: "dittofs.keytab",
};
/// The krb5.conf (`kerberos.krb5_conf`).
pub const KRB5_CONF: SecretFile = SecretFile {
    volume: "kerberos-krb5",
    dir: "/kerberos-krb5",
    file: "krb5.conf",
};
/// Keytabs are readable by the pod's user and group only.
const KEYTAB_MODE: i32 = 0o440;

/// One Secret volume: the Secret, and each key with the file it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    pub volume: &'static str,
    pub dir: &'static str,
    pub secret: String,
    /// (key in the Secret, file name under `dir`)
    pub items: Vec<(String, &'static str)>,
    /// The files' mode; `None`: the volume's default.
    pub mode: Option<i32>,
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
    if let Some(ca) = eff.ldap.as_ref().and_then(|l| l.ca_cert.as_ref()) {
        mounts.push(mount(LDAP_CA, &ca.name, vec![(ca.key.clone(), LDAP_CA)]));
    }
    if let Some(kerberos) = &eff.kerberos {
        let keytab = &kerberos.keytab;
        mounts.push(SecretMount {
            mode: Some(KEYTAB_MODE),
            ..mount(KEYTAB, &keytab.name, vec![(keytab.key.clone(), KEYTAB)])
        });
        if let Some(conf) = &kerberos.krb5_conf {
            mounts.push(mount(
                KRB5_CONF,
                &conf.name,
                vec![(conf.key.clone(), KRB5_CONF)],
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
        mode: None,
    }
}
