//! `doc-serve index` and `doc-serve query`: asked of the project's resident when one can
//! be reached (see [`reach`]), run in this process otherwise, with the same output.

use std::io::IsTerminal;

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde_json::json;

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};

use super::reach::{self, CallError};
use super::{Context, client_runtime, hits, markup, output};
use crate::api::{self, FIRST_INDEX_WAIT, MAX_FIRST_INDEX_WAIT, Search, SearchReply, Standalone};
use crate::config::{Config, Flags};
use crate::engine::EngineError;
use crate::error::exit;
use crate::events::EventLog;
use crate::ingest::read::{self, Part, Scope, Want};
use crate::ingest::sync::{Indexer, Summary};
use crate::ingest::walk::Sources;

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(super::progress_bar(
        "{spinner} indexing {pos}/{len} files [{bar:30}] {eta}",
    ))
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
            let summary = reconcile(&indexer, full, !json).inspect_err(|e| {
                // As a resident records its failed jobs (a full disk, say); a busy lock
                // is no failure.
                if let Some(EngineError::Busy { .. }) = e.downcast_ref() {
                    return;
                }
                let log = EventLog::new(
                    &ctx.project.state_path(&config.log_dir),
                    config.event_log_max_bytes,
                );
                log.record("error", json!({ "message": format!("{e:#}") }));
            })?;
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
            // A file's name may hold escape sequences, as its text may.
            let (path, reason) = (markup::printable(&s.path), markup::printable(&s.reason));
            writeln!(out, "  skipped {path}: {reason}")?;
        }
        writeln!(out, "index: {files} files, {chunks} sections")
    })?;
    Ok(exit::OK)
}

pub fn query(ctx: &Context, req: &Search, json: bool, look: &hits::Look) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    ctx.project.create_state_dir()?;
    let mut qs = form_urlencoded::Serializer::new(String::new());
    qs.append_pair("q", &req.q);
    let numbers = [
        ("limit", req.limit),
        ("offset", req.offset.filter(|n| *n > 0)),
        ("max_tokens", req.max_tokens),
    ];
    for (name, n) in numbers.iter().filter_map(|(k, n)| Some((k, (*n)?))) {
        qs.append_pair(name, &n.to_string());
    }
    if let Some(p) = &req.path_prefix {
        qs.append_pair("path_prefix", p);
    }
    if let Some(w) = req.wait {
        qs.append_pair("wait", &w.to_string());
    }
    if let Some(m) = req.mode {
        qs.append_pair("mode", m.as_str());
    }
    if req.explain == Some(true) {
        qs.append_pair("explain", "true");
    }
    let path = format!("/query?{}", qs.finish());
    let show_progress = !json && std::io::stderr().is_terminal();
    // Room for the resident's wait for a first index, on top of the search.
    let timeout = QUERY_TIMEOUT
        + Duration::from_secs(
            req.wait
                .unwrap_or(FIRST_INDEX_WAIT)
                .min(MAX_FIRST_INDEX_WAIT),
        );
    let delegated = delegate(ctx, config.autostart, async |r| {
        let query = r.call(Method::GET, &path, None, timeout);
        if show_progress {
            with_progress(r, query).await
        } else {
            query.await
        }
    })?;
    let answer: SearchReply = match delegated {
        Some(v) => serde_json::from_value(v).context("the resident's /query answer")?,
        None => standalone_query(ctx, &config, req)?,
    };
    // A resident of an older doc-serve ignores `offset` and answers the first page.
    let offset = req.offset.unwrap_or(0);
    if answer.response.offset != offset {
        anyhow::bail!(
            "the resident answered the page at offset {} instead of {offset}: it is an \
             older doc-serve; restart it (doc-serve stop) and ask again",
            answer.response.offset
        );
    }
    if answer.index.indexing {
        let progress = match answer.index.progress {
            Some([done, total]) => format!(" ({done} of {total} files)"),
            None => String::new(),
        };
        tracing::warn!(
            "the index is still being built{progress}: these results may be incomplete; \
             ask again in a moment"
        );
    }
    warn_if_partly_embedded(&answer);
    if json {
        output::emit(json, &answer, |_| Ok(()))?;
    } else if answer.response.hits.is_empty() {
        hits::print_none(&answer);
    } else {
        let root = &ctx.project.root;
        let lines = hits::match_lines(root, &answer.response.hits, config.max_file_bytes);
        output::emit(false, &(), |out| {
            hits::print(out, &answer, look, root, &lines)
        })?;
    }
    Ok(if answer.response.hits.is_empty() {
        exit::NOTHING
    } else {
        exit::OK
    })
}

/// A search by meaning over sections not all embedded says so, and why: only a
/// resident embeds them (a standalone answer reads what one stored).
fn warn_if_partly_embedded(answer: &SearchReply) {
    let Some(e) = &answer.index.embedding else {
        return;
    };
    let [done, total] = e.embedded;
    if answer.response.mode == crate::engine::search::Mode::Lexical || done >= total {
        return;
    }
    let why = match &e.error {
        Some(error) => format!("embedding failed: {error}"),
        None if e.embedding => "embedding is under way; ask again in a moment".to_owned(),
        None => "a resident embeds them in the background (`doc-serve start`)".to_owned(),
    };
    tracing::warn!(
        "{done} of {total} sections are embedded, so these results by meaning are \
         incomplete: {why}"
    );
}

/// Runs `query`; when it has not answered within half a second (the resident is
/// building its first index, and the search waits for it), shows the index's progress
/// from `/status` on a bar until it does.
async fn with_progress<T>(remote: &reach::Remote, query: impl Future<Output = T>) -> T {
    let mut query = std::pin::pin!(query);
    let mut bar: Option<ProgressBar> = None;
    loop {
        let pause = if bar.is_none() { 500 } else { 200 };
        tokio::select! {
            answer = &mut query => {
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                return answer;
            }
            () = tokio::time::sleep(Duration::from_millis(pause)) => {
                let bar = bar.get_or_insert_with(|| {
                    super::progress_bar(
                        "{spinner} waiting for the first index: {pos}/{len} files [{bar:30}] {eta}",
                    )
                });
                let now = remote
                    .call(Method::GET, "/status", None, Duration::from_secs(2))
                    .await;
                if let Ok(v) = now
                    && let Some([done, total]) = v["index"]["progress"].as_array().map(Vec::as_slice)
                {
                    bar.set_length(total.as_u64().unwrap_or_default());
                    bar.set_position(done.as_u64().unwrap_or_default());
                }
                bar.tick();
            }
        }
    }
}

/// The query answered in this process. The index is only read, unless it was never
/// built: then it is built first (under the index lock, like any writer) rather than
/// answering "nothing" from an empty one.
fn standalone_query(ctx: &Context, config: &Config, req: &Search) -> anyhow::Result<SearchReply> {
    let indexer = super::open_indexer(ctx, config)?;
    if indexer.engine.counts()?.0 == 0 {
        tracing::warn!(
            "the index is empty; indexing {} first",
            ctx.project.root.display()
        );
        reconcile(&indexer, false, true)?;
    }
    let max_per_file = config.max_hits_per_file;
    let mut site = Standalone::new(Arc::new(indexer), max_per_file);
    // The model is loaded only when asked for: a plain query stays quick.
    if req
        .mode
        .is_some_and(|m| m != crate::engine::search::Mode::Lexical)
    {
        site = site.with_model(config);
    }
    Ok(client_runtime()?.block_on(api::search(&site, req))?)
}

/// `doc-serve read TARGET`: a section by its id, a file, a range of its lines or the
/// section under a heading, as `/documents` reads them.
pub fn read(
    ctx: &Context,
    target: &str,
    lines: Option<&str>,
    heading: Option<String>,
    max_tokens: Option<usize>,
    json: bool,
) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    ctx.project.create_state_dir()?;
    // An id splits at its last '#' (an anchor has none; a file name may): unless the
    // whole of it names a file, as `docs/c#.md` does.
    let id = target
        .rsplit_once('#')
        .filter(|_| !ctx.project.root.join(target).is_file());
    let scope = match (id, lines, heading) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => anyhow::bail!(
            "{target} is a section id: it names its lines itself (leave out --lines and \
             --heading, or give the path alone)"
        ),
        (Some(_), None, None) => Scope::Section(target.to_owned()),
        (None, Some(range), _) => {
            let (start, end) = line_range(range)?;
            Scope::Lines { start, end }
        }
        (None, None, Some(h)) => Scope::Heading(h),
        (None, None, None) => Scope::Lines {
            start: None,
            end: None,
        },
    };
    let want = Want {
        path: id.map_or(target, |(p, _)| p).to_owned(),
        scope,
        max_tokens,
    };
    let path = documents_path(&want);
    let delegated = delegate(ctx, config.autostart, async |r| {
        r.call(Method::GET, &path, None, QUERY_TIMEOUT).await
    });
    let part: Part = match delegated {
        Ok(Some(v)) => serde_json::from_value(v).context("the resident's /documents answer")?,
        // Only the sources are needed, not the index.
        Ok(None) => {
            let sources = Sources::new(&ctx.project.root, &ctx.project.state_dir, &config)?;
            read::read(&sources, &want).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        // Not found (or a bad range) is the same message either way.
        Err(e) => match e.downcast_ref::<CallError>() {
            Some(CallError::Api { message, .. }) => anyhow::bail!("{message}"),
            _ => return Err(e),
        },
    };
    output::emit(json, &part, |out| {
        let trail = if part.headings.is_empty() {
            String::new()
        } else {
            format!("  {}", part.headings.join(" > "))
        };
        writeln!(
            out,
            "{}:{}-{} of {}{trail}  [{}]",
            part.path, part.line_start, part.line_end, part.total_lines, part.id
        )?;
        writeln!(out)?;
        writeln!(out, "{}", part.text)?;
        if part.truncated
            && let Some(next) = part.next_line
        {
            writeln!(
                out,
                "\n(cut to fit --max-tokens: read on with --lines {next}-)"
            )?;
        }
        for (label, s) in [("previous", &part.previous), ("next", &part.next)] {
            if let Some(s) = s {
                writeln!(out, "{label}: {}", s.id)?;
            }
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

/// `A-B`, `A-` or `-B` (or `A`, one line), 1-based.
fn line_range(range: &str) -> anyhow::Result<(Option<usize>, Option<usize>)> {
    let number = |s: &str| -> anyhow::Result<Option<usize>> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => anyhow::bail!(
                "--lines takes A-B, A- or -B with line numbers of at least 1, not {range:?}"
            ),
        }
    };
    match range.split_once('-') {
        Some((a, b)) => Ok((number(a)?, number(b)?)),
        None => {
            let n = number(range)?;
            if n.is_none() {
                anyhow::bail!("--lines takes A-B, A- or -B, not an empty range");
            }
            Ok((n, n))
        }
    }
}

/// The `/documents` request for `want`.
pub(super) fn documents_path(want: &Want) -> String {
    let mut qs = form_urlencoded::Serializer::new(String::new());
    match &want.scope {
        Scope::Lines { start, end } => {
            for (k, n) in [("start", start), ("end", end)] {
                if let Some(n) = n {
                    qs.append_pair(k, &n.to_string());
                }
            }
        }
        Scope::Heading(h) => {
            qs.append_pair("heading", h);
        }
        Scope::Section(id) => {
            qs.append_pair("section", id);
        }
    }
    if let Some(n) = want.max_tokens {
        qs.append_pair("max_tokens", &n.to_string());
    }
    let path: String =
        percent_encoding::utf8_percent_encode(&want.path, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            // Keep the separators readable; every other byte is encoded.
            .replace("%2F", "/");
    format!("/documents/{path}?{}", qs.finish())
}
