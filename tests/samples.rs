//! Every sample is valid; every invalid sample fails with the message its
//! `# expect:` line names. Runs the real binary, so exit codes and the output
//! format are checked too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("samples directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no samples in {dir}");
    files
}

fn validate(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
        .args(["--log-format", "text", "validate", "-f"])
        .arg(path)
        .output()
        .expect("run dittofs-operator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_sample_is_valid_without_warnings_but_those_it_announces() {
    for file in yaml_files("samples") {
        let (ok, text) = validate(&file);
        assert!(ok, "{} should be valid:\n{text}", file.display());
        // A sample may announce a warning it shows on purpose: `# warns: <field>`.
        let body = std::fs::read_to_string(&file).expect("read sample");
        let announced: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("# warns: "))
            .collect();
        for line in text.lines().filter(|l| l.starts_with("warning:")) {
            assert!(
                announced
                    .iter()
                    .any(|field| line.contains(&format!(": {field}: "))),
                "{} warns without saying so (add `# warns: <field>`):\n{line}",
                file.display()
            );
        }
        assert!(
            text.contains("1 DittoServer(s) checked: 0 error(s)"),
            "{text}"
        );
    }
}

#[test]
fn every_invalid_sample_fails_with_its_message() {
    let files = yaml_files("samples/invalid");
    assert!(files.len() >= 10, "one file per rejection class");
    for file in files {
        let body = std::fs::read_to_string(&file).expect("read sample");
        let expect = body
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", file.display()));
        let (ok, text) = validate(&file);
        assert!(!ok, "{} should be rejected:\n{text}", file.display());
        let line = text
            .lines()
            .find(|l| l.contains(expect))
            .unwrap_or_else(|| panic!("{}: expected {expect:?} in:\n{text}", file.display()));
        assert!(line.starts_with("error: "), "{line}");
    }
}

#[test]
fn findings_name_file_object_and_field() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/invalid/two-replicas.yaml");
    let (_, text) = validate(&file);
    let line = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    assert!(
        line.contains("two-replicas.yaml: default/bad: spec.replicas: "),
        "{line}"
    );
}

#[test]
fn unusable_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("not-yaml.yaml", "a: [1, 2\n", "not valid YAML"),
        (
            "no-server.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "no DittoServer found",
        ),
        (
            "wrong-version.yaml",
            "apiVersion: dittofs.dittofs.com/v2\nkind: DittoServer\nmetadata: {name: x}\nspec: {storage: {metadataSize: 1Gi}}\n",
            "use dittofs.dittofs.com/v1alpha1",
        ),
        (
            "wrong-type.yaml",
            "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: x}\nspec: {storage: {metadataSize: 1Gi}, smb: {enabled: maybe}}\n",
            "spec.smb.enabled: invalid type",
        ),
    ];
    for (name, body, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        let (ok, text) = validate(&path);
        assert!(!ok && text.contains(expect), "{name}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    let (ok, text) = validate(&dir.path().join("missing.yaml"));
    assert!(!ok && text.contains("cannot read"), "{text}");
}

#[test]
fn secrets_in_the_same_file_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwt.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: jwt, namespace: default}\nstringData: {other: a}\n---\napiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: x, namespace: default}\nspec: {storage: {metadataSize: 1Gi}, identity: {jwt: {secretRef: {name: jwt, key: signing}}}}\n",
    )
    .expect("write");
    let (ok, text) = validate(&path);
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: ") && text.contains("has no key signing"),
        "{text}"
    );
}

fn render(path: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dittofs-operator"))
        .args(["--log-format", "text", "render", "-f"])
        .arg(path)
        .output()
        .expect("run dittofs-operator");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_sample_renders_to_applicable_objects() {
    use serde::Deserialize;
    for file in yaml_files("samples") {
        let (ok, stdout, stderr) = render(&file);
        assert!(ok, "{}: {stderr}", file.display());
        let kinds: Vec<String> = serde_yaml_ng::Deserializer::from_str(&stdout)
            .map(|d| serde_json::Value::deserialize(d).expect("yaml document"))
            .map(|v| {
                assert!(
                    v["apiVersion"].is_string() && v["metadata"]["name"].is_string(),
                    "{v}"
                );
                v["kind"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("Secret"),
            "{}",
            file.display()
        );
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("StatefulSet"),
            "{}",
            file.display()
        );
        let cm = kinds.iter().position(|k| k == "ConfigMap");
        let sts = kinds.iter().position(|k| k == "StatefulSet");
        assert!(cm < sts, "the ConfigMap is applied before the StatefulSet");
        assert_eq!(
            kinds.iter().filter(|k| *k == "NetworkPolicy").count(),
            1,
            "the server pod's NetworkPolicy, on by default: {}",
            file.display()
        );
        let percona = file.ends_with("percona.yaml");
        assert_eq!(
            kinds.iter().any(|k| k == "PerconaPGCluster"),
            percona,
            "{}",
            file.display()
        );
    }
}

#[test]
fn render_refuses_an_invalid_server() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/invalid/nfs-api-port-collision.yaml");
    let (ok, stdout, stderr) = render(&file);
    assert!(!ok && stdout.is_empty());
    assert!(
        stderr.contains("spec.controlPlane.port: port 12049 is already used"),
        "{stderr}"
    );
}

#[test]
fn a_spec_that_does_not_parse_is_counted_and_named_from_spec() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("empty-spec.yaml");
    std::fs::write(
        &file,
        "apiVersion: dittofs.dittofs.com/v1alpha1\nkind: DittoServer\nmetadata: {name: d}\nspec: {}\n",
    )
    .expect("write");
    let (ok, text) = validate(&file);
    assert!(!ok, "{text}");
    assert!(text.contains("spec: missing field `storage`"), "{text}");
    assert!(!text.contains("spec.."), "{text}");
    assert!(
        text.contains("1 DittoServer(s) checked: 1 error(s)"),
        "{text}"
    );
}

#[test]
fn a_directory_without_manifests_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, text) = validate(dir.path());
    assert!(!ok, "{text}");
    assert!(text.contains("holds no .yaml or .yml file"), "{text}");
}
