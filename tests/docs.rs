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

/// The paths in one column of a marked table of `doc` (backquoted, starting with
/// `spec.`; other cells such as `—` or a flag are skipped).
fn column(doc: &str, marker: &str, index: usize) -> Vec<String> {
    let begin = format!("<!-- {marker}:begin -->");
    let end = format!("<!-- {marker}:end -->");
    let (Some(start), Some(stop)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("docs/go-operator.md lacks the {marker} markers");
    };
    doc[start..stop]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(index + 1))
        .map(str::trim)
        .filter_map(|cell| cell.strip_prefix('`')?.strip_suffix('`'))
        .filter(|path| path.starts_with("spec."))
        .map(str::to_string)
        .collect()
}

/// docs/go-operator.md names only fields our CRD has, and every field of our CRD
/// is in it: mapped from a Go operator field, or listed as ours only (a row for an
/// object covers the fields below it, and an object is covered by a row below it).
#[test]
fn the_go_operator_comparison_follows_the_crd() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/go-operator.md");
    let doc = std::fs::read_to_string(&path).expect("docs/go-operator.md");
    let ours: Vec<String> = dittofs_operator::schema::field_table()
        .lines()
        .filter_map(|row| row.strip_prefix("| `")?.split('`').next())
        .map(str::to_string)
        .collect();
    assert!(ours.contains(&"spec.storage.metadataSize".to_string()));
    let go = column(&doc, "go-fields", 0);
    assert!(go.len() > 40, "the Go operator's fields are listed: {go:?}");
    let mut named = column(&doc, "go-fields", 1);
    named.extend(column(&doc, "ours-only", 0));
    for field in &named {
        assert!(
            ours.contains(field),
            "docs/go-operator.md names {field}, which the CRD does not have"
        );
    }
    for field in &ours {
        assert!(
            named.iter().any(|n| field == n
                || field.starts_with(&format!("{n}."))
                || n.starts_with(&format!("{field}."))),
            "{field} is in the CRD but not in docs/go-operator.md: map it from the Go operator's field, or list it as ours only"
        );
    }
}
