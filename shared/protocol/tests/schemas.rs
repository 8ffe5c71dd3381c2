//! The committed schemas under docs/schemas/ are exactly what the Rust types generate.
//!
//! After changing a message type, regenerate them and commit the result:
//! `KEEL_UPDATE_SCHEMAS=1 cargo test -p keel-protocol --test schemas`.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

/// Keys in sorted order at every level, so that the file does not depend on serde_json's
/// `preserve_order` feature being on somewhere in the build.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Pretty JSON with a trailing newline: the committed form.
fn render(schema: schemars::Schema) -> String {
    let text = serde_json::to_string_pretty(&canonical(schema.to_value())).unwrap();
    format!("{text}\n")
}

#[test]
fn committed_schemas_match_the_types() {
    let dir = schema_dir();
    let update = std::env::var_os("KEEL_UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    let mut expected = BTreeSet::new();
    for (name, schema) in keel_protocol::wire::schemas() {
        let file = format!("{name}.json");
        let path = dir.join(&file);
        let want = render(schema);
        expected.insert(file.clone());
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            _ if update => std::fs::write(&path, &want).unwrap(),
            Ok(_) => problems.push(format!("docs/schemas/{file} differs from the types")),
            Err(_) => problems.push(format!("docs/schemas/{file} is missing")),
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if file.ends_with(".json") && !expected.contains(&file) {
            if update {
                std::fs::remove_file(dir.join(&file)).unwrap();
            } else {
                problems.push(format!("docs/schemas/{file} has no message type"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nregenerate: KEEL_UPDATE_SCHEMAS=1 cargo test -p keel-protocol --test schemas",
        problems.join("\n")
    );
}
