//! The element types a logits row may hold (f32, f16, bf16) and their conversions.

use half::{bf16, f16};

/// An element type a logits row may hold.
pub trait Logit: Copy + Send + Sync + 'static {
    /// Convert a block to f32 (`dst.len() == src.len()`).
    fn to_f32_block(src: &[Self], dst: &mut [f32]);
    /// Convert one value to f32.
    fn to_f32(self) -> f32;
    /// Convert from f32 (round to nearest).
    fn from_f32(v: f32) -> Self;
    /// Convert a value computed from finite logits (z/T, z + bias) to the nearest **finite**
    /// value of the type: results beyond the type's range saturate at its largest finite
    /// magnitude instead of becoming ±inf (f16 overflows at 65504). Never given NaN.
    fn from_f32_finite(v: f32) -> Self;
    /// True for f32, where blocks can be read without conversion.
    fn as_f32_slice(src: &[Self]) -> Option<&[f32]>;
    /// The row as f32 in place, for f32 rows.
    fn as_f32_slice_mut(src: &mut [Self]) -> Option<&mut [f32]>;
}

impl Logit for f32 {
    #[inline]
    fn to_f32_block(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[inline]
    fn from_f32_finite(v: f32) -> f32 {
        v.clamp(-f32::MAX, f32::MAX)
    }
    #[inline]
    fn as_f32_slice(src: &[f32]) -> Option<&[f32]> {
        Some(src)
    }
    #[inline]
    fn as_f32_slice_mut(src: &mut [f32]) -> Option<&mut [f32]> {
        Some(src)
    }
}

impl Logit for f16 {
    #[inline]
    fn to_f32_block(src: &[f16], dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        src.convert_to_f32_slice(dst)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline]
    fn from_f32(v: f32) -> f16 {
        f16::from_f32(v)
    }
    #[inline]
    fn from_f32_finite(v: f32) -> f16 {
        f16::from_f32(v.clamp(-f16::MAX.to_f32(), f16::MAX.to_f32()))
    }
    fn as_f32_slice(_: &[f16]) -> Option<&[f32]> {
        None
    }
    fn as_f32_slice_mut(_: &mut [f16]) -> Option<&mut [f32]> {
        None
    }
}

impl Logit for bf16 {
    #[inline]
    fn to_f32_block(src: &[bf16], dst: &mut [f32]) {
        // bf16 is the top half of an f32: a shift, which the compiler vectorises.
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline]
    fn from_f32(v: f32) -> bf16 {
        bf16::from_f32(v)
    }
    #[inline]
    fn from_f32_finite(v: f32) -> bf16 {
        bf16::from_f32(v.clamp(-bf16::MAX.to_f32(), bf16::MAX.to_f32()))
    }
    fn as_f32_slice(_: &[bf16]) -> Option<&[f32]> {
        None
    }
    fn as_f32_slice_mut(_: &mut [bf16]) -> Option<&mut [f32]> {
        None
    }
}
