//! The content table of the reference engine's vocabulary (`infogravity::ContentTable`): each
//! token's decoded piece judged by `infogravity::processor::is_content_piece`.

use crate::Engine;
use infogravity::{ContentTable, Result};

/// The content table of every token of `e`'s vocabulary (one decode per token, once).
pub fn content_table(e: &Engine) -> Result<ContentTable> {
    let pieces = (0..e.lm.info().vocab as u32)
        .map(|t| e.decode(&[t]))
        .collect::<Result<Vec<String>>>()?;
    Ok(ContentTable::from_pieces(pieces))
}
