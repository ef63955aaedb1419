//! Operator-managed Secrets: the JWT signing secret and the admin bootstrap
//! credentials (created only when the user references none), and the operator's
//! DittoFS account.
//!
//! They are credentials to data that outlives the DittoServer (the control-plane
//! database and its users are on a retained volume), so they are retained like the
//! volumes: no owner reference, so deleting the DittoServer leaves them, and a
//! DittoServer of the same name adopts them again by their labels. Their values are
//! never regenerated while they exist.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use ring::rand::{SecureRandom, SystemRandom};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::defaults::{
    ACCOUNT_PASSWORD_KEY, ACCOUNT_REFRESH_OBTAINED_KEY, ACCOUNT_REFRESH_TOKEN_KEY,
    ACCOUNT_USERNAME_KEY, ADMIN_PASSWORD_KEY, ADMIN_USERNAME_KEY,
};
use crate::dittofs::account;
use crate::effective::EffectiveSpec;
use crate::names;

use super::labels::labels;
use super::{AccountValues, BuildError, ManagedSecretValues};

/// Random bytes behind a generated JWT secret (43 base64url characters).
const JWT_SECRET_BYTES: usize = 32;
/// Random bytes behind a generated password (32 base64url characters; DittoFS
/// takes 8 to 72 bytes, `models/credential.go`).
const PASSWORD_BYTES: usize = 24;

/// Fresh values for the managed Secrets. Not a builder: it reads the system RNG.
/// The reconciler calls it only when a managed Secret does not exist yet.
pub fn generate_managed_values() -> Result<ManagedSecretValues, BuildError> {
    Ok(ManagedSecretValues {
        jwt_secret: random_token(JWT_SECRET_BYTES)?,
        admin_password: random_token(PASSWORD_BYTES)?,
        account_password: random_token(PASSWORD_BYTES)?,
    })
}

fn random_token(bytes: usize) -> Result<String, BuildError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| BuildError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// The managed Secrets the pod reads that this spec calls for.
pub fn build_managed_secrets(eff: &EffectiveSpec, values: &ManagedSecretValues) -> Vec<Secret> {
    let mut out = Vec::new();
    if eff.jwt.secret.managed {
        out.push(secret(
            eff,
            &eff.jwt.secret.name,
            "jwt",
            [(eff.jwt.secret.key.as_str(), values.jwt_secret.as_str())],
        ));
    }
    if eff.admin.password.managed {
        out.push(secret(
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

/// The operator's account Secret: the account's name and password, and the refresh
/// token kept for it. The pod does not read it.
pub fn build_account_secret(
    eff: &EffectiveSpec,
    values: &ManagedSecretValues,
    account: &AccountValues,
) -> Secret {
    let mut data = vec![
        (ACCOUNT_USERNAME_KEY, account::USERNAME),
        (ACCOUNT_PASSWORD_KEY, values.account_password.as_str()),
    ];
    if let Some((token, obtained)) = &account.refresh {
        data.push((ACCOUNT_REFRESH_TOKEN_KEY, token));
        data.push((ACCOUNT_REFRESH_OBTAINED_KEY, obtained));
    }
    secret(
        eff,
        &names::account_secret(&eff.name),
        "operator-account",
        data,
    )
}

fn secret<'a>(
    eff: &EffectiveSpec,
    name: &str,
    component: &str,
    data: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Secret {
    Secret {
        // Retained: labels, no owner reference (see the module comment).
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(eff.namespace.clone()),
            labels: Some(labels(&eff.name, component)),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}
