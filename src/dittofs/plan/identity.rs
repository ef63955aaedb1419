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
use crate::secret_files::{KEYTAB, KRB5_CONF, LDAP_CA};

use super::{Known, Live, Plan, Step};

pub const LDAP: &str = IdentityProviderStatus::LDAP;
pub const KERBEROS: &str = IdentityProviderStatus::KERBEROS;

/// How `status.server.unmanaged` names a provider someone else enabled.
pub fn unmanaged_provider(kind: &str) -> String {
    format!("identity provider {kind}")
}

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
    super::secret_text(known.secrets, &key.name, &key.key).map(Sensitive::new)
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
                plan.unmanaged.push(unmanaged_provider(kind));
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
                .map(|_| LDAP_CA.path())
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
                // The machine account off too: NTLM pass-through follows
                // `machine_account.enabled` alone, whatever `enabled` says
                // (`netlogonCredentialFromKerberosDTO`, `identity_providers.go`;
                // `buildNetlogonAuthenticator`, `cmd/dfs/commands/netlogon.go`). An
                // empty secret keeps the stored one.
                let off = KerberosConfig {
                    enabled: false,
                    machine_account: KerberosMachineAccount {
                        enabled: false,
                        secret: Sensitive::default(),
                        ..row.machine_account.clone()
                    },
                    ..row.clone()
                };
                // Not held back by a restart under way (the one that removes the
                // keytab's mount): a server restarting with Kerberos still on in its
                // database and no keytab would fail its SMB adapter. The new digest
                // restarts the pod after the write, so at most twice in all.
                entry.written_digest = Some(digest(&off));
                plan.steps.push(Step::PutKerberos(off));
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
        keytab_path: KEYTAB.path(),
        service_principal: want.service_principal.clone(),
        realm: want.realm.clone(),
        netbios_domain: want.netbios_domain.clone(),
        dns_domain: want.dns_domain.clone(),
        krb5_conf: want
            .krb5_conf
            .as_ref()
            .map(|_| KRB5_CONF.path())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::crd::DittoServer;
    use crate::dittofs::plan::{SecretValues, plan};

    fn eff(identity: serde_json::Value) -> EffectiveSpec {
        let ds: DittoServer = serde_json::from_value(json!({
            "apiVersion": "dittofs.dittofs.com/v1alpha1", "kind": "DittoServer",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {"storage": {"metadataSize": "1Gi"}, "identity": identity},
        }))
        .expect("DittoServer");
        EffectiveSpec::resolve(&ds)
    }

    fn ldap_spec() -> serde_json::Value {
        json!({"ldap": {"enabled": true, "url": "ldaps://ldap.example.com", "baseDN": "dc=example,dc=com",
            "bindDN": "cn=dittofs,dc=example,dc=com", "bindPasswordSecretRef": {"name": "ldap", "key": "password"}}})
    }

    fn kerberos_spec() -> serde_json::Value {
        json!({"kerberos": {"enabled": true, "servicePrincipal": "nfs/files.example.com@EXAMPLE.COM",
            "netbiosDomain": "EXAMPLE", "keytabSecretRef": {"name": "krb", "key": "keytab"},
            "machineAccount": {"enabled": true, "accountName": "DITTOFS$", "secretRef": {"name": "machine", "key": "secret"}}}})
    }

    /// The LDAP row as the server stores it after seeding from our config: its
    /// defaults applied, the password redacted.
    fn ldap_row() -> LdapConfig {
        LdapConfig {
            enabled: true,
            url: "ldaps://ldap.example.com".into(),
            base_dn: "dc=example,dc=com".into(),
            bind_dn: "cn=dittofs,dc=example,dc=com".into(),
            bind_password: Sensitive::new(crate::dittofs::api::REDACTED_SECRET),
            user_attr: "sAMAccountName".into(),
            idmap: "rfc2307".into(),
            timeout: "10s".into(),
            max_group_results: 200,
            ..Default::default()
        }
    }

    /// The Kerberos row as seeded from our config (`kerberosConfigToDTO` after
    /// `applyKerberosDefaults`).
    fn kerberos_row() -> KerberosConfig {
        KerberosConfig {
            enabled: true,
            keytab_path: "/kerberos/dittofs.keytab".into(),
            service_principal: "nfs/files.example.com@EXAMPLE.COM".into(),
            realm: "EXAMPLE.COM".into(),
            netbios_domain: "EXAMPLE".into(),
            dns_domain: "example.com".into(),
            max_clock_skew: "5m0s".into(),
            context_ttl: "8h0m0s".into(),
            max_contexts: 10000,
            machine_account: KerberosMachineAccount {
                enabled: true,
                account_name: "DITTOFS$".into(),
                secret: Sensitive::new(crate::dittofs::api::REDACTED_SECRET),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn secrets() -> SecretValues {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.as_bytes().to_vec())]);
        BTreeMap::from([
            ("ldap".to_string(), one("password", "bind-pw")),
            ("machine".to_string(), one("secret", "machine-pw")),
        ])
    }

    fn versions(ldap: &str, machine: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("ldap".to_string(), ldap.to_string()),
            ("machine".to_string(), machine.to_string()),
        ])
    }

    fn given(kind: &str, version: &str, digest: Option<&str>) -> IdentityProviderStatus {
        IdentityProviderStatus {
            provider_type: kind.into(),
            enabled: true,
            state: ItemState::Ready,
            message: None,
            secret_version: Some(version.into()),
            written_digest: digest.map(str::to_string),
        }
    }

    fn live(ldap: Option<LdapConfig>, kerberos: Option<KerberosConfig>) -> Live {
        Live {
            ldap: Some(ldap),
            kerberos: Some(kerberos),
            ..Default::default()
        }
    }

    fn run(
        eff: &EffectiveSpec,
        live: &Live,
        versions: &BTreeMap<String, String>,
        last: &[IdentityProviderStatus],
        pod_current: bool,
    ) -> Plan {
        let secrets = secrets();
        plan(
            eff,
            live,
            &Known {
                portmapper_in_effect: false,
                secrets: &secrets,
                versions,
                stores: &[],
                snapshot_policies: &[],
                identity: last,
                pod_current,
            },
        )
    }

    fn both() -> EffectiveSpec {
        let mut spec = ldap_spec();
        spec["kerberos"] = kerberos_spec()["kerberos"].clone();
        eff(spec)
    }

    #[test]
    fn a_converged_server_gets_no_write() {
        let last = [given("ldap", "1", None), given("kerberos", "2", None)];
        let plan = run(
            &both(),
            &live(Some(ldap_row()), Some(kerberos_row())),
            &versions("1", "2"),
            &last,
            true,
        );
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert_eq!(plan.identity_providers, last);
        assert!(plan.unmanaged.is_empty());
    }

    #[test]
    fn a_changed_ldap_field_is_written_whole_with_the_password() {
        let mut spec = ldap_spec();
        spec["ldap"]["nestedGroups"] = json!(true);
        spec["ldap"]["caCertSecretRef"] = json!({"name": "ca", "key": "ca.crt"});
        let mut row = ldap_row();
        row.max_group_results = 50;
        let plan = run(
            &eff(spec),
            &live(Some(row), None),
            &versions("1", "2"),
            &[given("ldap", "1", None)],
            true,
        );
        let [Step::PutLdap(body)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps);
        };
        assert!(body.nested_groups);
        assert_eq!(body.tls.ca_cert_file, "/ldap-ca/ca.crt");
        assert_eq!(body.bind_password.expose(), "bind-pw");
        // What the spec has no field for stays as the server holds it.
        assert_eq!((body.max_group_results, body.timeout.as_str()), (50, "10s"));
        assert_eq!(
            plan.identity_providers[0].secret_version.as_deref(),
            Some("1")
        );
    }

    #[test]
    fn a_rotated_password_is_sent_again() {
        let plan = run(
            &eff(ldap_spec()),
            &live(Some(ldap_row()), None),
            &versions("7", "2"),
            &[given("ldap", "1", None)],
            true,
        );
        let [Step::PutLdap(body)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps);
        };
        assert_eq!(body.bind_password.expose(), "bind-pw");
        assert_eq!(
            plan.identity_providers[0].secret_version.as_deref(),
            Some("7")
        );
    }

    #[test]
    fn a_rotated_machine_secret_is_sent_without_a_restart() {
        let last = [given("kerberos", "2", Some("d1"))];
        let plan = run(
            &eff(kerberos_spec()),
            &live(None, Some(kerberos_row())),
            &versions("1", "3"),
            &last,
            true,
        );
        let [Step::PutKerberos(body)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps);
        };
        assert_eq!(body.machine_account.secret.expose(), "machine-pw");
        let entry = &plan.identity_providers[0];
        assert_eq!(entry.secret_version.as_deref(), Some("3"));
        assert_eq!(entry.written_digest.as_deref(), Some("d1"), "no restart");
    }

    #[test]
    fn a_changed_kerberos_field_is_written_and_restarts_the_pod_once() {
        let mut spec = kerberos_spec();
        spec["kerberos"]["realm"] = json!("CORP.EXAMPLE.COM");
        spec["kerberos"]["krb5ConfSecretRef"] = json!({"name": "krb", "key": "krb5.conf"});
        let e = eff(spec);
        let last = [given("kerberos", "2", None)];
        let l = live(None, Some(kerberos_row()));
        // A restart under way: wait for it, write nothing yet.
        let waiting = run(&e, &l, &versions("1", "2"), &last, false);
        assert!(waiting.steps.is_empty());
        assert_eq!(waiting.identity_providers[0].state, ItemState::Pending);
        assert_eq!(waiting.identity_providers[0].written_digest, None);

        let plan = run(&e, &l, &versions("1", "2"), &last, true);
        let [Step::PutKerberos(body)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps);
        };
        assert_eq!(body.realm, "CORP.EXAMPLE.COM");
        // The DNS domain the server would derive, written out: the API stores a
        // row as sent.
        assert_eq!(body.dns_domain, "corp.example.com");
        assert_eq!(body.krb5_conf, "/kerberos-krb5/krb5.conf");
        assert_eq!(body.keytab_path, "/kerberos/dittofs.keytab");
        assert_eq!(
            (body.max_clock_skew.as_str(), body.max_contexts),
            ("5m0s", 10000)
        );
        let digest = plan.identity_providers[0].written_digest.clone();
        assert!(digest.is_some());

        // The server now holds it: nothing more, the digest stays.
        let mut row = body.clone();
        row.machine_account.secret = Sensitive::new(crate::dittofs::api::REDACTED_SECRET);
        let after = run(
            &e,
            &live(None, Some(row)),
            &versions("1", "2"),
            &plan.identity_providers,
            true,
        );
        assert!(after.steps.is_empty(), "{:?}", after.steps);
        assert_eq!(after.identity_providers[0].written_digest, digest);
    }

    #[test]
    fn a_provider_the_spec_dropped_is_turned_off_and_others_are_left_alone() {
        let spec = eff(json!({}));
        let l = live(Some(ldap_row()), Some(kerberos_row()));
        // Ours: turned off, the rest of the row as stored, no password sent; also
        // while a restart is under way (the one that removes the keytab).
        let last = [given("ldap", "1", None), given("kerberos", "2", Some("d1"))];
        let plan = run(&spec, &l, &versions("1", "2"), &last, false);
        let [Step::PutLdap(ldap), Step::PutKerberos(krb)] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps);
        };
        assert!(!ldap.enabled && ldap.bind_password.is_empty());
        assert_eq!(ldap.url, "ldaps://ldap.example.com");
        assert!(!krb.enabled && krb.machine_account.secret.is_empty());
        assert!(
            !krb.machine_account.enabled,
            "NTLM pass-through follows the machine account alone"
        );
        assert!(plan.identity_providers.iter().all(|p| !p.enabled));
        let krb_entry = &plan.identity_providers[1];
        assert_ne!(krb_entry.written_digest.as_deref(), Some("d1"), "restart");

        // Someone else's (never declared): untouched, listed.
        let theirs = run(&spec, &l, &versions("1", "2"), &[], true);
        assert!(theirs.steps.is_empty());
        assert!(theirs.identity_providers.is_empty());
        assert_eq!(
            theirs.unmanaged,
            ["identity provider ldap", "identity provider kerberos"]
        );
    }

    #[test]
    fn a_missing_password_secret_waits() {
        let mut spec = ldap_spec();
        spec["ldap"]["bindPasswordSecretRef"]["name"] = json!("absent");
        let plan = run(
            &eff(spec),
            &live(None, None),
            &versions("1", "2"),
            &[],
            true,
        );
        assert!(plan.steps.is_empty());
        assert_eq!(plan.identity_providers[0].state, ItemState::Pending);
        assert_eq!(
            plan.identity_providers[0].message.as_deref(),
            Some("waiting for Secret absent")
        );
    }

    #[test]
    fn an_unconfigured_server_gets_the_row() {
        let plan = run(&both(), &live(None, None), &versions("1", "2"), &[], true);
        assert!(matches!(
            plan.steps.as_slice(),
            [Step::PutLdap(_), Step::PutKerberos(_)]
        ));
    }
}
