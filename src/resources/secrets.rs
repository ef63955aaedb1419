//! Operator-managed Secrets: the JWT signing secret and the admin bootstrap
//! credentials, created only when the user references none.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use ring::rand::{SecureRandom, SystemRandom};

use crate::crd::DittoServer;
use crate::defaults::{ADMIN_PASSWORD_KEY, ADMIN_USERNAME_KEY};
use crate::effective::EffectiveSpec;

use super::labels::child_meta;
use super::{BuildError, ManagedSecretValues};

/// Random bytes behind a generated JWT secret (43 base64url characters).
const JWT_SECRET_BYTES: usize = 32;
/// Random bytes behind a generated admin password (32 base64url characters).
const ADMIN_PASSWORD_BYTES: usize = 24;

/// Fresh values for the managed Secrets. Not a builder: it reads the system RNG.
/// The reconciler calls it only when a managed Secret does not exist yet.
pub fn generate_managed_values() -> Result<ManagedSecretValues, BuildError> {
    Ok(ManagedSecretValues {
        jwt_secret: random_token(JWT_SECRET_BYTES)?,
        admin_password: random_token(ADMIN_PASSWORD_BYTES)?,
    })
}

fn random_token(bytes: usize) -> Result<String, BuildError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| BuildError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// The managed Secrets this spec calls for.
pub fn build_managed_secrets(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    values: &ManagedSecretValues,
) -> Vec<Secret> {
    let mut out = Vec::new();
    if eff.jwt.secret.managed {
        out.push(secret(
            ds,
            eff,
            &eff.jwt.secret.name,
            "jwt",
            [(eff.jwt.secret.key.as_str(), values.jwt_secret.as_str())],
        ));
    }
    if eff.admin.password.managed {
        out.push(secret(
            ds,
            eff,
            &eff.admin.password.name,
            "admin-credentials",
            [
                (ADMIN_USERNAME_KEY, eff.admin.username.as_str()),
                (ADMIN_PASSWORD_KEY, values.admin_password.as_str()),
            ],
        ));
    }
    out
}

fn secret<const N: usize>(
    ds: &DittoServer,
    eff: &EffectiveSpec,
    name: &str,
    component: &str,
    data: [(&str, &str); N],
) -> Secret {
    Secret {
        metadata: child_meta(ds, eff, name.to_string(), component),
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}
