//! The identity providers (LDAP, Kerberos) in the server's database.
//!
//! DittoFS v0.29 reads `ldap` and `kerberos` from its config file only to seed its
//! database at the first start; from then on the database row wins
//! (`resolveIdentityProviders`, `cmd/dfs/commands/start.go`). So the spec reaches
//! the server through `PUT /api/v1/identity-providers/{type}/config`: written when
//! a setting differs from the row (compared with the server's defaults applied),
//! or when the password Secret moved on since the server was last given it (the
//! row's password reads back redacted). A provider the spec never enabled is left
//! alone; one the operator enabled and the spec dropped is turned off.

use sha2::{Digest, Sha256};

use crate::crd::{IdentityProviderStatus, ItemState};
use crate::dittofs::Sensitive;
use crate::dittofs::api::{KerberosConfig, KerberosMachineAccount, LdapConfig, LdapTls};
use crate::effective::{EffectiveSpec, Kerberos, Ldap, SecretKey};
use crate::resources::configmap::{keytab_path, krb5_conf_path, ldap_ca_path};

use super::{Known, Live, Plan, Step};

pub const LDAP: &str = "ldap";
pub const KERBEROS: &str = "kerberos";

/// Plan both providers. `live` holds them only when they were read.
pub(super) fn identity(eff: &EffectiveSpec, live: &Live, known: &Known<'_>, plan: &mut Plan) {
    if let Some(row) = &live.ldap {
        ldap(eff.ldap.as_ref(), row.as_ref(), known, plan);
    }
    if let Some(row) = &live.kerberos {
        kerberos(eff.kerberos.as_ref(), row.as_ref(), known, plan);
    }
}

fn last<'a>(known: &Known<'a>, kind: &str) -> Option<&'a IdentityProviderStatus> {
    known.identity.iter().find(|p| p.provider_type == kind)
}

fn status(kind: &str, enabled: bool) -> IdentityProviderStatus {
    IdentityProviderStatus {
        provider_type: kind.to_string(),
        enabled,
        state: ItemState::Ready,
        ..Default::default()
    }
}

/// The password in `key`, or what the plan waits for.
fn password(key: &SecretKey, known: &Known<'_>) -> Result<Sensitive, String> {
    let data = known
        .secrets
        .get(&key.name)
        .ok_or_else(|| format!("waiting for Secret {}", key.name))?;
    let value = data
        .get(&key.key)
        .ok_or_else(|| format!("Secret {} has no key {}", key.name, key.key))?;
    Ok(Sensitive::new(String::from_utf8_lossy(value).into_owned()))
}

/// What to do about a provider the spec does not enable: turn off one the operator
/// enabled; forget one someone enabled again after that (theirs now); list one it
/// never had.
fn undeclared(
    kind: &str,
    enabled_live: bool,
    known: &Known<'_>,
    plan: &mut Plan,
) -> Option<IdentityProviderStatus> {
    match last(known, kind) {
        Some(last) if last.enabled && enabled_live => {
            let mut s = status(kind, false);
            s.message = Some("turned off: the spec no longer enables it".into());
            s.written_digest = last.written_digest.clone();
            Some(s)
        }
        Some(last) if !enabled_live => Some(IdentityProviderStatus {
            enabled: false,
            ..last.clone()
        }),
        _ => {
            if enabled_live {
                plan.unmanaged.push(format!("identity provider {kind}"));
            }
            None
        }
    }
}

fn ldap(want: Option<&Ldap>, row: Option<&LdapConfig>, known: &Known<'_>, plan: &mut Plan) {
    let enabled_live = row.is_some_and(|r| r.enabled);
    let Some(want) = want else {
        let entry = undeclared(LDAP, enabled_live, known, plan);
        if let (Some(entry), Some(row)) = (&entry, row)
            && !entry.enabled
            && enabled_live
        {
            // The row as stored, turned off; an empty password keeps the stored one.
            plan.steps.push(Step::PutLdap(LdapConfig {
                enabled: false,
                bind_password: Sensitive::default(),
                ..row.clone()
            }));
        }
        plan.identity_providers.extend(entry);
        return;
    };
    let last = last(known, LDAP).filter(|l| l.enabled);
    let current = known.versions.get(&want.bind_password.name).cloned();
    let mut entry = status(LDAP, true);
    entry.secret_version = last.and_then(|l| l.secret_version.clone());
    let password = match password(&want.bind_password, known) {
        Ok(password) => password,
        Err(waiting) => {
            entry.state = ItemState::Pending;
            entry.message = Some(waiting);
            plan.identity_providers.push(entry);
            return;
        }
    };
    let desired = desired_ldap(want, row);
    let differences = row.map_or_else(
        || vec!["not configured".to_string()],
        |row| ldap_differences(&desired, row),
    );
    if !differences.is_empty() || entry.secret_version != current {
        plan.steps.push(Step::PutLdap(LdapConfig {
            bind_password: password,
            ..desired
        }));
        entry.secret_version = current;
    }
    plan.identity_providers.push(entry);
}

/// The row the spec asks for. What the spec has no field for (timeout, group
/// limit, client certificate, TLS version) stays as the server holds it.
fn desired_ldap(want: &Ldap, row: Option<&LdapConfig>) -> LdapConfig {
    let kept = row.cloned().unwrap_or_default();
    LdapConfig {
        enabled: true,
        url: want.url.clone(),
        start_tls: want.start_tls,
        allow_plaintext: want.allow_plaintext,
        base_dn: want.base_dn.clone(),
        bind_dn: want.bind_dn.clone(),
        bind_password: Sensitive::default(),
        user_attr: want.user_attr.clone(),
        realm: want.realm.clone(),
        idmap: want.idmap.as_str().to_string(),
        nested_groups: want.nested_groups,
        timeout: kept.timeout,
        max_group_results: kept.max_group_results,
        tls: LdapTls {
            ca_cert_file: want
                .ca_cert
                .as_ref()
                .map(|_| ldap_ca_path())
                .unwrap_or_default(),
            insecure_skip_verify: want.insecure_skip_verify,
            ..kept.tls
        },
    }
}

/// What differs between the wanted row and the stored one, field by field. The
/// server applies its defaults before it stores a row (`ApplyDefaults`,
/// `pkg/identity/ldap/config.go`); an empty user attribute or idmap there means
/// the default.
fn ldap_differences(want: &LdapConfig, row: &LdapConfig) -> Vec<String> {
    let or = |v: &str, default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.to_string()
        }
    };
    let mut out = Vec::new();
    let mut check = |name: &str, differ: bool| {
        if differ {
            out.push(name.to_string());
        }
    };
    check("enabled", want.enabled != row.enabled);
    check("url", want.url != row.url);
    check("start_tls", want.start_tls != row.start_tls);
    check(
        "allow_plaintext",
        want.allow_plaintext != row.allow_plaintext,
    );
    check("base_dn", want.base_dn != row.base_dn);
    check("bind_dn", want.bind_dn != row.bind_dn);
    check("bind_password", row.bind_password.is_empty());
    check(
        "user_attr",
        want.user_attr != or(&row.user_attr, crate::defaults::DEFAULT_LDAP_USER_ATTR),
    );
    check("realm", want.realm != row.realm);
    check(
        "idmap",
        want.idmap != or(&row.idmap, crate::defaults::DEFAULT_LDAP_IDMAP.as_str()),
    );
    check("nested_groups", want.nested_groups != row.nested_groups);
    check(
        "tls.ca_cert_file",
        want.tls.ca_cert_file != row.tls.ca_cert_file,
    );
    check(
        "tls.insecure_skip_verify",
        want.tls.insecure_skip_verify != row.tls.insecure_skip_verify,
    );
    out
}

fn kerberos(
    want: Option<&Kerberos>,
    row: Option<&KerberosConfig>,
    known: &Known<'_>,
    plan: &mut Plan,
) {
    let enabled_live = row.is_some_and(|r| r.enabled);
    let Some(want) = want else {
        let entry = undeclared(KERBEROS, enabled_live, known, plan);
        let entry = match (entry, row) {
            (Some(mut entry), Some(row)) if !entry.enabled && enabled_live => {
                let off = KerberosConfig {
                    enabled: false,
                    machine_account: KerberosMachineAccount {
                        secret: Sensitive::default(),
                        ..row.machine_account.clone()
                    },
                    ..row.clone()
                };
                if known.pod_current {
                    entry.written_digest = Some(digest(&off));
                    plan.steps.push(Step::PutKerberos(off));
                } else {
                    entry.state = ItemState::Pending;
                    entry.message = Some(RESTARTING.into());
                    entry.enabled = true;
                }
                Some(entry)
            }
            (entry, _) => entry,
        };
        plan.identity_providers.extend(entry);
        return;
    };
    let last = last(known, KERBEROS);
    let mut entry = status(KERBEROS, true);
    entry.written_digest = last.and_then(|l| l.written_digest.clone());
    entry.secret_version = last
        .filter(|l| l.enabled)
        .and_then(|l| l.secret_version.clone());
    let secret = match &want.machine_account {
        Some(machine) => match password(&machine.secret, known) {
            Ok(secret) => Some((secret, known.versions.get(&machine.secret.name).cloned())),
            Err(waiting) => {
                entry.state = ItemState::Pending;
                entry.message = Some(waiting);
                plan.identity_providers.push(entry);
                return;
            }
        },
        None => None,
    };
    let desired = desired_kerberos(want, row);
    let differences = row.map_or_else(
        || vec!["not configured".to_string()],
        |row| kerberos_differences(&desired, row),
    );
    let current = secret.as_ref().and_then(|(_, v)| v.clone());
    let rotated = secret.is_some() && entry.secret_version != current;
    if differences.is_empty() && !rotated {
        plan.identity_providers.push(entry);
        return;
    }
    if !known.pod_current {
        // A restart is under way: the settings are written once it is done, and
        // the pod restarts for them then (once, not twice).
        entry.state = ItemState::Pending;
        entry.message = Some(RESTARTING.into());
        plan.identity_providers.push(entry);
        return;
    }
    let mut body = desired;
    if let Some((secret, version)) = secret {
        body.machine_account.secret = secret;
        entry.secret_version = version;
    }
    if !differences.is_empty() {
        // A new secret alone needs no restart: the SMB adapter reloads the
        // machine credential (`PutConfig`, `identity_providers.go`).
        entry.written_digest = Some(digest(&body));
    }
    plan.steps.push(Step::PutKerberos(body));
    plan.identity_providers.push(entry);
}

/// The message of a Kerberos write that waits for a restart under way.
pub const RESTARTING: &str =
    "waiting for the pod to run the current template before writing the Kerberos settings";

/// The row the spec asks for: the realm and DNS domain the server would derive
/// filled in (the API stores a row as sent, `putKerberos`). Ticket lifetimes and
/// limits, which the spec has no field for, stay as the server holds them.
fn desired_kerberos(want: &Kerberos, row: Option<&KerberosConfig>) -> KerberosConfig {
    let kept = row.cloned().unwrap_or_default();
    KerberosConfig {
        enabled: true,
        keytab_path: keytab_path(),
        service_principal: want.service_principal.clone(),
        realm: want.realm.clone(),
        netbios_domain: want.netbios_domain.clone(),
        dns_domain: want.dns_domain.clone(),
        krb5_conf: want
            .krb5_conf
            .as_ref()
            .map(|_| krb5_conf_path())
            .unwrap_or_default(),
        max_clock_skew: kept.max_clock_skew,
        context_ttl: kept.context_ttl,
        max_contexts: kept.max_contexts,
        machine_account: want
            .machine_account
            .as_ref()
            .map(|m| KerberosMachineAccount {
                enabled: true,
                account_name: m.account_name.clone(),
                keytab_path: String::new(),
                dc_address: m.dc_addresses.clone(),
                secret: Sensitive::default(),
            })
            .unwrap_or_default(),
    }
}

fn kerberos_differences(want: &KerberosConfig, row: &KerberosConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differ: bool| {
        if differ {
            out.push(name.to_string());
        }
    };
    let (w, r) = (&want.machine_account, &row.machine_account);
    check("enabled", want.enabled != row.enabled);
    check("keytab_path", want.keytab_path != row.keytab_path);
    check(
        "service_principal",
        want.service_principal != row.service_principal,
    );
    check("realm", want.realm != row.realm);
    check("netbios_domain", want.netbios_domain != row.netbios_domain);
    check("dns_domain", want.dns_domain != row.dns_domain);
    check("krb5_conf", want.krb5_conf != row.krb5_conf);
    check("machine_account.enabled", w.enabled != r.enabled);
    check(
        "machine_account.account_name",
        w.account_name != r.account_name,
    );
    check("machine_account.dc_address", w.dc_address != r.dc_address);
    check("machine_account.keytab_path", !r.keytab_path.is_empty());
    check("machine_account.secret", w.enabled && r.secret.is_empty());
    out
}

/// A short digest of a Kerberos row, its secret left out.
fn digest(row: &KerberosConfig) -> String {
    let mut row = row.clone();
    row.machine_account.secret = Sensitive::default();
    let json = serde_json::to_vec(&row).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}
