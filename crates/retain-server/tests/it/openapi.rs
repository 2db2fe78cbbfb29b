//! The OpenAPI document against the authorization table.

use crate::common::*;

#[test]
fn the_openapi_document_covers_the_authorization_table() {
    let doc = retain_server::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        retain_server::undescribed().is_empty(),
        "{:?}",
        retain_server::undescribed()
    );
    for rule in RULES {
        let op = &doc["paths"][rule.path][rule.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is in the document",
            rule.method,
            rule.path
        );
        assert!(op["description"].as_str().unwrap().contains(rule.roles[0]));
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| {
            p.starts_with("/api/v1/") && !p.ends_with("/login") && !p.ends_with("/session")
        })
        .map(|(_, ops)| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, RULES.len(), "no operation without a rule");
}
