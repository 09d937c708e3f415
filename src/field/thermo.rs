//! Temperature-dependent field quantities (docs/DESIGN.md §1 "Further field quantities"; the phase picture of Arnold et al., arXiv:2405.17088):
//! the heat capacity C(T) = Var_{p_T}(z)/T², the per-token critical temperature
//! T* = argmax_T C(T), the phase distance ln(T/T*), and Jensen–Shannon divergences between the
//! distributions at two temperatures. Exact f64 two-pass code: these run once per analysed row,
//! never on the per-token path.

/// Entropy (nats), and Var(z) under p_T = softmax(z/T).
fn moments(z: &[f32], t: f64) -> (f64, f64) {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for &x in z {
        let d = (x as f64 - m) / t;
        let e = d.exp();
        if e > 0.0 {
            s0 += e;
            s1 += e * d;
            s2 += e * d * d;
        }
    }
    let mean = s1 / s0;
    let var_scaled = (s2 / s0 - mean * mean).max(0.0); // Var(z/T)
    (s0.ln() - mean, var_scaled * t * t)
}

/// H(p_T) in nats.
pub fn entropy_at(z: &[f32], t: f64) -> f64 {
    moments(z, t).0
}

/// C(T) = Var_{p_T}(z) / T² (the heat capacity; at T = 1 it is the varentropy).
pub fn heat_capacity(z: &[f32], t: f64) -> f64 {
    moments(z, t).1 / (t * t)
}

/// A log-spaced grid of `n` temperatures over [lo, hi].
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let n = n.max(2);
    (0..n)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// T* = argmax C(T) over a log grid on [lo, hi] refined by golden-section search in log T
/// around the best grid point. Returns (T*, C(T*)). Exact f64 (about 50 passes over `z`); see
/// [`CriticalTemperature`] for the per-token path.
pub fn critical_temperature(z: &[f32], lo: f64, hi: f64) -> (f64, f64) {
    argmax_log(|t| heat_capacity(z, t), lo, hi)
}

/// Maximise `c(T)` over [lo, hi]: 24 log-spaced grid points, then golden-section search in
/// log T on the bracket around the best one (24 iterations, one evaluation each: the bracket
/// shrinks to 1e-5 of a grid step). A multi-peaked C(T) yields its highest grid peak.
fn argmax_log(mut c: impl FnMut(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
    let grid = log_grid(lo, hi, 24);
    let (mut bi, mut bc) = (0, f64::NEG_INFINITY);
    for (i, &t) in grid.iter().enumerate() {
        let v = c(t);
        if v > bc {
            (bi, bc) = (i, v);
        }
    }
    let (mut a, mut b) = (
        grid[bi.saturating_sub(1)].ln(),
        grid[(bi + 1).min(grid.len() - 1)].ln(),
    );
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (b - g * (b - a), a + g * (b - a));
    let (mut f1, mut f2) = (c(x1.exp()), c(x2.exp()));
    for _ in 0..24 {
        if f1 > f2 {
            (b, x2, f2) = (x2, x1, f1);
            x1 = b - g * (b - a);
            f1 = c(x1.exp());
        } else {
            (a, x1, f1) = (x1, x2, f2);
            x2 = a + g * (b - a);
            f2 = c(x2.exp());
        }
    }
    let (t, v) = if f1 > f2 { (x1, f1) } else { (x2, f2) };
    if v >= bc {
        (t.exp(), v)
    } else {
        (grid[bi], bc)
    }
}

/// T* per token, on the hot-path kernel: C(T) is the varentropy of softmax(z/T), measured by
/// [`super::measure`] on a scaled copy of the row (relative error ≤ ~1e-5, see the kernel's
/// bounds). About 50 kernel passes plus the scaling: ~2 ms for V = 49,152 on the reference
/// machine, against ~25 ms for the exact f64 [`critical_temperature`]. The scratch row is
/// allocated once and reused.
#[derive(Debug, Default)]
pub struct CriticalTemperature {
    scaled: Vec<f32>,
}

impl CriticalTemperature {
    /// (T*, C(T*)) of `z` over [lo, hi]; NaN when the row has no finite logit.
    pub fn find(&mut self, z: &[f32], lo: f64, hi: f64) -> (f64, f64) {
        self.scaled.resize(z.len(), 0.0);
        let scaled = &mut self.scaled;
        argmax_log(
            |t| {
                let inv = (1.0 / t) as f32;
                for (d, &x) in scaled.iter_mut().zip(z) {
                    *d = x * inv;
                }
                super::measure(&scaled[..]).map_or(f64::NAN, |f| f.varentropy)
            },
            lo,
            hi,
        )
    }
}

/// Jensen–Shannon divergence (nats, in [0, ln 2]) between softmax(z1/t1) and softmax(z2/t2).
pub fn js_divergence(z1: &[f32], t1: f64, z2: &[f32], t2: f64) -> f64 {
    let logp = |z: &[f32], t: f64| -> Vec<f64> {
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m / t
            + z.iter()
                .map(|&x| ((x as f64 - m) / t).exp())
                .sum::<f64>()
                .ln();
        z.iter().map(|&x| x as f64 / t - lse).collect()
    };
    let (lp, lq) = (logp(z1, t1), logp(z2, t2));
    let mut js = 0.0;
    for (&a, &b) in lp.iter().zip(&lq) {
        let (p, q) = (a.exp(), b.exp());
        let m = 0.5 * (p + q);
        if m > 0.0 {
            let lm = m.ln();
            if p > 0.0 {
                js += 0.5 * p * (a - lm);
            }
            if q > 0.0 {
                js += 0.5 * q * (b - lm);
            }
        }
    }
    js.clamp(0.0, std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_capacity_at_one_is_the_varentropy() {
        let z: Vec<f32> = (0..50).map(|i| ((i * 7) % 13) as f32 * 0.4).collect();
        let f = super::super::reference::measure_f64(&z).unwrap();
        assert!((heat_capacity(&z, 1.0) - f.varentropy).abs() < 1e-9);
        assert!((entropy_at(&z, 1.0) - f.entropy).abs() < 1e-9);
    }

    #[test]
    fn two_level_system_has_the_closed_form_peak() {
        // Two states a gap Δ apart: C(T) = (Δ/T)² e^{Δ/T} / (1 + e^{Δ/T})² / T²·T² → the
        // Schottky peak of x² eˣ/(1+eˣ)² at x = Δ/T ≈ 2.3994.
        let d = 3.0f32;
        let (t, _) = critical_temperature(&[d, 0.0], 0.05, 20.0);
        // Here C(T) = Var(z)/T² = Δ²·p(1−p)/T², maximised where x²·eˣ/(1+eˣ)² peaks, x = Δ/T.
        let x = d as f64 / t;
        assert!((x - 2.3994).abs() < 1e-3, "x = {x}");
        let (tf, _) = CriticalTemperature::default().find(&[d, 0.0], 0.05, 20.0);
        assert!(
            (d as f64 / tf - 2.3994).abs() < 1e-3,
            "fast x = {}",
            d as f64 / tf
        );
    }

    #[test]
    fn fast_critical_temperature_agrees_with_the_exact_one() {
        let mut ct = CriticalTemperature::default();
        let mut rng = crate::sampler::Rng::new(7);
        for spread in [0.5f32, 3.0, 12.0, 40.0] {
            let z: Vec<f32> = (0..5000)
                .map(|_| {
                    let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                    spread * u * u * u
                })
                .collect();
            let (te, ce) = critical_temperature(&z, 0.02, 4.0);
            let (tf, cf) = ct.find(&z, 0.02, 4.0);
            assert!(
                (tf / te - 1.0).abs() < 1e-3,
                "spread {spread}: {tf} vs {te}"
            );
            assert!(
                (cf / ce - 1.0).abs() < 1e-4,
                "spread {spread}: C {cf} vs {ce}"
            );
        }
    }

    #[test]
    fn js_is_a_bounded_divergence() {
        let z = [2.0f32, 1.0, 0.0, -1.0];
        assert!(js_divergence(&z, 1.0, &z, 1.0).abs() < 1e-12);
        let a = js_divergence(&z, 0.5, &z, 1.0);
        let b = js_divergence(&z, 1.0, &z, 0.5);
        assert!((a - b).abs() < 1e-12 && a > 0.0);
        let far = js_divergence(&[50.0, 0.0], 1.0, &[0.0, 50.0], 1.0);
        assert!((far - std::f64::consts::LN_2).abs() < 1e-9);
        // Small ΔT: JSD ≈ Fisher·ΔT²/8 with Fisher information Var(z)/T⁴ in T.
        let (t, dt) = (1.0, 1e-3);
        let want = heat_capacity(&z, t) / (t * t) * dt * dt / 8.0;
        let got = js_divergence(&z, t, &z, t + dt);
        assert!((got / want - 1.0).abs() < 0.01, "{got} vs {want}");
    }
}
