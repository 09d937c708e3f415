//! The f64 two-pass reference the fast kernel is tested against (slow; not for hot paths).

use super::{Field, FieldError, Logit};

/// Two passes in f64: the maximum, then Σe^{z−m}, E_p(z) and Var_p(z) with exact `exp`.
pub fn measure_f64<E: Logit>(row: &[E]) -> Result<Field, FieldError> {
    if row.is_empty() {
        return Err(FieldError::Empty);
    }
    let z: Vec<f64> = row.iter().map(|&x| x.to_f32() as f64).collect();
    if z.iter().any(|x| x.is_nan()) {
        return Err(FieldError::NaN);
    }
    if z.contains(&f64::INFINITY) {
        return Err(FieldError::PositiveInfinity);
    }
    let (mut m, mut arg) = (f64::NEG_INFINITY, 0usize);
    for (i, &x) in z.iter().enumerate() {
        if x > m {
            m = x;
            arg = i;
        }
    }
    if m == f64::NEG_INFINITY {
        return Err(FieldError::AllMasked);
    }
    let second = z
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != arg)
        .fold(f64::NEG_INFINITY, |a, (_, &b)| a.max(b));
    let s0: f64 = z.iter().map(|&x| (x - m).exp()).sum();
    let log_z = m + s0.ln();
    let p = |x: f64| (x - log_z).exp();
    let mean: f64 = z.iter().filter(|x| x.is_finite()).map(|&x| p(x) * x).sum();
    let var: f64 = z
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| p(x) * (x - mean) * (x - mean))
        .sum();
    Ok(Field {
        vocab: row.len(),
        max: m as f32,
        argmax: arg as u32,
        second: second as f32,
        log_z,
        entropy: (log_z - mean).max(0.0),
        varentropy: var,
    })
}
