//! Every schema change is compatible with the committed history of that schema: BACKWARD
//! (new readers read old data) for fitstream's own topics, FULL_TRANSITIVE for the topics
//! other teams read. History comes from git, so a change is checked before it is committed
//! (working tree against HEAD) and again in CI (each committed version against the ones
//! before it).
//!
//! A check that compared nothing must not pass: without history (not a git checkout, or a
//! shallow clone, where every schema looks as if it had never changed), with a schema that
//! has no committed version, or with a version that does not parse, the test fails and says
//! why. The history reader itself is checked on a scratch repository with a known change.

use std::path::{Path, PathBuf};
use std::process::Command;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use fitstream_contracts::SchemaKind;
use fitstream_contracts::schemas::Compatibility;

fn repo_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// `git -C root ...`, never looking above `root` for a repository.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let out = Command::new("git")
        .env("GIT_CEILING_DIRECTORIES", root.parent().unwrap_or(&root))
        .arg("-C")
        .arg(&root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Versions of a schema file, oldest first: every committed version, then the working tree
/// when it differs; and how many of them are committed.
fn history(root: &Path, file: &str) -> (Vec<(String, String)>, usize) {
    let path = format!("schemas/{file}");
    let mut versions = Vec::new();
    let commits = git(root, &["log", "--format=%H", "--reverse", "--", &path]).unwrap_or_default();
    for commit in commits.lines() {
        if let Some(text) = git(root, &["show", &format!("{commit}:{path}")]) {
            versions.push((commit[..8].to_owned(), text));
        }
    }
    let committed = versions.len();
    if let Ok(text) = std::fs::read_to_string(root.join(&path))
        && versions.last().is_none_or(|(_, t)| t != &text)
    {
        versions.push(("working tree".to_owned(), text));
    }
    (versions, committed)
}

fn compatible(old: &Schema, new: &Schema, level: Compatibility) -> Result<(), String> {
    let r = match level {
        Compatibility::Backward => SchemaCompatibility::can_read(old, new),
        Compatibility::FullTransitive => SchemaCompatibility::mutual_read(old, new),
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// What checking `files` (with their compatibility levels) against their history under
/// `root` found: the version pairs compared and the incompatibilities; or why there is no
/// history to check against.
fn check_history(
    root: &Path,
    files: &[(&str, Compatibility)],
) -> Result<(usize, Vec<String>), String> {
    if git(root, &["rev-parse", "HEAD"]).is_none() {
        return Err(format!(
            "{} is not a git checkout with commits, and schema compatibility is checked against \
             the git history of schemas/: run the tests in a clone of the repository",
            root.display()
        ));
    }
    let shallow = git(root, &["rev-parse", "--is-shallow-repository"]).unwrap_or_default();
    if shallow.trim() != "false" {
        return Err(format!(
            "{} is a shallow clone (is-shallow-repository: {:?}): the history of schemas/ is \
             cut off and every schema would look unchanged; run `git fetch --unshallow` (in CI, \
             clone with the full history, e.g. `fetch-depth: 0`)",
            root.display(),
            shallow.trim()
        ));
    }
    let mut failures = Vec::new();
    let mut pairs = 0;
    for (file, level) in files {
        let (versions, committed) = history(root, file);
        if committed == 0 {
            failures.push(format!(
                "{file} has no committed version in the git history: nothing to check it against"
            ));
        }
        let mut parsed: Vec<(String, Schema)> = Vec::new();
        for (name, text) in versions {
            match Schema::parse_str(&text) {
                Ok(s) => parsed.push((name, s)),
                // A version that does not parse cannot be checked: a failure, not a skip.
                Err(e) => failures.push(format!("{file} ({name}) does not parse: {e}")),
            }
        }
        for (i, (name, new)) in parsed.iter().enumerate().skip(1) {
            let earlier: Vec<&(String, Schema)> = match level {
                Compatibility::Backward => vec![&parsed[i - 1]],
                Compatibility::FullTransitive => parsed[..i].iter().collect(),
            };
            for (old_name, old) in earlier {
                pairs += 1;
                if let Err(e) = compatible(old, new, *level) {
                    failures.push(format!(
                        "{file} ({name}) is not {level:?}-compatible with {old_name}: {e}"
                    ));
                }
            }
        }
    }
    Ok((pairs, failures))
}

#[test]
fn every_schema_version_is_compatible_with_its_history() {
    let files: Vec<(&str, Compatibility)> = SchemaKind::ALL
        .iter()
        .map(|k| (k.file_name(), k.compatibility()))
        .collect();
    let (pairs, failures) = check_history(&repo_root(), &files).unwrap_or_else(|e| panic!("{e}"));
    // Zero pairs is possible only while no schema has changed since it was added.
    eprintln!("schema compatibility: {pairs} version pairs checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The history reader finds a change and its incompatibility in a scratch repository (two
/// commits of one schema, the second adding a field without a default), and refuses a
/// shallow clone of it.
#[test]
fn the_history_check_finds_a_committed_change_and_refuses_a_shallow_clone() {
    let scratch = std::env::temp_dir().join(format!(
        "fitstream-schema-history-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let repo = scratch.join("repo");
    std::fs::create_dir_all(repo.join("schemas")).expect("scratch dir");
    let run = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let file = "build-order.avsc";
    let v1 = SchemaKind::BuildOrder.text().to_owned();
    let mut json: serde_json::Value = serde_json::from_str(&v1).expect("json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "new_field", "type": "string"}));
    let v2 = serde_json::to_string_pretty(&json).expect("json");
    run(&repo, &["init", "-q"]);
    for (text, message) in [(&v1, "v1"), (&v2, "v2")] {
        std::fs::write(repo.join("schemas").join(file), text).expect("write");
        run(&repo, &["add", "schemas"]);
        run(&repo, &["commit", "-q", "-m", message]);
    }

    let files = [(file, Compatibility::Backward)];
    let (pairs, failures) = check_history(&repo, &files).expect("a full history");
    assert_eq!(pairs, 1);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("not Backward-compatible"),
        "{failures:?}"
    );

    let shallow = scratch.join("shallow");
    let url = format!("file://{}", repo.display());
    run(
        &scratch,
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            &shallow.to_string_lossy(),
        ],
    );
    let refused = check_history(&shallow, &files).expect_err("a shallow clone is refused");
    assert!(refused.contains("git fetch --unshallow"), "{refused}");

    let not_git = scratch.join("not-git");
    std::fs::create_dir_all(not_git.join("schemas")).expect("dir");
    std::fs::write(not_git.join("schemas").join(file), &v1).expect("write");
    assert!(check_history(&not_git, &files).is_err());
    std::fs::remove_dir_all(&scratch).ok();
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
