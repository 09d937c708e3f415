//! Bounded reads of the files the library loads (Prior, calibration). A loader names its size
//! cap; the file must be a regular file no larger than the cap, and is opened without blocking,
//! so a FIFO, a device such as `/dev/zero` or a huge file is a clear [`Error::Io`] — never a
//! hang or an out-of-memory abort.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The whole of `path`, a regular file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer appears; O_NONBLOCK makes it return
        // at once (regular files ignore the flag).
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Io(format!(
            "{what} {}: not a regular file",
            path.display()
        )));
    }
    if meta.len() > max {
        return Err(Error::Io(format!(
            "{what} {}: {} bytes is larger than the {max}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(meta.len() as usize)
        .map_err(|_| Error::OutOfMemory {
            what: "file contents",
            bytes: meta.len() as usize,
        })?;
    // `take` bounds the read even if the file grows meanwhile.
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(Error::Io(format!(
            "{what} {}: grew past the {max}-byte limit while being read",
            path.display()
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = std::env::temp_dir().join(format!("ig-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("small");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_bounded(&f, 5, "test").unwrap(), b"12345");
        let e = read_bounded(&f, 4, "test").unwrap_err().to_string();
        assert!(e.contains("larger than the 4-byte limit"), "{e}");
        let e = read_bounded(&dir, 100, "test").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        #[cfg(target_os = "linux")]
        {
            let e = read_bounded(Path::new("/dev/zero"), 100, "test")
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        let e = read_bounded(&dir.join("missing"), 100, "test").unwrap_err();
        assert!(matches!(e, Error::Io(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
