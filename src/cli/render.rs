//! `dittofs-operator render`: every object the reconciler would apply, after
//! defaulting, as multi-document YAML.
//!
//! Secrets found in the given files (the DittoServer's own file and `--secret`
//! files) feed the config hash exactly as the reconciler's reads would. Managed
//! Secrets get freshly generated values, as on a first reconcile.

use std::collections::BTreeMap;
use std::process::ExitCode;

use futures::executor::block_on;
use kube::ResourceExt;
use serde::Serialize;
use thiserror::Error;

use super::RenderArgs;
use crate::crd::DittoServer;
use crate::effective::EffectiveSpec;
use crate::manifest::{self, ManifestError};
use crate::resources::{self, BuildError, BuildInputs, SecretData};
use crate::validation::{Offline, validate_effective};

/// Why `render` could not produce output.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{0}: the DittoServer is invalid:\n{1}")]
    Invalid(String, String),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// Run `render`.
pub fn run(args: &RenderArgs) -> ExitCode {
    match render(args) {
        Ok(yaml) => super::write_stdout(&yaml),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Render every DittoServer of `args.file` to YAML.
pub fn render(args: &RenderArgs) -> Result<String, RenderError> {
    let docs = manifest::load_documents(&args.file)?;
    let mut secret_docs = docs.clone();
    for path in &args.secrets {
        secret_docs.extend(manifest::load_documents(path)?);
    }
    let secrets = secret_data(&secret_docs)?;

    let servers: Vec<DittoServer> = docs
        .iter()
        .filter(|d| manifest::is_ditto_server(d))
        .map(manifest::ditto_server)
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        return Err(ManifestError::NoDittoServer {
            path: args.file.display().to_string(),
        }
        .into());
    }
    let mut out = String::new();
    for ds in &servers {
        out.push_str(&render_one(ds, &secrets)?);
    }
    Ok(out)
}

/// Secret data keyed by (namespace, name).
type SecretsByName = BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>;

/// Secret data by (namespace, name), `stringData` merged over `data` as the API
/// server would.
fn secret_data(docs: &[manifest::Document]) -> Result<SecretsByName, ManifestError> {
    let mut out = BTreeMap::new();
    for secret in docs.iter().filter_map(manifest::secret) {
        let secret = secret?;
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), v.as_bytes().to_vec());
        }
        let ns = secret.namespace().unwrap_or_else(|| "default".into());
        out.insert((ns, secret.name_any()), data);
    }
    Ok(out)
}

fn render_one(ds: &DittoServer, secrets: &SecretsByName) -> Result<String, RenderError> {
    let eff = EffectiveSpec::resolve(ds);
    let report = block_on(validate_effective(&ds.spec, &eff, None, &Offline));
    if !report.is_valid() {
        let lines: Vec<String> = report.errors.iter().map(|f| format!("  {f}")).collect();
        return Err(RenderError::Invalid(ds.name_any(), lines.join("\n")));
    }
    let referenced: SecretData = eff
        .referenced_secrets()
        .into_iter()
        .filter_map(|name| {
            secrets
                .get(&(eff.namespace.clone(), name.clone()))
                .map(|d| (name, d.clone()))
        })
        .collect();
    // What the first pass applies: the server has not been read yet, so the Services
    // target the spec's adapter ports and there is no account Secret.
    let inputs = BuildInputs {
        secrets: referenced,
        managed: resources::generate_managed_values()?,
        server: None,
        account: None,
    };
    let children = resources::build_all(ds, &eff, &inputs)?;

    let mut out = String::new();
    for s in &children.managed_secrets {
        push_doc(&mut out, s)?;
    }
    push_doc(&mut out, &children.config_map)?;
    for s in &children.services {
        push_doc(&mut out, s)?;
    }
    if let Some(n) = &children.network_policy {
        push_doc(&mut out, n)?;
    }
    if let Some(m) = &children.service_monitor {
        push_doc(&mut out, m)?;
    }
    if let Some(p) = &children.percona_cluster {
        push_doc(&mut out, p)?;
    }
    push_doc(&mut out, &children.stateful_set)?;
    Ok(out)
}

fn push_doc(out: &mut String, obj: &impl Serialize) -> Result<(), RenderError> {
    out.push_str("---\n");
    out.push_str(&serde_yaml_ng::to_string(obj)?);
    Ok(())
}
