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
