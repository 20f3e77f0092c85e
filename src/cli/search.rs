//! `doc-serve index` and `doc-serve query`, run in this process.

use std::io::IsTerminal;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Context, output};
use crate::config::Flags;
use crate::engine::search::{Request, Response};
use crate::error::exit;
use crate::ingest::sync::{Indexer, Summary};

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} indexing {pos}/{len} files [{bar:30}] {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Some(bar)
}

fn reconcile(indexer: &Indexer, full: bool, show_progress: bool) -> anyhow::Result<Summary> {
    let bar = progress_bar(show_progress);
    let summary = indexer.reconcile(full, &mut |p| {
        if let Some(b) = &bar {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(summary?)
}

pub fn index(ctx: &Context, full: bool, json: bool) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    ctx.project.create_state_dir()?;
    let indexer = Indexer::open(&ctx.project, &config).context("cannot open the index")?;
    let summary = reconcile(&indexer, full, !json)?;
    let (files, chunks) = indexer.engine.counts()?;
    let report = json!({ "summary": summary, "files": files, "chunks": chunks });
    output::emit(json, &report, |out| {
        writeln!(
            out,
            "indexed {} files in {:.0} ms: {} added, {} updated, {} removed, {} unchanged, {} skipped",
            summary.scanned,
            summary.took_ms,
            summary.added,
            summary.updated,
            summary.removed,
            summary.unchanged,
            summary.skipped.len()
        )?;
        for s in &summary.skipped {
            writeln!(out, "  skipped {}: {}", s.path, s.reason)?;
        }
        writeln!(out, "index: {files} files, {chunks} sections")
    })?;
    Ok(exit::OK)
}

pub fn query(
    ctx: &Context,
    q: &str,
    limit: usize,
    path_prefix: Option<String>,
    json: bool,
) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    ctx.project.create_state_dir()?;
    let indexer = Indexer::open(&ctx.project, &config).context("cannot open the index")?;
    if indexer.engine.counts()?.0 == 0 {
        // A first query on a project never indexed: build the index rather than answer
        // "nothing" from an empty one.
        tracing::warn!(
            "the index is empty; indexing {} first",
            ctx.project.root.display()
        );
        reconcile(&indexer, false, true)?;
    }
    let req = Request {
        q: q.to_owned(),
        limit,
        path_prefix,
        max_per_file: usize::try_from(config.max_hits_per_file).unwrap_or(usize::MAX),
    };
    let resp = indexer.engine.search(&req)?;
    print_hits(&resp, json)?;
    Ok(if resp.hits.is_empty() {
        exit::NOTHING
    } else {
        exit::OK
    })
}

pub fn print_hits(resp: &Response, json: bool) -> anyhow::Result<()> {
    output::emit(json, resp, |out| {
        if resp.hits.is_empty() {
            writeln!(out, "no results for {:?}", resp.query)?;
        }
        for h in &resp.hits {
            let trail = if h.headings.is_empty() {
                h.title.clone()
            } else {
                h.headings.join(" > ")
            };
            writeln!(
                out,
                "{}:{}-{}  {}  ({:.2})",
                h.path, h.line_start, h.line_end, trail, h.score
            )?;
            let snippet: String = h.snippet.split_whitespace().collect::<Vec<_>>().join(" ");
            writeln!(out, "    {snippet}")?;
        }
        Ok(())
    })
}
