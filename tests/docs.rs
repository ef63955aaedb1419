//! The CRD reference's field table is generated; the committed copy must match.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites it.

use std::path::Path;

const BEGIN: &str = "<!-- fields:begin (generated: UPDATE_DOCS=1 cargo test --test docs) -->\n";
const END: &str = "<!-- fields:end -->";

#[test]
fn crd_reference_lists_every_field() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/crd-reference.md");
    let doc = std::fs::read_to_string(&path).expect("docs/crd-reference.md");
    let (start, end) = match (doc.find(BEGIN), doc.find(END)) {
        (Some(s), Some(e)) if s < e => (s + BEGIN.len(), e),
        _ => panic!("docs/crd-reference.md lacks the generated-table markers"),
    };
    let table = dittofs_operator::schema::field_table();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], table, &doc[end..]);
        std::fs::write(&path, updated).expect("write docs");
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "field table is stale: run UPDATE_DOCS=1 cargo test --test docs"
    );
    for field in [
        "`spec.storage.metadataSize`",
        "`spec.nfsAdapterPort`",
        "`spec.percona.backup.retentionDays`",
    ] {
        assert!(table.contains(field), "{field}");
    }
}

/// The kubectl variant of a namespace-scoped install in docs/install.md: its
/// webhook patch is valid JSON and selects what the chart selects, and its
/// Deployment argument parses as the scope it names.
#[test]
fn the_namespace_scoped_kubectl_steps_are_what_the_chart_renders() {
    use clap::Parser;
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/install.md"))
            .expect("docs/install.md");
    let between = |start: &str, end: &str| -> String {
        let from = doc
            .find(start)
            .unwrap_or_else(|| panic!("{start} in docs/install.md"))
            + start.len();
        let to = doc[from..].find(end).expect("end") + from;
        doc[from..to].to_string()
    };
    let patch: serde_json::Value =
        serde_json::from_str(&between("SELECTOR='", "'\n")).expect("the SELECTOR patch is JSON");
    assert_eq!(
        patch,
        serde_json::json!([{"op": "add", "path": "/webhooks/0/namespaceSelector",
            "value": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}}])
    );
    // deploy/deployment.yaml's arguments with the one the documented patch appends.
    let arg = between("\"value\":\"", "\"}]'");
    let deployment: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/deployment.yaml"),
        )
        .expect("deploy/deployment.yaml"),
    )
    .expect("YAML");
    let mut argv = vec!["dittofs-operator".to_string()];
    argv.extend(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string)),
    );
    argv.push(arg);
    let cli =
        dittofs_operator::cli::Cli::try_parse_from(&argv).expect("the patched arguments parse");
    let dittofs_operator::cli::Command::Run(run) = cli.command else {
        panic!("run");
    };
    assert_eq!(
        run.controller.scope.scope(),
        dittofs_operator::scope::WatchScope::of(["team-a".to_string(), "team-b".to_string()])
    );
}
