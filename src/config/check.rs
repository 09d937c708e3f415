//! Range checks shared by the sections' `validate`: each error names the full key.

use crate::error::{Error, Result};

pub(super) fn oor<T>(key: &str, msg: &str) -> Result<T> {
    Err(Error::ConfigOutOfRange {
        key: key.into(),
        msg: msg.into(),
    })
}

pub(super) fn range(key: &str, x: f32, lo: f32, hi: f32) -> Result<()> {
    if x.is_finite() && x >= lo && x <= hi {
        Ok(())
    } else {
        oor(key, &format!("= {x} is outside [{lo}, {hi}]"))
    }
}

/// 0, or a finite value in [lo, hi] (a subnormal or tiny positive value is refused: it would
/// turn into an infinite 1/x downstream).
pub(super) fn zero_or_range(key: &str, x: f32, lo: f32, hi: f32) -> Result<()> {
    if x == 0.0 {
        Ok(())
    } else {
        range(key, x, lo, hi).map_err(|_| Error::ConfigOutOfRange {
            key: key.into(),
            msg: format!("= {x} must be 0 or within [{lo}, {hi}]"),
        })
    }
}

pub(super) fn open01(key: &str, x: f32) -> Result<()> {
    if x.is_finite() && x > 0.0 && x < 1.0 {
        Ok(())
    } else {
        oor(key, &format!("= {x} must be in (0, 1)"))
    }
}

pub(super) fn steps(key: &str, n: u32) -> Result<()> {
    if (1..=10_000).contains(&n) {
        Ok(())
    } else {
        oor(key, &format!("= {n} must be in [1, 10000]"))
    }
}
