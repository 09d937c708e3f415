//! `infogravity prior`: build a reference unigram Prior (for N(Q)) from text, or show one.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::CliError;
use crate::output::progress;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Count a tokenizer's tokens over text files into a Prior file (format: src/mass/prior.rs).
    Build(BuildArgs),
    /// Print a Prior file's header and most frequent tokens.
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// tokenizer.json of the model the Prior is for.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Where the text comes from (stored in the file; default: the file names and sizes).
    #[arg(long)]
    provenance: Option<String>,
    /// UTF-8 text files ("-" for standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ShowArgs {
    file: PathBuf,
    /// tokenizer.json to print token texts.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

/// How many of the most frequent tokens `prior show` lists.
const SHOW_TOP: usize = 10;

pub fn exec(a: Args) -> Result<(), CliError> {
    match a.cmd {
        Cmd::Build(b) => build(b),
        Cmd::Show(s) => show(s),
    }
}

fn load_tokenizer(p: &Path) -> Result<tokenizers::Tokenizer, CliError> {
    Ok(tokenizers::Tokenizer::from_file(p)
        .map_err(|e| infogravity::Error::Engine(format!("{}: {e}", p.display())))?)
}

fn build(a: BuildArgs) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let tok = load_tokenizer(&a.tokenizer)?;
    let v = tok.get_vocab_size(true);
    let mut counts = vec![0u32; v];
    let mut described = vec![];
    let mut total = 0u64;
    let bytes = a
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress(bytes, "bytes");
    for f in &a.files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read_to_string(f)
                .map_err(|e| infogravity::Error::Io(format!("{}: {e}", f.display())))?
        };
        described.push(format!("{} ({} bytes)", f.display(), text.len()));
        // Paragraph by paragraph: bounded memory, no tokens across blank lines.
        for para in text.split("\n\n") {
            bar.inc(para.len() as u64 + 2);
            if para.trim().is_empty() {
                continue;
            }
            let enc = tok
                .encode(para, false)
                .map_err(|e| infogravity::Error::Engine(format!("tokenize: {e}")))?;
            for &id in enc.get_ids() {
                let c = &mut counts[id as usize];
                *c = c.saturating_add(1);
                total += 1;
            }
        }
    }
    bar.finish_and_clear();
    let prov = a.provenance.unwrap_or_else(|| {
        format!(
            "corpus: {}; tokenizer: {}; infogravity {} prior build",
            described.join(", "),
            a.tokenizer.display(),
            infogravity::VERSION
        )
    });
    let prior = infogravity::Prior::from_counts(counts, &prov)?;
    prior.save(&a.out)?;
    writeln!(
        out,
        "wrote {}: {total} tokens over a vocabulary of {v}, {} distinct",
        a.out.display(),
        (0..v as u32).filter(|&i| prior.count(i) > 0).count()
    )?;
    Ok(())
}

fn show(a: ShowArgs) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let p = infogravity::Prior::load(&a.file)?;
    writeln!(
        out,
        "{}: vocabulary {}, {} tokens",
        a.file.display(),
        p.vocab(),
        p.total()
    )?;
    writeln!(out, "provenance: {}", p.provenance())?;
    let tok = a.tokenizer.as_deref().map(load_tokenizer).transpose()?;
    let mut ids: Vec<u32> = (0..p.vocab() as u32).collect();
    ids.sort_by_key(|&i| std::cmp::Reverse(p.count(i)));
    for &i in ids.iter().take(SHOW_TOP) {
        let text = tok
            .as_ref()
            .and_then(|t| t.id_to_token(i))
            .unwrap_or_default();
        writeln!(out, "{i:>7} {:>9} {text:?}", p.count(i))?;
    }
    Ok(())
}
