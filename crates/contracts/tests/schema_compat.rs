//! Every schema change is compatible with the committed history of that schema: BACKWARD
//! (new readers read old data) for fitstream's own topics, FULL_TRANSITIVE for the topics
//! other teams read. History comes from git, so a change is checked before it is committed
//! (working tree against HEAD) and again in CI (each committed version against the ones
//! before it).

use std::path::Path;
use std::process::Command;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use fitstream_contracts::SchemaKind;
use fitstream_contracts::schemas::Compatibility;

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Versions of a schema file, oldest first: every committed version, then the working tree.
fn history(file: &str) -> Vec<(String, String)> {
    let path = format!("schemas/{file}");
    let mut versions = Vec::new();
    let commits = git(&["log", "--format=%H", "--reverse", "--", &path]).unwrap_or_default();
    for commit in commits.lines() {
        if let Some(text) = git(&["show", &format!("{commit}:{path}")]) {
            versions.push((commit[..8].to_owned(), text));
        }
    }
    if let Ok(text) = std::fs::read_to_string(repo_root().join(&path))
        && versions.last().is_none_or(|(_, t)| t != &text)
    {
        versions.push(("working tree".to_owned(), text));
    }
    versions
}

fn compatible(old: &Schema, new: &Schema, level: Compatibility) -> Result<(), String> {
    let r = match level {
        Compatibility::Backward => SchemaCompatibility::can_read(old, new),
        Compatibility::FullTransitive => SchemaCompatibility::mutual_read(old, new),
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn every_schema_version_is_compatible_with_its_history() {
    if git(&["rev-parse", "HEAD"]).is_none() {
        eprintln!("not a git checkout with commits: nothing to compare");
        return;
    }
    let mut failures = Vec::new();
    let mut pairs = 0;
    for kind in SchemaKind::ALL {
        let versions = history(kind.file_name());
        let parsed: Vec<(String, Schema)> = versions
            .into_iter()
            .filter_map(|(name, text)| Schema::parse_str(&text).ok().map(|s| (name, s)))
            .collect();
        for (i, (name, new)) in parsed.iter().enumerate().skip(1) {
            let earlier: Vec<&(String, Schema)> = match kind.compatibility() {
                Compatibility::Backward => vec![&parsed[i - 1]],
                Compatibility::FullTransitive => parsed[..i].iter().collect(),
            };
            for (old_name, old) in earlier {
                pairs += 1;
                if let Err(e) = compatible(old, new, kind.compatibility()) {
                    failures.push(format!(
                        "{} ({name}) is not {:?}-compatible with {old_name}: {e}",
                        kind.file_name(),
                        kind.compatibility()
                    ));
                }
            }
        }
    }
    eprintln!("schema compatibility: {pairs} version pairs checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_check_rejects_a_field_added_without_default() {
    let old = SchemaKind::BuildOrder.schema();
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::BuildOrder.text()).expect("json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "new_field", "type": "string"}));
    let new = Schema::parse(&json).expect("schema");
    assert!(compatible(old, &new, Compatibility::Backward).is_err());
    assert!(compatible(old, &new, Compatibility::FullTransitive).is_err());
    // With a default it is fine both ways.
    json["fields"].as_array_mut().expect("fields").pop();
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "new_field", "type": "string", "default": ""}));
    let new = Schema::parse(&json).expect("schema");
    assert_eq!(compatible(old, &new, Compatibility::FullTransitive), Ok(()));
    // Removing a field without a default breaks FULL (old readers need it) but not BACKWARD.
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::BuildOrder.text()).expect("json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| f["name"] != "priority");
    let new = Schema::parse(&json).expect("schema");
    assert_eq!(compatible(old, &new, Compatibility::Backward), Ok(()));
    assert!(compatible(old, &new, Compatibility::FullTransitive).is_err());
}
