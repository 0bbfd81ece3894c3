//! Logs as a pod's log collector or a file gets them: no colour codes when standard error is
//! not a terminal, and one JSON object per line with `--log-format json`.

use std::process::Command;

fn history(dir: &std::path::Path) -> std::path::PathBuf {
    let input = dir.join("h.csv");
    std::fs::write(
        &input,
        ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
         0,2019-10-01 00:00:00 UTC,cart,1,10,,acme,2.50,100,s-1\n\
         1,2019-10-01 00:05:00 UTC,purchase,1,10,,acme,2.50,100,s-1\n\
         2,2019-10-01 00:06:00 UTC,cart,2,10,,acme,-3.00,101,s-2\n",
    )
    .expect("written");
    input
}

/// `fitstream replay` of a small history with info logs; its standard error (a pipe).
fn replay_logs(extra: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!(
        "fitstream-logs-{}-{}",
        std::process::id(),
        extra.len()
    ));
    std::fs::create_dir_all(&dir).expect("a directory");
    let input = history(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args(extra)
        .args(["replay", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.join("out"))
        .env("RUST_LOG", "info")
        .env_remove("FITSTREAM_LOG_FORMAT")
        .output()
        .expect("fitstream runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(out.stderr).expect("UTF-8 logs")
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let logs = replay_logs(&[]);
    assert!(!logs.trim().is_empty(), "info logs are written");
    assert!(!logs.contains('\u{1b}'), "an escape code in: {logs:.400}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let logs = replay_logs(&["--log-format", "json"]);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "info logs are written");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
