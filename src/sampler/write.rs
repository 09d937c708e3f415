//! The row writers of `Logits` mode. Each writes the edited row z' (edits overlaid) transformed,
//! converting with [`Logit::from_f32_finite`]: a finite logit stays finite in every element type
//! (z'/T saturates at the type's largest magnitude instead of overflowing to ±inf), a masked
//! (−inf) one stays masked, so the row a host receives always has at least one finite entry.

use super::Edit;
use crate::field::Logit;

/// Final logits: z'/T at and above τ, −inf below (only the edits are written when T = 1 and
/// nothing is cut).
pub(crate) fn final_logits<E: Logit>(row: &mut [E], edits: &[Edit], tau: f32, t: f32) {
    if t == 1.0 && tau == f32::NEG_INFINITY {
        for e in edits {
            row[e.id as usize] = E::from_f32_finite(e.new);
        }
        return;
    }
    let inv = 1.0 / t;
    let ninf = E::from_f32(f32::NEG_INFINITY);
    rewrite(row, edits, |z| {
        if z >= tau && z > f32::NEG_INFINITY {
            E::from_f32_finite(z * inv)
        } else {
            ninf
        }
    });
}

/// Greedy as logits: 0 at the maximum (every tie), −inf elsewhere.
pub(crate) fn greedy<E: Logit>(row: &mut [E], edits: &[Edit], max: f32) {
    let (zero, ninf) = (E::from_f32(0.0), E::from_f32(f32::NEG_INFINITY));
    rewrite(row, edits, |z| if z == max { zero } else { ninf });
}

/// Only `tok` remains possible.
pub(crate) fn force<E: Logit>(row: &mut [E], tok: u32) {
    let (zero, ninf) = (E::from_f32(0.0), E::from_f32(f32::NEG_INFINITY));
    for (i, e) in row.iter_mut().enumerate() {
        *e = if i as u32 == tok { zero } else { ninf };
    }
}

/// Replace every entry by `f(z')`, z' the entry with the edits overlaid.
#[inline]
fn rewrite<E: Logit>(row: &mut [E], edits: &[Edit], f: impl Fn(f32) -> E) {
    if edits.is_empty() {
        for e in row.iter_mut() {
            *e = f(e.to_f32());
        }
        return;
    }
    let mut k = 0;
    for (i, e) in row.iter_mut().enumerate() {
        let z = match edits.get(k) {
            Some(ed) if ed.id as usize == i => {
                k += 1;
                ed.new
            }
            _ => e.to_f32(),
        };
        *e = f(z);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn reduced_precision_rows_saturate_instead_of_overflowing() {
        // z/T beyond f16's range (65504) stays finite.
        let mut row = [
            f16::from_f32(60000.0),
            f16::from_f32(-60000.0),
            f16::NEG_INFINITY,
        ];
        final_logits(&mut row, &[], f32::NEG_INFINITY, 0.5);
        assert_eq!(row[0], f16::MAX);
        assert_eq!(row[1], f16::MIN);
        assert_eq!(row[2], f16::NEG_INFINITY);
        let mut row = [bf16::MAX, bf16::from_f32(1.0)];
        final_logits(&mut row, &[], f32::NEG_INFINITY, 1e-3);
        assert_eq!(row[0], bf16::MAX);
        let mut row = [f32::MAX / 2.0, 0.0];
        final_logits(&mut row, &[], f32::NEG_INFINITY, 1e-3);
        assert_eq!(row[0], f32::MAX);
    }

    #[test]
    fn edits_are_overlaid_in_every_writer() {
        let e = [Edit {
            id: 1,
            orig: 0.0,
            new: 5.0,
        }];
        let mut row = [1.0f32, 0.0, 2.0];
        greedy(&mut row, &e, 5.0);
        assert_eq!(row, [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
        let mut row = [1.0f32, 0.0, 2.0];
        final_logits(&mut row, &e, 1.5, 0.5);
        assert_eq!(row, [f32::NEG_INFINITY, 10.0, 4.0]);
        let mut row = [1.0f32, 0.0, 2.0];
        final_logits(&mut row, &e, f32::NEG_INFINITY, 1.0);
        assert_eq!(row, [1.0, 5.0, 2.0]);
    }
}
