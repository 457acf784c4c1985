//! `wk-ops render`: load the inventory, render, then write (default), list what would change
//! (`--check`, exit 1 when anything would) or show unified diffs (`--diff`, writes nothing).

use super::ConfigError;
use crate::inventory;
use crate::render::output::{self, Change, Planned};
use crate::render::{self, Kind, Templates};
use anyhow::Context as _;
use clap::Args;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// Output directory.
    #[arg(long, short, value_name = "DIR", default_value = "rendered")]
    pub out: PathBuf,
    /// Write nothing; list the files that would change and exit 1 if any would.
    #[arg(long)]
    pub check: bool,
    /// Write nothing; print a unified diff of every file that would change.
    #[arg(long)]
    pub diff: bool,
    /// Render only these kinds (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    pub only: Vec<Kind>,
    /// Directory of templates overriding the built-in ones (same relative names, e.g.
    /// nginx/nginx.conf.j2); templates not found there stay built in.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Remove stale files (rendered before, no longer produced) from the output directory.
    #[arg(long)]
    pub prune: bool,
}

/// Validated settings: everything loaded, nothing written yet.
struct Settings {
    loaded: inventory::Loaded,
    templates: Templates,
    out: PathBuf,
    only: Vec<Kind>,
    check: bool,
    diff: bool,
    prune: bool,
}

impl Settings {
    fn from_args(a: RenderArgs) -> anyhow::Result<Settings> {
        if a.prune && (a.check || a.diff) {
            return Err(ConfigError(
                "--prune writes; it cannot be combined with --check or --diff".into(),
            )
            .into());
        }
        let loaded = inventory::load(&a.inventory)?;
        let templates = match &a.templates {
            Some(dir) => Templates::with_overrides(dir)?,
            None => Templates::embedded()?,
        };
        let mut only = a.only;
        only.sort();
        only.dedup();
        Ok(Settings {
            loaded,
            templates,
            out: a.out,
            only,
            check: a.check,
            diff: a.diff,
            prune: a.prune,
        })
    }
}

pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let s = Settings::from_args(args)?;
    let mut err = io::stderr().lock();
    for w in s.loaded.warning_lines() {
        writeln!(err, "warning: {w}")?;
    }
    for name in s.templates.overridden() {
        tracing::info!(template = name, "using template override");
    }
    let files = render::render(&s.loaded.inventory, &s.templates, &s.only)?;
    let kinds: Vec<Kind> = if s.only.is_empty() {
        Kind::ALL.to_vec()
    } else {
        s.only.clone()
    };
    let planned = output::plan(&s.out, &files, &kinds)
        .with_context(|| format!("cannot compare with {}", s.out.display()))?;
    let changed = planned.iter().filter(|p| p.changes()).count();
    let mut out = io::stdout().lock();
    if s.diff {
        for p in planned.iter().filter(|p| p.changes()) {
            write!(out, "{}", p.diff())?;
        }
    }
    if s.check {
        for p in planned.iter().filter(|p| p.changes()) {
            writeln!(out, "{:<9} {}", would(p.change), p.path)?;
        }
        let dir = s.out.display();
        return Ok(if changed == 0 {
            writeln!(out, "{dir}: {} files up to date", planned.len())?;
            ExitCode::SUCCESS
        } else {
            writeln!(
                out,
                "{dir}: {changed} of {} files would change",
                planned.len()
            )?;
            ExitCode::from(1)
        });
    }
    if s.diff {
        return Ok(ExitCode::SUCCESS);
    }
    output::apply(&s.out, &planned, s.prune)
        .with_context(|| format!("cannot write into {}", s.out.display()))?;
    report(&mut out, &planned, &s)?;
    Ok(ExitCode::SUCCESS)
}

fn would(c: Change) -> &'static str {
    match c {
        Change::Created => "create",
        Change::Updated => "update",
        Change::Stale => "stale",
        Change::Unchanged => "unchanged",
    }
}

fn report(out: &mut impl Write, planned: &[Planned], s: &Settings) -> io::Result<()> {
    let mut counts = [0usize; 4];
    for p in planned {
        let (i, note) = match p.change {
            Change::Created => (0, ""),
            Change::Updated => (1, ""),
            Change::Unchanged => (2, ""),
            Change::Stale if s.prune => (3, " (removed)"),
            Change::Stale => (3, " (no longer rendered; --prune removes it)"),
        };
        counts[i] += 1;
        writeln!(out, "{:<9} {}{note}", p.change.to_string(), p.path)?;
    }
    writeln!(
        out,
        "{}: {} created, {} updated, {} unchanged{}",
        s.out.display(),
        counts[0],
        counts[1],
        counts[2],
        if counts[3] > 0 {
            format!(", {} stale", counts[3])
        } else {
            String::new()
        }
    )
}
