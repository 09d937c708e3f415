//! Views of what the processor saw, for people rather than scripts: a generation token by token
//! ([`tokens`], `generate --html`) and the semantic landscape of a set of queries
//! ([`landscape`], `infogravity landscape`; seed 000 §3.1).
//!
//! Each view is one self-contained HTML file: the data as a JSON island
//! (`<script type="application/json">`), the page's own CSS and JavaScript inline, nothing
//! fetched at view time. The JavaScript only draws; every number it shows is computed here.
//! Files are written whole or not at all ([`write_atomic`]).

pub mod landscape;
pub mod tokens;

use std::io::Write;
use std::path::Path;

use infogravity::{Error, Result};

const COMMON_JS: &str = include_str!("common.js");

/// `template` with its `/*COMMON*/` placeholder replaced by the shared script (`common.js`),
/// and its `/*DATA*/` placeholder replaced by `data` as JSON that is safe inside a
/// `<script>` element: `<` is written `\u003c`, so no `</script>` or `<!--` in a token's text
/// can end the element early (JSON.parse reads the escape back).
pub(crate) fn fill(template: &str, data: &serde_json::Value) -> String {
    // The helpers every page shares (placed before the page's own script).
    let template = template.replacen("/*COMMON*/", COMMON_JS, 1);
    let json = serde_json::to_string(data)
        .expect("a serde_json::Value serialises")
        .replace('<', "\\u003c");
    let (head, tail) = template
        .split_once("/*DATA*/")
        .expect("the template has a data placeholder");
    let mut out = String::with_capacity(template.len() + json.len());
    out.push_str(head);
    out.push_str(&json);
    out.push_str(tail);
    out
}

/// The data island of a page written by [`fill`], parsed back (for tests and tools).
pub fn read_data(html: &str) -> Result<serde_json::Value> {
    let start = r#"<script type="application/json" id="data">"#;
    let from = html
        .find(start)
        .ok_or_else(|| Error::InvalidArgument("no data island in the page".into()))?
        + start.len();
    let len = html[from..]
        .find("</script>")
        .ok_or_else(|| Error::InvalidArgument("the data island is not closed".into()))?;
    serde_json::from_str(&html[from..from + len])
        .map_err(|e| Error::InvalidArgument(format!("the data island is not JSON: {e}")))
}

/// Write `bytes` to `path` whole or not at all: into a temporary file beside it, then renamed
/// over it. On any error the temporary file is removed and `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(io)
}

/// Check before any work is done that `path` (given as `flag`) can take a file: not a
/// directory, and its folder exists. A run that would only fail at the end fails at once.
pub fn check_output(flag: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{flag} {} is a directory",
            path.display()
        )));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if parent.is_some_and(|p| !p.is_dir()) {
        return Err(Error::InvalidArgument(format!(
            "{flag} {}: its folder does not exist",
            path.display()
        )));
    }
    Ok(())
}

/// A JSON number, or null when not finite (JSON has no NaN or infinity; the pages print "—").
pub(crate) fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// A float rounded to `digits` decimals (keeps the pages small; the data is for viewing).
pub(crate) fn round(x: f64, digits: i32) -> serde_json::Value {
    let s = 10f64.powi(digits);
    num((x * s).round() / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_island_survives_script_breaking_text() {
        let tpl = r#"<p><script type="application/json" id="data">/*DATA*/</script>"#;
        let v = serde_json::json!({"text": "</script><script>alert(1)</script><!-- \u{2028}"});
        let html = fill(tpl, &v);
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert_eq!(read_data(&html).unwrap(), v);
    }

    #[test]
    fn atomic_write_leaves_nothing_on_error() {
        let dir = std::env::temp_dir().join(format!("ig-view-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("a.html");
        write_atomic(&ok, b"x").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"x");
        // A directory in the way: the rename fails, no temporary file is left.
        let blocked = dir.join("sub");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(write_atomic(&blocked, b"y").is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
        assert!(write_atomic(&dir.join("missing/b.html"), b"z").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
