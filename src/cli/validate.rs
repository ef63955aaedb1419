//! `dittofs-operator validate`: defaulting + validation with no cluster.
//!
//! Prints one line per finding — `error: <file>: <ns>/<name>: <field>: <message>`,
//! `warning: …`, `skipped: …` — then a summary; exits 1 on any error.

use std::process::ExitCode;

use futures::executor::block_on;
use kube::ResourceExt;

use std::collections::BTreeMap;

use super::ValidateArgs;
use crate::manifest::{self, Document, ManifestError};
use crate::validation::{ClusterLookup, Lookup, Report, SecretFacts, validate};

/// Offline lookups: Secrets given in the same files are checked; everything else
/// is skipped (it may well exist in the cluster).
#[derive(Default)]
struct FileLookup {
    /// (namespace, name) → keys and value lengths.
    secrets: BTreeMap<(String, String), SecretFacts>,
}

impl FileLookup {
    fn from_documents<'a>(docs: impl Iterator<Item = &'a Document>) -> Self {
        let mut secrets = BTreeMap::new();
        for secret in docs.filter_map(manifest::secret).filter_map(Result::ok) {
            let ns = secret.namespace().unwrap_or_else(|| "default".into());
            secrets.insert((ns, secret.name_any()), SecretFacts::of(&secret));
        }
        FileLookup { secrets }
    }
}

impl ClusterLookup for FileLookup {
    async fn storage_class(&self, _name: &str) -> Lookup<()> {
        Lookup::Skipped
    }
    async fn secret(&self, namespace: &str, name: &str) -> Lookup<SecretFacts> {
        match self.secrets.get(&(namespace.to_string(), name.to_string())) {
            Some(facts) => Lookup::Found(facts.clone()),
            None => Lookup::Skipped,
        }
    }
    async fn percona_crd(&self) -> Lookup<()> {
        Lookup::Skipped
    }
    async fn service_monitor_crd(&self) -> Lookup<()> {
        Lookup::Skipped
    }
}

/// Run `validate`.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let (lines, errors) = match check_files(&args.files) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = super::write_stdout(&(lines.join("\n") + "\n"));
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        written
    }
}

/// Validate every DittoServer in `paths`; returns the output lines and the error count.
/// Unusable input (unreadable file, bad YAML, a document that is not a valid
/// DittoServer) is reported as an `error:` line too, so one bad file does not hide
/// the findings of the others.
pub fn check_files(paths: &[std::path::PathBuf]) -> Result<(Vec<String>, usize), ManifestError> {
    let mut lines = Vec::new();
    let (mut servers, mut errors, mut warnings) = (0usize, 0usize, 0usize);
    let mut files = Vec::new();
    for path in manifest::expand_paths(paths)? {
        match manifest::load_documents(&path) {
            Ok(docs) => files.push((path, docs)),
            Err(e) => {
                errors += 1;
                lines.push(format!("error: {e}"));
            }
        }
    }
    let lookup = FileLookup::from_documents(files.iter().flat_map(|(_, docs)| docs));
    for (path, docs) in &files {
        let mut found = false;
        for doc in docs.iter().filter(|d| manifest::is_ditto_server(d)) {
            found = true;
            // Counted as checked whether or not it reads: its error is a finding.
            servers += 1;
            let ds = match manifest::ditto_server(doc) {
                Ok(ds) => ds,
                Err(e) => {
                    errors += 1;
                    lines.push(format!("error: {e}"));
                    continue;
                }
            };
            let who = format!(
                "{}: {}/{}",
                doc.path,
                ds.namespace().unwrap_or_else(|| "default".into()),
                ds.name_any()
            );
            let report: Report = block_on(validate(&ds, None, &lookup));
            errors += report.errors.len();
            warnings += report.warnings.len();
            lines.extend(report.errors.iter().map(|f| format!("error: {who}: {f}")));
            lines.extend(
                report
                    .warnings
                    .iter()
                    .map(|f| format!("warning: {who}: {f}")),
            );
            lines.extend(
                report
                    .skipped
                    .iter()
                    .map(|f| format!("skipped: {who}: {f}")),
            );
        }
        if !found {
            errors += 1;
            lines.push(format!(
                "error: {}",
                ManifestError::NoDittoServer {
                    path: path.display().to_string()
                }
            ));
        }
    }
    lines.push(format!(
        "{servers} DittoServer(s) checked: {errors} error(s), {warnings} warning(s)"
    ));
    Ok((lines, errors))
}
