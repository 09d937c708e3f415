//! The token view and the landscape end to end: `generate --html` and `landscape` on the tiny
//! model (the page holds exactly the reports `--diagnostics jsonl` prints), bad input refused
//! with nothing written, and every page opened in a real browser (headless Chromium): it must
//! draw without a console message, with one element per token or point (the pages shipped in
//! docs/views/ included). Screenshots go to `target/view-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use infogravity_engine::view::{self, landscape, tokens};

mod common;
use common::{run, tiny};

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("views")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn data(path: &Path) -> serde_json::Value {
    view::read_data(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `generate --html` with --compare and a batch: two runs of four sequences, each holding the
/// reports the JSON-lines diagnostics of the same run print.
fn token_page(model: &str, dir: &Path) -> PathBuf {
    let page = dir.join("tokens.html");
    let (ok, out, err) = run(&[
        "generate",
        "hello",
        "one two",
        "--samples",
        "2",
        "--compare",
        "--model",
        model,
        "--max-tokens",
        "10",
        "--tstar",
        "--diagnostics",
        "jsonl",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let d = data(&page);
    let runs = d["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["label"].as_str(), runs[1]["label"].as_str()),
        (Some("plain"), Some("gravity"))
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for run in runs {
        let seqs = run["sequences"].as_array().unwrap();
        assert_eq!(seqs.len(), 4);
        for (r, s) in seqs.iter().enumerate() {
            assert_eq!(s["prompt"], r / 2);
            assert_eq!(s["seed"], r);
            let mine: Vec<&serde_json::Value> = lines
                .iter()
                .filter(|l| l["run"] == run["label"] && l["row"] == r)
                .collect();
            let steps = s["steps"].as_array().unwrap();
            assert_eq!(steps.len(), mine.len(), "run {} row {r}", run["label"]);
            for (st, l) in steps.iter().zip(mine) {
                assert_eq!(st["token"], l["token"]);
                assert_eq!(st["regime"], l["regime"]);
                assert_eq!(st["flags"], l["interventions"]);
                // Every number the JSON lines print (the page keeps 5 decimals).
                for k in [
                    "entropy",
                    "varentropy",
                    "p_max",
                    "temperature",
                    "potential",
                    "void_score",
                    "black_hole_score",
                    "t_star",
                    "phase_distance",
                ] {
                    let (a, b) = (st[k].as_f64().unwrap(), l[k].as_f64().unwrap());
                    assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{k}: {a} vs {b}");
                }
            }
        }
    }
    page
}

/// `landscape` over a prompt file, two positions along each answer.
fn landscape_page(model: &str, dir: &Path) -> (PathBuf, usize) {
    let prompts = dir.join("prompts.txt");
    std::fs::write(
        &prompts,
        "# comment\nhello\none two\n\nthree four five\nsix\nseven eight\nnine ten\n",
    )
    .unwrap();
    let (svg, html) = (dir.join("land.svg"), dir.join("land.html"));
    let land = |svg: &Path, html: &Path| {
        run(&[
            "landscape",
            "--model",
            model,
            "--prompts",
            prompts.to_str().unwrap(),
            "--along",
            "2",
            "--max-tokens",
            "4",
            "--epochs",
            "200",
            "--svg",
            svg.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ])
    };
    let (ok, out, err) = land(&svg, &html);
    assert!(ok, "{err}");
    assert!(out.starts_with("6 queries, "), "{out}");
    assert!(out.contains("neighbourhoods kept: "), "{out}");
    let d = data(&html);
    let points = d["points"].as_array().unwrap().len();
    assert!(out.contains(&format!(", {points} points")), "{out}");
    assert!((6..=18).contains(&points), "{points}");
    assert_eq!(d["queries"][0]["label"], "hello");
    // The SVG draws every point (a filled and an outlined circle each).
    let s = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(s.matches("<circle").count(), 2 * points);
    // Deterministic: the same run again gives the same page.
    let again = dir.join("again.html");
    let (ok, _, err) = land(&dir.join("again.svg"), &again);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&html).unwrap(),
        std::fs::read(&again).unwrap()
    );
    (html, points)
}

#[test]
fn views_from_the_cli_hold_what_the_processor_reported() {
    let Some(dir) = tiny() else { return };
    let out = tmp("cli");
    token_page(dir.to_str().unwrap(), &out);
    landscape_page(dir.to_str().unwrap(), &out);
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let Some(model) = tiny() else { return };
    let m = model.to_str().unwrap();
    let dir = tmp("bad");
    let (svg, html) = (dir.join("x.svg"), dir.join("x.html"));
    let go = |extra: &[&str]| {
        let mut a = vec![
            "landscape",
            "--model",
            m,
            "--svg",
            svg.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let empty = file("empty.txt", "\n# only a comment\n\n");
    let (ok, _, err) = go(&["--prompts", &empty]);
    assert!(
        !ok && err.contains("0 queries") && err.contains("at least 4"),
        "{err}"
    );
    let one = file("one.txt", "hello\n");
    let (ok, _, err) = go(&["--prompts", &one]);
    assert!(!ok && err.contains("1 query"), "{err}");
    let bank = file("bank.jsonl", "{\"id\": 0, \"question\": \"q\"}\n");
    let (ok, _, err) = go(&["--bank", &bank]);
    assert!(!ok && err.contains("bank.jsonl:1"), "{err}");
    let (ok, _, err) = go(&["--prompts", dir.join("missing.txt").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.txt"), "{err}");
    let four = file("four.txt", "a\nb\nc\nd\n");
    let (ok, _, err) = go(&["--prompts", &four, "--perplexity", "0"]);
    assert!(!ok && err.contains("perplexity"), "{err}");
    let (ok, _, err) = run(&[
        "landscape",
        "--model",
        m,
        "--prompts",
        &four,
        "--svg",
        dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("is a directory"), "{err}");
    let nowhere = dir.join("no/such/folder/x.html");
    let (ok, _, err) = run(&[
        "landscape",
        "--model",
        m,
        "--prompts",
        &four,
        "--html",
        nowhere.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("folder does not exist"), "{err}");
    // generate --html checks its path before the model runs.
    for (path, why) in [
        (dir.to_str().unwrap(), "is a directory"),
        (nowhere.to_str().unwrap(), "folder does not exist"),
    ] {
        let (ok, _, err) = run(&["generate", "x", "--model", m, "--html", path]);
        assert!(!ok && err.contains(why), "{err}");
    }
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".txt") && !n.ends_with(".jsonl"))
        .collect();
    assert!(left.is_empty(), "files written by failed runs: {left:?}");
}

/// Chromium's binary, or None (skipped outside CI, a failure under CI).
fn chromium() -> Option<String> {
    let found = std::env::var("IG_CHROMIUM")
        .ok()
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(String::from))
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        eprintln!("SKIPPED: no Chromium (apt-get install chromium; .ci/run installs it)");
        assert!(std::env::var_os("CI").is_none(), "CI must provide Chromium");
    }
    found
}

/// Open `page` headless: the DOM after its scripts ran, and the console messages. A
/// screenshot goes to target/view-screenshots/<name>.png.
fn open(browser: &str, page: &Path, name: &str) -> (String, Vec<String>) {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../view-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tmp(&format!("profile-{name}"));
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let common = |extra: &[String], hash: &str| {
        let mut a = vec![
            "120".to_string(),
            browser.to_string(),
            "--headless".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", profile.display()),
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            "--window-size=1300,1000".into(),
        ];
        a.extend_from_slice(extra);
        a.push(format!("{url}{hash}"));
        let o = Command::new("timeout")
            .args(&a)
            .output()
            .expect("run chromium");
        assert!(
            o.status.success(),
            "chromium failed on {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    // #selftest: the page also runs every colouring and hovers tokens, charts and points.
    let o = common(&["--dump-dom".into()], "#selftest");
    let console: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    let shot = shots.join(format!("{name}.png"));
    common(&[format!("--screenshot={}", shot.display())], "");
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

fn check_page(browser: &str, page: &Path, name: &str, element: &str, attr: &str, n: usize) {
    let (dom, console) = open(browser, page, name);
    assert!(console.is_empty(), "{name}: console messages: {console:#?}");
    assert!(
        dom.contains("data-status=\"ok\""),
        "{name}: the page did not finish drawing"
    );
    assert!(
        dom.contains("data-selftest=\"ok\""),
        "{name}: recolouring or hovering failed"
    );
    assert!(
        dom.contains(&format!("data-{attr}=\"{n}\"")),
        "{name}: expected {n} {attr}"
    );
    assert_eq!(dom.matches(element).count(), n, "{name}: {element}");
}

/// Pages built through the library from synthetic data (no model needed): a batch with
/// every intervention flag, a multi-byte text, script-breaking text; a landscape of two
/// clusters with paths along answers.
fn synthetic_pages(dir: &Path) -> Vec<(PathBuf, &'static str, usize)> {
    use infogravity::{Regime, StepReport, flags};
    let report = |i: u32| StepReport {
        step: i,
        token: Some(i % 50),
        entropy: (i % 7) as f32 * 0.5,
        entropy_norm: 0.1,
        varentropy: 0.3,
        log_z: 2.0,
        p_max: 0.5,
        margin: 1.0,
        token_potential: (i % 5) as f32,
        temperature: 0.8,
        regime: Regime::ALL[(i / 10 % 3) as usize],
        void_score: (i % 10) as f32 / 10.0,
        black_hole_score: 0.2,
        flags: flags::NAMES[(i % 6) as usize].0,
        cycle_period: i % 3,
        ..Default::default()
    };
    let seq = |prompt, seed, n: u32| tokens::SeqView {
        prompt,
        seed,
        stop: "max_tokens".into(),
        pieces: (0..n)
            .map(|i| {
                if i % 9 == 0 {
                    " é</script>\n".into()
                } else {
                    format!(" w{i}")
                }
            })
            .collect(),
        reports: (0..n).map(report).collect(),
        t_star: vec![],
    };
    let cfg = infogravity::Config::default();
    let tv = tokens::TokenView {
        title: "synthetic".into(),
        model: "none".into(),
        prompts: vec!["p <b>1</b>".into(), "p2".into()],
        runs: vec![
            tokens::RunView::new("plain", "neutral", &cfg, vec![seq(0, 0, 30), seq(1, 1, 1)]),
            tokens::RunView::new(
                "gravity",
                "balanced",
                &cfg,
                vec![seq(0, 0, 45), seq(1, 1, 0)],
            ),
        ],
    };
    let tp = dir.join("synthetic-tokens.html");
    view::write_atomic(&tp, tv.html(50).unwrap().as_bytes()).unwrap();
    // Two clusters of 10 queries, 3 points along each answer.
    let mut vectors = vec![];
    let mut points = vec![];
    for q in 0..20 {
        for step in 0..3 {
            vectors.push(
                (0..64)
                    .map(|j| {
                        ((q / 10) as f32 * 5.0 * ((j % 2) as f32))
                            + ((q * 7 + step * 3 + j) % 11) as f32 * 0.05
                    })
                    .collect(),
            );
            points.push(landscape::Point {
                query: q,
                step,
                token: format!("t{step}"),
                potential: q as f32 * 0.1,
                void_score: 0.5,
                entropy: 1.0,
            });
        }
    }
    let coords = landscape::project(&vectors, 64, &landscape::TsneOptions::default())
        .unwrap()
        .coords;
    let land = landscape::Landscape {
        title: "synthetic".into(),
        model: "none".into(),
        queries: (0..20)
            .map(|q| landscape::Query {
                label: format!("query {q} </script>"),
                relation: Some(if q < 10 { "a" } else { "b" }.into()),
                answer: "x".into(),
                correct: Some(q % 4 != 0),
                mass: Default::default(),
            })
            .collect(),
        points,
        coords,
        colour: landscape::Quantity::Void,
        notes: vec![],
    };
    let lp = dir.join("synthetic-landscape.html");
    view::write_atomic(&lp, land.html().unwrap().as_bytes()).unwrap();
    vec![(tp, "tokens", 30 + 1 + 45), (lp, "points", 60)]
}

#[test]
fn pages_render_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let dir = tmp("browser");
    let mut pages = synthetic_pages(&dir);
    if let Some(model) = tiny() {
        let m = model.to_str().unwrap();
        let tp = token_page(m, &dir);
        let n: usize = data(&tp)["runs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["sequences"].as_array().unwrap())
            .map(|s| s["steps"].as_array().unwrap().len())
            .sum();
        pages.push((tp, "tokens", n));
        let (lp, points) = landscape_page(m, &dir);
        pages.push((lp, "points", points));
    }
    // The pages shipped in docs/views/ (from real runs) render too.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/views");
    for e in std::fs::read_dir(&shipped).expect("docs/views") {
        let page = e.unwrap().path();
        if page.extension().is_none_or(|x| x != "html") {
            continue;
        }
        let d = data(&page);
        if let Some(runs) = d["runs"].as_array() {
            let n = (runs.iter())
                .flat_map(|r| r["sequences"].as_array().unwrap())
                .map(|s| s["steps"].as_array().unwrap().len())
                .sum();
            pages.push((page, "tokens", n));
        } else {
            let n = d["points"].as_array().expect("a landscape page").len();
            pages.push((page, "points", n));
        }
    }
    for (page, attr, n) in &pages {
        let name = page.file_stem().unwrap().to_str().unwrap();
        let element = if *attr == "tokens" {
            "<span class=\"tok"
        } else {
            "<circle class=\"pt"
        };
        check_page(&browser, page, name, element, attr, *n);
    }
}
