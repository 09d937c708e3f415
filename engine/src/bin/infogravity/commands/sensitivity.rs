//! `infogravity sensitivity`: prompt sensitivity — the next-token field of a query against
//! its rewordings: JS divergence, ΔΦ of the query's top tokens, and the field stability
//! S = 1 − mean JSD / ln 2 (docs/DESIGN.md §1).

use std::io::Write;

use infogravity::field::{self as fld, thermo};

use super::scan::answer_row;
use crate::CliError;
use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The query.
    query: String,
    /// A rewording of it (repeatable, at least one).
    #[arg(long = "paraphrase", required = true)]
    paraphrases: Vec<String>,
    /// Answer stem prefilled after the assistant prompt.
    #[arg(long, default_value = "")]
    stem: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How many of the query's most likely tokens ΔΦ is reported for.
const TOP: usize = 5;

/// One rewording: its text, JSD (nats) to the query's field, and ΔΦ per top token.
type Compared = (String, f64, Vec<(String, f64)>);

pub fn exec(a: Args) -> Result<(), CliError> {
    let mut eng = a.model.load()?;
    let z = answer_row(&mut eng, &a.query, &a.stem)?;
    let f0 = fld::measure(&z).map_err(infogravity::Error::from)?;
    let mut top: Vec<u32> = (0..z.len() as u32).collect();
    top.sort_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]));
    top.truncate(TOP);
    let mut out = std::io::stdout().lock();
    let mut jsds = vec![];
    let mut items: Vec<Compared> = vec![];
    for p in &a.paraphrases {
        let zp = answer_row(&mut eng, p, &a.stem)?;
        let fp = fld::measure(&zp).map_err(infogravity::Error::from)?;
        let jsd = thermo::js_divergence(&z, 1.0, &zp, 1.0);
        jsds.push(jsd);
        // ΔΦ(t) = Φ(t|Q') − Φ(t|Q) for Q's top tokens (docs/DESIGN.md §1).
        let dphi: Vec<(String, f64)> = top
            .iter()
            .map(|&t| {
                let d = fp.potential(zp[t as usize]) - f0.potential(z[t as usize]);
                (eng.decode(&[t]).unwrap_or_default(), d)
            })
            .collect();
        items.push((p.clone(), jsd, dphi));
    }
    let s = 1.0 - jsds.iter().sum::<f64>() / jsds.len() as f64 / std::f64::consts::LN_2;
    if a.json {
        let v = serde_json::json!({
            "query": a.query,
            "stability": s,
            "paraphrases": items.iter().map(|(p, j, d)| serde_json::json!({
                "text": p, "jsd_nats": j, "js_distance": j.sqrt(),
                "delta_phi": d.iter().map(|(t, x)| serde_json::json!({"token": t, "delta_phi": x})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
    } else {
        for (p, j, d) in &items {
            writeln!(
                out,
                "{p:?}\n  JSD {j:.4} nats (JS distance {:.4})",
                j.sqrt()
            )?;
            let parts: Vec<String> = d.iter().map(|(t, x)| format!("{t:?} {x:+.3}")).collect();
            writeln!(out, "  ΔΦ of the query's top tokens: {}", parts.join(", "))?;
        }
        writeln!(
            out,
            "field stability S = {s:.4}  (1 = the same field for every rewording)"
        )?;
    }
    Ok(())
}
