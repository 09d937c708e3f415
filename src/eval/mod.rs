//! The evaluation of the seeds' claims on a real model (`infogravity eval`, docs/EVALUATION.md).
//! [`metrics`] holds the statistics; [`qa`] the closed-book QA run that tests the void score.

pub mod loops;
pub mod metrics;
pub mod qa;
pub mod report;

use crate::error::{Error, Result};

/// Read a JSON-lines results file (absent = empty).
pub(crate) fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &'static str,
) -> Result<Vec<T>> {
    match std::fs::read_to_string(path) {
        Ok(t) => t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .map_err(|err| Error::CorruptFile {
                what,
                msg: format!("{}: {err} (delete it to start over)", path.display()),
            }),
        Err(_) => Ok(vec![]),
    }
}

/// Open a results file for appending.
pub(crate) fn append(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| Error::Io(format!("{}: {err}", path.display())))
}
