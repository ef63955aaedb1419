//! `/api/v1/identity-providers/{type}/config` (admin only), from
//! `internal/controlplane/api/handlers/identity_providers.go` at v0.29.0, and the
//! first-start seeding of `resolveIdentityProviders` (`cmd/dfs/commands/start.go`).
//!
//! Rows are kept as the handler stores them, secrets in clear: LDAP with
//! `ApplyDefaults` applied (`pkg/identity/ldap/config.go`), Kerberos as sent.
//! Simplification: a `timeout` is kept as written (Go re-formats it with
//! `Duration.String`, "1m" → "1m0s").

use serde_json::{Map, Value, json};

use super::model::Ctx;
use super::wire::{Body, HResult, Reply};

/// `redactedSecret` (`handlers/helpers.go`).
pub const REDACTED: &str = "********";

fn kind(ctx: &Ctx<'_>) -> Result<String, Reply> {
    match ctx.param(0) {
        k @ ("ldap" | "kerberos") => Ok(k.to_string()),
        // `loadRow` / `PutConfig`.
        _ => Err(Reply::not_found("Unknown identity provider type")),
    }
}

/// GET: 404 "Identity provider not configured" without a row; the secret
/// redacted when set, empty when not (`ldapConfigToDTO`, `redactKerberosDTO`).
pub fn get(ctx: &mut Ctx<'_>) -> HResult {
    let kind = kind(ctx)?;
    let row = match kind.as_str() {
        "ldap" => ctx.st.ldap_row.clone(),
        _ => ctx.st.kerberos_row.clone(),
    }
    .ok_or_else(|| Reply::not_found("Identity provider not configured"))?;
    Ok(Reply::ok(&redact(&kind, row)))
}

pub fn redact(kind: &str, mut row: Value) -> Value {
    let slot = match kind {
        "ldap" => row.get_mut("bind_password"),
        _ => row
            .get_mut("machine_account")
            .and_then(|m| m.get_mut("secret")),
    };
    if let Some(v) = slot
        && v.as_str().is_some_and(|s| !s.is_empty())
    {
        *v = Value::String(REDACTED.into());
    }
    // `bind_password` and the machine account's fields are `omitempty`.
    if let Some(obj) = row.as_object_mut() {
        if obj.get("bind_password").and_then(Value::as_str) == Some("") {
            obj.remove("bind_password");
        }
        if let Some(Value::Object(ma)) = obj.get_mut("machine_account") {
            ma.retain(|_, v| {
                !(v.as_str() == Some("")
                    || v == &Value::Bool(false)
                    || v.as_array().is_some_and(Vec::is_empty))
            });
        }
    }
    row
}

pub fn put(ctx: &mut Ctx<'_>) -> HResult {
    match kind(ctx)?.as_str() {
        "ldap" => put_ldap(ctx),
        _ => put_kerberos(ctx),
    }
}

fn s(d: &mut Body, key: &str) -> String {
    d.string(key).unwrap_or_default()
}

/// `putLDAP`: decode, keep the stored password when the new one is empty or
/// redacted, `ApplyDefaults`, `Validate` (400 with its words), store, hot-reload.
fn put_ldap(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let tls = d.object("tls").unwrap_or_default();
    let mut row = Map::new();
    row.insert("enabled".into(), d.bool("enabled").unwrap_or(false).into());
    for key in [
        "url",
        "base_dn",
        "bind_dn",
        "bind_password",
        "user_attr",
        "realm",
        "idmap",
        "timeout",
    ] {
        row.insert(key.into(), s(&mut d, key).into());
    }
    for key in ["start_tls", "allow_plaintext", "nested_groups"] {
        row.insert(key.into(), d.bool(key).unwrap_or(false).into());
    }
    row.insert(
        "max_group_results".into(),
        d.int("max_group_results").unwrap_or(0).into(),
    );
    d.finish()?;
    let tls_str = |k: &str| tls.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    row.insert(
        "tls".into(),
        json!({
            "ca_cert_file": tls_str("ca_cert_file"),
            "client_cert_file": tls_str("client_cert_file"),
            "client_key_file": tls_str("client_key_file"),
            "insecure_skip_verify": tls.get("insecure_skip_verify").and_then(Value::as_bool).unwrap_or(false),
            "min_version": tls_str("min_version"),
        }),
    );
    let timeout = row["timeout"].as_str().unwrap_or("").to_string();
    // The fake's own Go parser, with Go's words (not the operator's, which it tests).
    if !timeout.is_empty()
        && let Err(why) = super::util::go_parse_duration(&timeout)
    {
        return Err(Reply::bad_request(&format!(
            "invalid timeout {timeout:?}: {why}"
        )));
    }
    let password = row["bind_password"].as_str().unwrap_or("").to_string();
    if password.is_empty() || password == REDACTED {
        let stored = ctx
            .st
            .ldap_row
            .as_ref()
            .and_then(|r| r["bind_password"].as_str())
            .unwrap_or("")
            .to_string();
        row.insert("bind_password".into(), stored.into());
    }
    let mut row = Value::Object(row);
    apply_ldap_defaults(&mut row);
    validate_ldap(&row).map_err(|e| Reply::bad_request(&e))?;
    ctx.st.ldap_row = Some(row.clone());
    ctx.write();
    Ok(Reply::ok(&redact("ldap", row)))
}

/// `ApplyDefaults` (`pkg/identity/ldap/config.go`).
pub fn apply_ldap_defaults(row: &mut Value) {
    for (key, default) in [
        ("user_attr", json!("sAMAccountName")),
        ("idmap", json!("rfc2307")),
        ("timeout", json!("10s")),
    ] {
        if row[key].as_str().is_none_or(str::is_empty) {
            row[key] = default;
        }
    }
    if row["max_group_results"].as_i64().is_none_or(|n| n == 0) {
        row["max_group_results"] = json!(200);
    }
}

/// `Config.Validate` (`pkg/identity/ldap/config.go`), its messages.
fn validate_ldap(row: &Value) -> Result<(), String> {
    let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
    if row["enabled"] != json!(true) {
        return Ok(());
    }
    let url = text("url");
    if url.trim().is_empty() {
        return Err("ldap.url is required when ldap is enabled".into());
    }
    let scheme = url.trim().to_lowercase();
    if scheme.starts_with("ldap://") {
        if row["start_tls"] != json!(true) && row["allow_plaintext"] != json!(true) {
            return Err("ldap.url uses plaintext ldap://; set ldap.start_tls=true to upgrade to TLS, or ldap.allow_plaintext=true to explicitly permit an unencrypted bind".into());
        }
    } else if !scheme.starts_with("ldaps://") {
        return Err(format!(
            "ldap.url must use the ldap:// or ldaps:// scheme (got {url:?})"
        ));
    }
    if text("base_dn").trim().is_empty() {
        return Err("ldap.base_dn is required when ldap is enabled".into());
    }
    if text("bind_dn").trim().is_empty() {
        return Err(
            "ldap.bind_dn is required (service-account bind is the minimum supported auth)".into(),
        );
    }
    if text("bind_password").is_empty() {
        return Err(
            "ldap.bind_password is required (an empty password performs an anonymous bind)".into(),
        );
    }
    let attr = text("user_attr");
    let mut chars = attr.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !attr.is_empty() && !valid {
        return Err(format!(
            "ldap.user_attr {attr:?} is not a valid LDAP attribute name"
        ));
    }
    if row["max_group_results"].as_i64().unwrap_or(0) < 0 {
        return Err(format!(
            "ldap.max_group_results must be >= 0 (got {})",
            row["max_group_results"]
        ));
    }
    let idmap = text("idmap");
    if !["", "rfc2307", "rid"].contains(&idmap.as_str()) {
        return Err(format!(
            "ldap.idmap {idmap:?} is not supported (use \"rfc2307\" or \"rid\")"
        ));
    }
    let tls = &row["tls"];
    let set = |k: &str| tls[k].as_str().is_some_and(|s| !s.is_empty());
    if set("client_cert_file") != set("client_key_file") {
        return Err(
            "ldap.tls.client_cert_file and ldap.tls.client_key_file must be set together".into(),
        );
    }
    Ok(())
}

/// `putKerberos`: `validateKerberosDTO` (400), keep the stored machine secret when
/// the new one is empty or redacted, store as sent; no hot reload of the Kerberos
/// settings, so the answer says `X-DittoFS-Apply: restart-required`.
fn put_kerberos(ctx: &mut Ctx<'_>) -> HResult {
    let mut d = Body::decode(ctx.body)?;
    let machine = d.object("machine_account").unwrap_or_default();
    let mut row = Map::new();
    row.insert("enabled".into(), d.bool("enabled").unwrap_or(false).into());
    for key in [
        "keytab_path",
        "service_principal",
        "realm",
        "netbios_domain",
        "dns_domain",
        "krb5_conf",
        "max_clock_skew",
        "context_ttl",
    ] {
        row.insert(key.into(), s(&mut d, key).into());
    }
    row.insert(
        "max_contexts".into(),
        d.int("max_contexts").unwrap_or(0).into(),
    );
    d.finish()?;
    let m_str = |k: &str| {
        machine
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut secret = m_str("secret");
    if secret.is_empty() || secret == REDACTED {
        secret = ctx
            .st
            .kerberos_row
            .as_ref()
            .and_then(|r| r["machine_account"]["secret"].as_str())
            .unwrap_or("")
            .to_string();
    }
    row.insert(
        "machine_account".into(),
        json!({
            "enabled": machine.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            "account_name": m_str("account_name"),
            "keytab_path": m_str("keytab_path"),
            "dc_address": machine.get("dc_address").cloned().unwrap_or(json!([])),
            "secret": secret,
        }),
    );
    let row = Value::Object(row);
    validate_kerberos(&row).map_err(|e| Reply::bad_request(&e))?;
    ctx.st.kerberos_row = Some(row.clone());
    ctx.write();
    let mut reply = Reply::ok(&redact("kerberos", row));
    reply
        .headers
        .push(("x-dittofs-apply", "restart-required".to_string()));
    Ok(reply)
}

/// `validateKerberosDTO`, its messages.
fn validate_kerberos(row: &Value) -> Result<(), String> {
    let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
    if row["enabled"] == json!(true) {
        if text("keytab_path").is_empty() {
            return Err("keytab_path is required when kerberos is enabled".into());
        }
        if text("service_principal").is_empty() {
            return Err("service_principal is required when kerberos is enabled".into());
        }
    }
    let realm = text("realm");
    if realm.contains(['@', '/', ' ']) {
        return Err(format!(
            "realm {realm:?} must not contain '@', '/', or spaces"
        ));
    }
    let netbios = text("netbios_domain");
    if netbios.contains(['.', '@', '/', ' ']) {
        return Err(format!(
            "netbios_domain {netbios:?} must be a single label (no '.', '@', '/', or spaces)"
        ));
    }
    let dns = text("dns_domain");
    if dns.contains(['@', '/', ' ']) {
        return Err(format!(
            "dns_domain {dns:?} must not contain '@', '/', or spaces"
        ));
    }
    if row["max_contexts"].as_i64().unwrap_or(0) < 0 {
        return Err("max_contexts must be >= 0".into());
    }
    Ok(())
}

/// The first start's seeding (`resolveIdentityProviders`): an enabled `ldap` or
/// `kerberos` block of `config.yaml` becomes the row when there is none, with the
/// server's defaults applied and the secrets the pod's environment gives
/// (`DITTOFS_LDAP_BIND_PASSWORD`, `DITTOFS_KERBEROS_MACHINE_ACCOUNT_SECRET`).
pub fn seed(
    ldap_row: &mut Option<Value>,
    kerberos_row: &mut Option<Value>,
    config_yaml: &str,
    bind_password: &str,
    machine_secret: &str,
) {
    let config: Value = serde_yaml_ng::from_str(config_yaml).unwrap_or(Value::Null);
    let ldap = &config["ldap"];
    if ldap_row.is_none() && ldap["enabled"] == json!(true) {
        let tls = &ldap["tls"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let mut row = json!({
            "enabled": true, "url": text(&ldap["url"]),
            "start_tls": ldap["start_tls"].as_bool().unwrap_or(false),
            "allow_plaintext": ldap["allow_plaintext"].as_bool().unwrap_or(false),
            "base_dn": text(&ldap["base_dn"]), "bind_dn": text(&ldap["bind_dn"]),
            "bind_password": bind_password, "user_attr": text(&ldap["user_attr"]),
            "realm": text(&ldap["realm"]), "idmap": text(&ldap["idmap"]),
            "nested_groups": ldap["nested_groups"].as_bool().unwrap_or(false),
            "timeout": "", "max_group_results": 0,
            "tls": {"ca_cert_file": text(&tls["ca_cert_file"]), "client_cert_file": "",
                "client_key_file": "", "min_version": "",
                "insecure_skip_verify": tls["insecure_skip_verify"].as_bool().unwrap_or(false)},
        });
        apply_ldap_defaults(&mut row);
        *ldap_row = Some(row);
    }
    let krb = &config["kerberos"];
    if kerberos_row.is_none() && krb["enabled"] == json!(true) {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let spn = text(&krb["service_principal"]);
        // `applyKerberosDefaults` (`pkg/config/defaults.go`).
        let mut realm = text(&krb["realm"]);
        if realm.is_empty()
            && let Some((_, r)) = spn.rsplit_once('@')
        {
            realm = r.to_string();
        }
        let mut dns = text(&krb["dns_domain"]);
        if dns.is_empty() {
            dns = realm.to_lowercase();
        }
        let ma = &krb["machine_account"];
        *kerberos_row = Some(json!({
            "enabled": true, "keytab_path": text(&krb["keytab_path"]),
            "service_principal": spn, "realm": realm,
            "netbios_domain": text(&krb["netbios_domain"]), "dns_domain": dns,
            "krb5_conf": text(&krb["krb5_conf"]),
            "max_clock_skew": "5m0s", "context_ttl": "8h0m0s", "max_contexts": 10000,
            "machine_account": {
                "enabled": ma["enabled"].as_bool().unwrap_or(false),
                "account_name": text(&ma["account_name"]), "keytab_path": "",
                "dc_address": ma["dc_address"].clone().as_array().cloned().unwrap_or_default(),
                "secret": if ma["enabled"] == json!(true) { machine_secret } else { "" },
            },
        }));
    }
}
