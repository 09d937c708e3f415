//! Output several commands share: the per-token diagnostics of a generation (table or JSON
//! lines), the names of the interventions in a report, and progress bars.
//!
//! Regime and flag names are the core's (`Regime::name`, `infogravity::flags::NAMES`): the
//! processor, the C constants, the evaluation and this CLI print the same words.

use std::io::Write;

use infogravity::StepReport;
use infogravity_engine as engine;

use crate::CliError;
use crate::args::Diagnostics;

/// The names of the flags set in `bits`, in bit order (the `interventions` of a row).
pub fn interventions(bits: u32) -> Vec<&'static str> {
    infogravity::flags::NAMES
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name)
        .collect()
}

/// Per-token diagnostics of one generated sequence (`row` of run `label`).
pub fn diagnostics(
    out: &mut impl Write,
    eng: &engine::Engine,
    format: Diagnostics,
    label: &str,
    row: usize,
    g: &engine::Generation,
) -> Result<(), CliError> {
    let piece = |r: &StepReport| {
        r.token
            .map(|t| eng.decode(&[t]).unwrap_or_default())
            .unwrap_or_default()
    };
    let tstar = |i: usize| g.t_star.get(i).copied();
    match format {
        Diagnostics::Table => {
            write!(out, "{}", infogravity::report::table_header())?;
            if !g.t_star.is_empty() {
                write!(out, " {:>6} {:>8}", "T*", "ln T/T*")?;
            }
            writeln!(out, "  interventions")?;
            for (i, r) in g.reports.iter().enumerate() {
                write!(out, "{}", infogravity::report::table_cells(i, &piece(r), r))?;
                if let Some(ts) = tstar(i) {
                    write!(out, " {ts:>6.3} {:>8.3}", (r.temperature / ts).ln())?;
                }
                writeln!(out, "  {}", infogravity::flags::describe(r.flags, ","))?;
            }
        }
        Diagnostics::Jsonl => {
            for (i, r) in g.reports.iter().enumerate() {
                let mut j = serde_json::json!({
                    "run": label, "row": row, "step": i, "token": r.token,
                    "text": r.token.map(|_| piece(r)),
                    "entropy": r.entropy, "varentropy": r.varentropy, "p_max": r.p_max,
                    "temperature": r.temperature, "potential": r.token_potential,
                    "regime": r.regime.name(), "void_score": r.void_score,
                    "black_hole_score": r.black_hole_score,
                    "interventions": interventions(r.flags),
                });
                if let Some(ts) = tstar(i) {
                    j["t_star"] = serde_json::json!(ts);
                    j["phase_distance"] = serde_json::json!((r.temperature / ts).ln());
                }
                writeln!(out, "{j}")?;
            }
        }
        Diagnostics::None => {}
    }
    Ok(())
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
pub fn progress(len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}, eta {{eta}}] {{msg}}"
        ))
        .expect("a valid template"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interventions_are_the_core_names_in_bit_order() {
        use infogravity::flags;
        assert!(interventions(0).is_empty());
        let bits = flags::CYCLE_PENALTY | flags::ANCHOR | flags::FULL_PASS;
        assert_eq!(
            interventions(bits),
            ["anchor", "cycle-penalty", "full-pass"]
        );
        assert_eq!(interventions(bits).join(","), flags::describe(bits, ","));
    }
}
