//! The model's unembedding Γ (V × d: logits = Γ·h), read from its ONNX file, for concept
//! directions ([`infogravity::Concept`], SCIENCE.md §4.2).
//!
//! A model directory as `tools/gguf2onnx.py` writes it holds the head as one of:
//! - `lm_head.q` + `lm_head.scales` (+ `lm_head.corr`): MatMulNBits blocks, `[V, K/bs, bs·bits/8]`
//!   codes with the implicit zero point (8 for 4 bits, 128 for 8), f32 scales per block and the
//!   optional per-block minimum correction `[K/bs, V]`: γ_v[k] = (code − zero)·s + corr;
//! - `lm_head`: f32 `[d, V]` (x @ W^T, stored transposed);
//! - `token_embd`: f32 `[V, d]`, the tied embedding.
//!
//! Only the initializers' headers are parsed from `model.onnx` (a protobuf reader for the five
//! TensorProto fields used; the `onnx` protobuf crates would bring a protoc build step for
//! this); their bytes come from the external data file, or from the model file itself.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use infogravity::{Error, Result};

fn corrupt(msg: impl Into<String>) -> Error {
    Error::CorruptFile {
        what: "ONNX model",
        msg: msg.into(),
    }
}

/// A protobuf field: number and payload.
enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64> {
    let mut x = 0u64;
    for shift in (0..64).step_by(7) {
        let c = *b.get(*i).ok_or_else(|| corrupt("truncated varint"))?;
        *i += 1;
        x |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Ok(x);
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

/// The fields of one protobuf message, in order.
fn fields(b: &[u8]) -> Result<Vec<(u64, Val<'_>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let val = match key & 7 {
            0 => Val::Varint(varint(b, &mut i)?),
            1 | 5 => {
                i += if key & 7 == 1 { 8 } else { 4 };
                Val::Fixed
            }
            2 => {
                let n = varint(b, &mut i)? as usize;
                let end = i
                    .checked_add(n)
                    .filter(|&e| e <= b.len())
                    .ok_or_else(|| corrupt("field runs past its message"))?;
                let v = Val::Bytes(&b[i..end]);
                i = end;
                v
            }
            w => return Err(corrupt(format!("unsupported wire type {w}"))),
        };
        out.push((key >> 3, val));
    }
    if i != b.len() {
        return Err(corrupt("message truncated"));
    }
    Ok(out)
}

/// An initializer: name, shape, element type and where its bytes are.
#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    dims: Vec<u64>,
    dtype: u64,
    /// Inline bytes (offset, length within the model file buffer), or external (file, offset,
    /// length).
    data: Data,
}

#[derive(Debug, Clone)]
enum Data {
    Inline(Vec<u8>),
    External {
        file: String,
        offset: u64,
        length: u64,
    },
}

const FLOAT: u64 = 1;
const UINT8: u64 = 2;

fn tensor(b: &[u8]) -> Result<Tensor> {
    let (mut name, mut dims, mut dtype, mut raw, mut ext) = (None, vec![], 0, None, vec![]);
    for (f, v) in fields(b)? {
        match (f, v) {
            (1, Val::Varint(d)) => dims.push(d),
            (1, Val::Bytes(p)) => {
                let mut i = 0;
                while i < p.len() {
                    dims.push(varint(p, &mut i)?);
                }
            }
            (2, Val::Varint(t)) => dtype = t,
            (8, Val::Bytes(s)) => name = Some(String::from_utf8_lossy(s).into_owned()),
            (9, Val::Bytes(r)) => raw = Some(r.to_vec()),
            (13, Val::Bytes(e)) => {
                let (mut k, mut val) = (String::new(), String::new());
                for (g, w) in fields(e)? {
                    if let Val::Bytes(s) = w {
                        let s = String::from_utf8_lossy(s).into_owned();
                        match g {
                            1 => k = s,
                            2 => val = s,
                            _ => {}
                        }
                    }
                }
                ext.push((k, val));
            }
            _ => {}
        }
    }
    let name = name.ok_or_else(|| corrupt("an initializer has no name"))?;
    let data = match raw {
        Some(r) => Data::Inline(r),
        None => {
            let get = |k: &str| ext.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
            let num = |k: &str| -> Result<u64> {
                match get(k) {
                    None => Ok(0),
                    Some(v) => v
                        .parse()
                        .map_err(|_| corrupt(format!("{name}: external {k} {v:?}"))),
                }
            };
            let file = get("location")
                .ok_or_else(|| corrupt(format!("{name}: neither raw nor external data")))?;
            Data::External {
                file,
                offset: num("offset")?,
                length: num("length")?,
            }
        }
    };
    Ok(Tensor {
        name,
        dims,
        dtype,
        data,
    })
}

/// Every initializer of the model's graph.
fn initializers(model: &[u8]) -> Result<Vec<Tensor>> {
    let graph = fields(model)?
        .into_iter()
        .find_map(|(f, v)| match (f, v) {
            (7, Val::Bytes(g)) => Some(g),
            _ => None,
        })
        .ok_or_else(|| corrupt("no graph"))?;
    fields(graph)?
        .into_iter()
        .filter_map(|(f, v)| match (f, v) {
            (5, Val::Bytes(t)) => Some(tensor(t)),
            _ => None,
        })
        .collect()
}

/// The bytes of `t` (external data read from `dir`), checked to be `want` bytes.
fn bytes(dir: &Path, t: &Tensor, want: u64) -> Result<Vec<u8>> {
    let data = match &t.data {
        Data::Inline(r) => r.clone(),
        Data::External {
            file,
            offset,
            length,
        } => {
            if file.contains('/') || file.contains('\\') || file == ".." {
                return Err(corrupt(format!("{}: external file {file:?}", t.name)));
            }
            let len = if *length == 0 { want } else { *length };
            if len != want {
                return Err(corrupt(format!("{}: {len} bytes, expected {want}", t.name)));
            }
            let path = dir.join(file);
            let mut f = std::fs::File::open(&path)
                .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            let mut buf = vec![0u8; len as usize];
            f.seek(SeekFrom::Start(*offset))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|e| Error::Io(format!("{}: {}: {e}", path.display(), t.name)))?;
            buf
        }
    };
    if data.len() as u64 != want {
        return Err(corrupt(format!(
            "{}: {} bytes, expected {want}",
            t.name,
            data.len()
        )));
    }
    Ok(data)
}

fn f32s(b: Vec<u8>) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// How the head is stored.
enum Head {
    /// `[V, d]` row-major.
    Rows(Vec<f32>),
    /// `[d, V]` row-major (x @ W^T).
    Cols(Vec<f32>),
    /// MatMulNBits blocks.
    Blocks {
        codes: Vec<u8>,
        scales: Vec<f32>,
        corr: Option<Vec<f32>>,
        bits: usize,
        bs: usize,
    },
}

/// The unembedding of a model: V rows of d floats, dequantised on demand.
pub struct Unembedding {
    pub vocab: usize,
    pub dim: usize,
    head: Head,
}

impl Unembedding {
    /// Read the head of `dir/model.onnx` (V and d from the model's `model.json`).
    pub fn load(dir: &Path, vocab: usize, dim: usize) -> Result<Unembedding> {
        let path = dir.join("model.onnx");
        let model =
            std::fs::read(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let inits = initializers(&model)?;
        let find = |n: &str| inits.iter().find(|t| t.name == n);
        let shape = |t: &Tensor, dims: &[u64], dtype: u64| -> Result<()> {
            if t.dims != dims || t.dtype != dtype {
                return Err(corrupt(format!(
                    "{}: shape {:?} type {}, expected {dims:?} type {dtype}",
                    t.name, t.dims, t.dtype
                )));
            }
            Ok(())
        };
        let (v, d) = (vocab as u64, dim as u64);
        let head = if let Some(q) = find("lm_head.q") {
            let [_, nblk, blob] = q.dims[..] else {
                return Err(corrupt(format!("lm_head.q: shape {:?}", q.dims)));
            };
            if nblk == 0 || d % nblk != 0 {
                return Err(corrupt(format!("lm_head.q: {nblk} blocks for d = {d}")));
            }
            let bs = d / nblk;
            let bits = blob * 8 / bs;
            if !(bits == 4 || bits == 8) || blob * 8 != bs * bits {
                return Err(corrupt(format!("lm_head.q: {blob}-byte blocks of {bs}")));
            }
            shape(q, &[v, nblk, blob], UINT8)?;
            let s = find("lm_head.scales").ok_or_else(|| corrupt("lm_head.q without scales"))?;
            shape(s, &[v * nblk], FLOAT)?;
            let corr = match find("lm_head.corr") {
                Some(c) => {
                    shape(c, &[nblk, v], FLOAT)?;
                    Some(f32s(bytes(dir, c, 4 * nblk * v)?))
                }
                None => None,
            };
            Head::Blocks {
                codes: bytes(dir, q, v * nblk * blob)?,
                scales: f32s(bytes(dir, s, 4 * v * nblk)?),
                corr,
                bits: bits as usize,
                bs: bs as usize,
            }
        } else if let Some(w) = find("lm_head") {
            shape(w, &[d, v], FLOAT)?;
            Head::Cols(f32s(bytes(dir, w, 4 * d * v)?))
        } else if let Some(e) = find("token_embd") {
            shape(e, &[v, d], FLOAT)?;
            Head::Rows(f32s(bytes(dir, e, 4 * v * d)?))
        } else {
            return Err(corrupt(format!(
                "{}: no lm_head.q, lm_head or token_embd initializer (not a tools/gguf2onnx.py model?)",
                path.display()
            )));
        };
        Ok(Unembedding { vocab, dim, head })
    }

    /// γ_v into `out` (d values).
    pub fn row(&self, v: usize, out: &mut [f32]) {
        let d = self.dim;
        match &self.head {
            Head::Rows(w) => out.copy_from_slice(&w[v * d..(v + 1) * d]),
            Head::Cols(w) => {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = w[k * self.vocab + v];
                }
            }
            Head::Blocks {
                codes,
                scales,
                corr,
                bits,
                bs,
            } => {
                let nblk = d / bs;
                let blob = bs * bits / 8;
                let zero = if *bits == 4 { 8.0 } else { 128.0 };
                for b in 0..nblk {
                    let s = scales[v * nblk + b];
                    let c = corr.as_ref().map_or(0.0, |c| c[b * self.vocab + v]);
                    let block = &codes[(v * nblk + b) * blob..][..blob];
                    let o = &mut out[b * bs..(b + 1) * bs];
                    if *bits == 8 {
                        for (x, &q) in o.iter_mut().zip(block) {
                            *x = (q as f32 - zero) * s + c;
                        }
                    } else {
                        for (j, &q) in block.iter().enumerate() {
                            o[2 * j] = ((q & 15) as f32 - zero) * s + c;
                            o[2 * j + 1] = ((q >> 4) as f32 - zero) * s + c;
                        }
                    }
                }
            }
        }
    }
}

/// The final hidden state recovered from a row of logits (SCIENCE.md §5: z = Γh, so
/// h = Γ⁺z): Γ restricted to `rows` evenly spaced tokens is fitted by least squares, its normal
/// matrix factorised once. Where the model's logits are exactly Γh (no bias, no soft-capping;
/// [`residual`] checks), any d independent rows determine h, so the subset loses nothing.
/// Cost: rows·d² once; rows·d + d² per row of logits (a few million multiply-adds for a 1.5B
/// model against its lm_head's V·d), d·(rows + d) floats held.
pub struct Recovery {
    dim: usize,
    vocab: usize,
    tokens: Vec<usize>,
    /// Γ's rows at `tokens`, row-major.
    gamma: Vec<f32>,
    /// Lower Cholesky factor of ΓᵀΓ over `tokens`.
    chol: Vec<f64>,
}

impl Recovery {
    /// Factorise Γ over `rows` (clamped to [d, V]) evenly spaced tokens.
    pub fn new(u: &Unembedding, rows: usize) -> Result<Recovery> {
        let (v, d) = (u.vocab, u.dim);
        let rows = rows.clamp(d, v);
        let tokens: Vec<usize> = (0..rows).map(|i| i * v / rows).collect();
        let mut gamma = vec![0f32; rows * d];
        for (g, &t) in gamma.chunks_exact_mut(d).zip(&tokens) {
            u.row(t, g);
        }
        let mut ata = vec![0f64; d * d];
        for g in gamma.chunks_exact(d) {
            for a in 0..d {
                let ga = g[a] as f64;
                for b in 0..=a {
                    ata[a * d + b] += ga * g[b] as f64;
                }
            }
        }
        for j in 0..d {
            let mut s = ata[j * d + j];
            for k in 0..j {
                s -= ata[j * d + k] * ata[j * d + k];
            }
            if s.is_nan() || s <= 0.0 {
                return Err(Error::InvalidArgument(
                    "unembedding: the sampled rows are rank-deficient".into(),
                ));
            }
            let l = s.sqrt();
            ata[j * d + j] = l;
            for i in j + 1..d {
                let mut s = ata[i * d + j];
                for k in 0..j {
                    s -= ata[i * d + k] * ata[j * d + k];
                }
                ata[i * d + j] = s / l;
            }
        }
        Ok(Recovery {
            dim: d,
            vocab: v,
            tokens,
            gamma,
            chol: ata,
        })
    }

    /// ĥ (d values) for the row of logits `z` (V values).
    pub fn hidden(&self, z: &[f32]) -> Result<Vec<f64>> {
        let d = self.dim;
        if z.len() != self.vocab {
            return Err(Error::SizeMismatch {
                what: "logits row",
                expected: self.vocab,
                got: z.len(),
            });
        }
        let mut h = vec![0f64; d];
        for (g, &t) in self.gamma.chunks_exact(d).zip(&self.tokens) {
            let zt = z[t] as f64;
            if !zt.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "logits row: token {t} is {zt}: the hidden state needs raw logits"
                )));
            }
            for (a, &ga) in h.iter_mut().zip(g) {
                *a += ga as f64 * zt;
            }
        }
        self.solve(&mut h);
        Ok(h)
    }

    /// x ← (Γ_SᵀΓ_S)⁻¹x: the two triangular solves with the Cholesky factor.
    fn solve(&self, x: &mut [f64]) {
        let (d, l) = (self.dim, &self.chol);
        for i in 0..d {
            for k in 0..i {
                x[i] -= l[i * d + k] * x[k];
            }
            x[i] /= l[i * d + i];
        }
        for i in (0..d).rev() {
            for k in i + 1..d {
                x[i] -= l[k * d + i] * x[k];
            }
            x[i] /= l[i * d + i];
        }
    }

    /// The linear probe θ·ĥ as a function of the logits: ĥ = (Γ_SᵀΓ_S)⁻¹Γ_Sᵀz_S, so
    /// θ·ĥ = Σ_{t∈S} w_t z_t with w_S = Γ_S(Γ_SᵀΓ_S)⁻¹θ — the terms of an
    /// [`infogravity::Probe`] (`rows` tokens and their weights). `theta` has d values.
    pub fn functional(&self, theta: &[f64]) -> Result<(Vec<u32>, Vec<f32>)> {
        let d = self.dim;
        if theta.len() != d {
            return Err(Error::SizeMismatch {
                what: "probe direction",
                expected: d,
                got: theta.len(),
            });
        }
        let mut c = theta.to_vec();
        self.solve(&mut c);
        let weights = self
            .gamma
            .chunks_exact(d)
            .map(|g| g.iter().zip(&c).map(|(&a, b)| a as f64 * b).sum::<f64>() as f32)
            .collect();
        Ok((self.tokens.iter().map(|&t| t as u32).collect(), weights))
    }
}

/// How exactly `u` explains a row of logits `z`: the final hidden state ĥ is recovered from
/// `rows` evenly spaced tokens ([`Recovery`]), then the relative residual ‖Γĥ − z‖ / ‖z − z̄‖
/// is measured over **every** token. A head read wrongly leaves a residual of order 1; a right
/// one leaves rounding (1e-5 and below for fp32 and 8-bit heads). Cost: rows·d² for the fit,
/// V·d for the residual.
pub fn residual(u: &Unembedding, z: &[f32], rows: usize) -> Result<f64> {
    let h = Recovery::new(u, rows)?.hidden(z)?;
    let v = u.vocab;
    let mut g = vec![0f32; u.dim];
    let mean = z.iter().map(|&x| x as f64).sum::<f64>() / v as f64;
    let (mut num, mut den) = (0f64, 0f64);
    for (t, &zt) in z.iter().enumerate() {
        u.row(t, &mut g);
        let fit: f64 = g.iter().zip(&h).map(|(&a, &b)| a as f64 * b).sum();
        num += (fit - zt as f64).powi(2);
        den += (zt as f64 - mean).powi(2);
    }
    Ok((num / den.max(f64::MIN_POSITIVE)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_dequantise_low_nibble_first() {
        // One token, d = 4, one 4-bit block of 4: codes 9, 7, 8, 15 packed two per byte.
        let u = Unembedding {
            vocab: 1,
            dim: 4,
            head: Head::Blocks {
                codes: vec![9 | (7 << 4), 8 | (15 << 4)],
                scales: vec![0.5],
                corr: Some(vec![0.25]),
                bits: 4,
                bs: 4,
            },
        };
        let mut out = [0f32; 4];
        u.row(0, &mut out);
        assert_eq!(out, [0.75, -0.25, 0.25, 3.75]);
        let u8 = Unembedding {
            vocab: 2,
            dim: 2,
            head: Head::Blocks {
                codes: vec![128, 130, 126, 129],
                scales: vec![2.0, 1.0],
                corr: None,
                bits: 8,
                bs: 2,
            },
        };
        u8.row(1, &mut out[..2]);
        assert_eq!(out[..2], [-2.0, 1.0]);
        // [d, V] storage reads column v.
        let cols = Unembedding {
            vocab: 3,
            dim: 2,
            head: Head::Cols(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        };
        cols.row(2, &mut out[..2]);
        assert_eq!(out[..2], [3.0, 6.0]);
    }

    #[test]
    fn the_hidden_state_is_recovered_from_its_logits() {
        // Γ: 40 tokens × 3 dims, pseudo-random; z = Γh for a known h.
        let (v, d) = (40, 3);
        let mut x = 12345u32;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let w: Vec<f32> = (0..v * d).map(|_| next()).collect();
        let u = Unembedding {
            vocab: v,
            dim: d,
            head: Head::Rows(w.clone()),
        };
        let h = [1.5f64, -2.0, 0.25];
        let z: Vec<f32> = w
            .chunks_exact(d)
            .map(|g| g.iter().zip(&h).map(|(&a, b)| a as f64 * b).sum::<f64>() as f32)
            .collect();
        // From d rows (the fewest) and from all of them.
        for rows in [d, v] {
            let got = Recovery::new(&u, rows).unwrap().hidden(&z).unwrap();
            for (a, b) in got.iter().zip(&h) {
                assert!((a - b).abs() < 1e-4, "{rows} rows: {got:?}");
            }
        }
        let rc = Recovery::new(&u, 2 * d).unwrap();
        assert!(rc.hidden(&z[1..]).is_err());
        let mut bad = z.clone();
        bad[0] = f32::NAN; // token 0 is always among the rows
        assert!(rc.hidden(&bad).is_err());
        // A rank-deficient head is refused.
        let flat = Unembedding {
            vocab: v,
            dim: d,
            head: Head::Rows((0..v * d).map(|i| (i / d) as f32).collect()),
        };
        assert!(Recovery::new(&flat, v).is_err());
        assert!(residual(&u, &z, v).unwrap() < 1e-5);
        // The probe θ·h as weights on the logits: the same number read from z.
        let theta = [0.5f64, 1.0, -2.0];
        let (tokens, weights) = rc.functional(&theta).unwrap();
        assert_eq!(tokens.len(), 2 * d);
        let read: f64 = tokens
            .iter()
            .zip(&weights)
            .map(|(&t, &w)| w as f64 * z[t as usize] as f64)
            .sum();
        let want: f64 = theta.iter().zip(&h).map(|(a, b)| a * b).sum();
        assert!((read - want).abs() < 1e-4, "{read} vs {want}");
        assert!(rc.functional(&theta[..2]).is_err());
    }

    #[test]
    fn protobuf_errors_are_errors() {
        assert!(initializers(&[0x3a, 0x05, 0x01]).is_err()); // graph field runs past the end
        assert!(initializers(&[]).is_err()); // no graph
        assert!(fields(&[0xff; 11]).is_err()); // an endless varint
    }
}
