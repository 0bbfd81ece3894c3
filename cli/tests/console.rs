//! The web console in a real browser: a replay of the REES46 excerpt, the console over its
//! outputs, headless Chromium (Debian's package, installed by `deploy/chromium.sh` when
//! missing) rendering each page. The rendered pages must show every label of the latest model
//! with its size, and every plant with the Released and Forecast quantities the JSON-lines
//! outputs add up to. Screenshots go to `<target>/tmp/console/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fitstream::commands::{self, InputFormat};
use fitstream::config::FitstreamConfig;
use rust_decimal::Decimal;
use serde_json::Value;

fn rees46() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/rees46/cosmetics-2019-10.csv"
    ))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

fn chromium() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/chromium.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run deploy/chromium.sh");
    assert!(
        out.status.success(),
        "deploy/chromium.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Chromium as the test drives it: headless, as root without its sandbox, a tall window.
fn browser(chromium: &str) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        // No --virtual-time-budget: it waits for the network to go quiet, and the page's
        // server-sent events never do. The dump is of the page as loaded.
        "--window-size=1280,2400",
    ]);
    c
}

fn dom(chromium: &str, url: &str) -> String {
    let out = browser(chromium)
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

fn screenshot(chromium: &str, url: &str, path: &Path) {
    let _ = std::fs::remove_file(path);
    let out = browser(chromium)
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    let png = std::fs::read(path).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot of {url} at {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `<tr id=...>` element of the DOM, whole.
fn row<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} in the page"));
    let len = dom[start..].find("</tr>").expect("row end");
    &dom[start..start + len]
}

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_latest_model_and_every_plant_as_the_outputs_say() {
    let chromium = chromium();
    let cfg = FitstreamConfig::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    commands::replay(&cfg, &rees46(), InputFormat::Rees46, &out).expect("replay");

    // What the outputs say, read here from the files, independently of the console.
    let t = &cfg.topics;
    let models = lines(&out.join(format!("{}.jsonl", t.segment_models)));
    let model = &models.last().expect("a segment model")["value"];
    let version = model["version"].as_i64().expect("version");
    let labels: Vec<(i64, String)> = model["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            (
                s["segment_id"].as_i64().expect("id"),
                s["label"].as_str().expect("label").to_owned(),
            )
        })
        .collect();
    let mut sizes = BTreeMap::new();
    for p in lines(&out.join(format!("{}.jsonl", t.segment_profiles))) {
        let v = &p["value"];
        if v["model_version"].as_i64() == Some(version) && v["retired"] == Value::Bool(false) {
            sizes.insert(
                v["segment_id"].as_i64().expect("id"),
                v["size"].as_i64().expect("size"),
            );
        }
    }
    let mut plants: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    let mut records = 0u64;
    let mut as_of = i64::MIN;
    for entry in std::fs::read_dir(&out).expect("outputs") {
        let path = entry.expect("entry").path();
        let topic = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !fitstream_console::View::wants(t, &topic) {
            continue;
        }
        for l in lines(&path) {
            records += 1;
            as_of = as_of.max(l["timestamp"].as_i64().unwrap_or(i64::MIN));
            if let Some(plant) = t.plant_of(&topic) {
                let v = &l["value"];
                let q: Decimal = v["quantity"]
                    .as_str()
                    .expect("quantity")
                    .parse()
                    .expect("decimal");
                let sums = plants.entry(plant).or_default();
                match v["request_state"].as_str() {
                    Some("Released") => sums.0 += q,
                    Some("Forecast") => sums.1 += q,
                    _ => {}
                }
            }
        }
    }
    assert!(
        !labels.is_empty() && !plants.is_empty(),
        "the replay made no model or no orders"
    );

    let addr = fitstream_console::spawn_on_directory(t.clone(), out.clone(), "127.0.0.1:0", vec![])
        .expect("serve the console");
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = reqwest::get(format!("{base}/status.json"))
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON");
        if status["records"].as_u64() == Some(records) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console read {status} of {records} records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let page = |path: &str| {
        let (chromium, url) = (chromium.clone(), format!("{base}{path}"));
        let shot = shots.join(format!("{}.png", path.trim_start_matches('/')));
        tokio::task::spawn_blocking(move || {
            screenshot(&chromium, &url, &shot);
            dom(&chromium, &url)
        })
    };

    let segments = page("/segments").await.expect("segments page");
    let stated = format!(
        "Data as of <time datetime=\"{0}\">{0}</time>",
        fitstream_contracts::EventTime(as_of)
    );
    assert!(
        segments.contains(&stated),
        "the page does not state its as-of time {stated}"
    );
    assert!(
        segments.contains(&format!("v{version}")),
        "model version {version} not shown"
    );
    for (id, label) in &labels {
        let r = row(&segments, &format!("segment-{id}"));
        assert!(
            r.contains(&format!(">{}<", escaped(label))),
            "label {label:?} not in {r}"
        );
        let size = sizes
            .get(id)
            .unwrap_or_else(|| panic!("no profile of segment {id}"));
        assert!(
            r.contains(&format!("class=\"n size\">{size}<")),
            "size {size} of {label:?} not in {r}"
        );
    }

    let orders = page("/orders").await.expect("orders page");
    for (plant, (released, forecast)) in &plants {
        let r = row(&orders, &format!("plant-{plant}"));
        assert!(
            r.contains(&format!("class=\"n released\">{released}<")),
            "{plant}: Released {released} not in {r}"
        );
        assert!(
            r.contains(&format!("class=\"n forecast\">{forecast}<")),
            "{plant}: Forecast {forecast} not in {r}"
        );
        assert!(
            orders.contains(&format!("{plant}: quantity per window")),
            "no chart for {plant}"
        );
    }

    let audiences = page("/audiences").await.expect("audiences page");
    assert!(audiences.contains("Download CSV"), "no CSV link");
    let health = page("/health").await.expect("health page");
    assert!(health.contains("Dead letters"), "no dead letters section");
    println!(
        "console: {} labels of model v{version} and {} plants as the outputs say; screenshots in {}",
        labels.len(),
        plants.len(),
        shots.display()
    );
}
