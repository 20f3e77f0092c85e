//! `doc-serve index` and `doc-serve query`: asked of the project's resident when one can
//! be reached (see [`reach`]), run in this process otherwise, with the same output.

use std::io::IsTerminal;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use std::time::Duration;

use hyper::{Method, StatusCode};

use super::reach::{self, CallError};
use super::{Context, client_runtime, output};
use crate::config::{Config, Flags};
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

/// How long a delegated request may take: a full index of a big tree takes a while.
const INDEX_TIMEOUT: Duration = Duration::from_secs(3600);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `remote` against the project's resident if one can be reached (see
/// [`reach`]); `None` when the command should run standalone.
fn delegate<T>(
    ctx: &Context,
    autostart: bool,
    remote: impl AsyncFnOnce(&reach::Remote) -> Result<T, CallError>,
) -> anyhow::Result<Option<T>> {
    let rt = client_runtime()?;
    let Some(resident) = reach::find(ctx, &rt, autostart)? else {
        return Ok(None);
    };
    match rt.block_on(remote(&resident)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_unreachable() => {
            tracing::info!(
                "{} is unreachable ({e}); running standalone",
                resident.base_url
            );
            Ok(None)
        }
        // A malformed request: the same message as the same mistake made standalone.
        Err(CallError::Api {
            status, message, ..
        }) if status == StatusCode::BAD_REQUEST => Err(anyhow::Error::msg(message)),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("the resident at {}", resident.describe())))
        }
    }
}

pub fn index(ctx: &Context, full: bool, json: bool) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    ctx.project.create_state_dir()?;
    let delegated = delegate(ctx, config.autostart, async |r| {
        let body = json!({ "full": full });
        r.call(Method::POST, "/index", Some(&body), INDEX_TIMEOUT)
            .await
    })?;
    let (summary, files, chunks) = match delegated {
        Some(v) => {
            let summary: Summary = serde_json::from_value(v["summary"].clone())
                .context("the resident's /index answer has no summary")?;
            let count = |k: &str| v["index"][k].as_u64().unwrap_or_default();
            (summary, count("files"), count("chunks"))
        }
        None => {
            let indexer = super::open_indexer(ctx, &config)?;
            let summary = reconcile(&indexer, full, !json)?;
            let (files, chunks) = indexer.engine.counts()?;
            (summary, files, chunks)
        }
    };
    if summary.scanned == 0 {
        tracing::warn!(
            "no file under {} is a source (include: {}; exclude: {}): check include and \
             exclude in {}, and the ignore files",
            ctx.project.root.display(),
            config.include.join(", "),
            if config.exclude.is_empty() {
                "none".into()
            } else {
                config.exclude.join(", ")
            },
            ctx.project.config_file().display()
        );
    }
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
    let mut qs = form_urlencoded::Serializer::new(String::new());
    qs.append_pair("q", q)
        .append_pair("limit", &limit.to_string());
    if let Some(p) = &path_prefix {
        qs.append_pair("path_prefix", p);
    }
    let path = format!("/query?{}", qs.finish());
    let delegated = delegate(ctx, config.autostart, async |r| {
        r.call(Method::GET, &path, None, QUERY_TIMEOUT).await
    })?;
    let resp = match delegated {
        Some(v) => serde_json::from_value(v).context("the resident's /query answer")?,
        None => standalone_query(ctx, &config, q, limit, path_prefix)?,
    };
    print_hits(&resp, json)?;
    Ok(if resp.hits.is_empty() {
        exit::NOTHING
    } else {
        exit::OK
    })
}

/// The query answered in this process. The index is only read, unless it was never
/// built: then it is built first (under the index lock, like any writer) rather than
/// answering "nothing" from an empty one.
fn standalone_query(
    ctx: &Context,
    config: &Config,
    q: &str,
    limit: usize,
    path_prefix: Option<String>,
) -> anyhow::Result<Response> {
    let indexer = super::open_indexer(ctx, config)?;
    if indexer.engine.counts()?.0 == 0 {
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
    Ok(indexer.engine.search(&req)?)
}

pub fn print_hits(resp: &Response, json: bool) -> anyhow::Result<()> {
    output::emit(json, resp, |out| {
        if resp.hits.is_empty() {
            writeln!(out, "no results for {:?}", resp.query)?;
        }
        for h in resp.hits.iter() {
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
