//! `doc-serve open`: the search page in a browser, signed in (README, "Search page").
//!
//! It asks the project's resident (found or started as `query` does; the shared
//! daemon for a project in shared mode) for a one-time code, then opens
//! `http://127.0.0.1:PORT/#code=CODE`. The code never goes on a command line, where
//! every local user could read it (`/proc/PID/cmdline`): the browser is given a 0600
//! file in the 0700 state directory that sends it on (a meta refresh), as Jupyter
//! does. In the fragment, the code is never sent to a server, logged or put in a
//! Referer. Where no browser can be shown (`--print`, no display, an SSH session),
//! the URL is printed instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;
use serde_json::Value;

use super::output::{emit, note};
use super::reach::{self, CallError};
use super::{Context, client_runtime};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Exit status when the resident has no TCP listener a browser could reach.
const NO_TCP: i32 = 2;

pub fn run(ctx: &Context, print: bool, json: bool) -> anyhow::Result<i32> {
    ctx.project.create_state_dir()?;
    let rt = client_runtime()?;
    let remote = reach::find(ctx, &rt, true)?.with_context(|| {
        format!(
            "no resident could be found or started for {}",
            ctx.project.root.display()
        )
    })?;
    // On the shared daemon: the project is registered (and opened) first, so the page
    // finds it in GET /projects.
    let project = ctx.daemon_of()?.map(|_| ctx.project.id());
    if project.is_some() {
        rt.block_on(remote.call(Method::GET, "/status", None, TIMEOUT))
            .with_context(|| format!("the shared daemon at {}", remote.describe()))?;
    }
    let reply = match rt.block_on(remote.send(Method::POST, "/login/code", None, TIMEOUT)) {
        Ok(reply) => reply,
        Err(CallError::Api { code, message, .. }) if code == "no_tcp_listener" => {
            note(&format!(
                "doc-serve: {} listens only on a Unix socket; {message}; then run \
                 `doc-serve open` again",
                remote.describe()
            ));
            return Ok(NO_TCP);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("the resident at {}", remote.describe()));
        }
    };
    let text = |k: &str| reply.get(k).and_then(Value::as_str).unwrap_or_default();
    let base = reply
        .get("urls")
        .and_then(|u| u.get(0))
        .and_then(Value::as_str)
        .context("the resident gave no URL for its page")?;
    let expires_in = reply.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
    let mut url = format!("{base}#code={}", text("code"));
    if let Some(id) = &project {
        url.push_str(&format!("&project={id}"));
    }

    let opened = match why_not_open(print) {
        Some(why) => {
            tracing::debug!("not opening a browser: {why}");
            false
        }
        None => match open_browser(&ctx.project.state_dir, &url) {
            Ok(how) => {
                note(&format!("opened {base} with {how}"));
                true
            }
            Err(e) => {
                note(&format!(
                    "doc-serve: cannot open a browser ({e:#}); open this URL:"
                ));
                false
            }
        },
    };
    note(&format!(
        "the login code is good once, for {expires_in} s; a signed-in browser stays in \
         until the session ends"
    ));
    let out = serde_json::json!({ "url": url, "expires_in": expires_in, "opened": opened });
    emit(json, &out, |w| {
        if opened { Ok(()) } else { writeln!(w, "{url}") }
    })?;
    Ok(0)
}

/// Why the URL is printed rather than opened, if it is.
fn why_not_open(print: bool) -> Option<&'static str> {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if print {
        Some("--print")
    } else if set("BROWSER") {
        None
    } else if set("SSH_CONNECTION") {
        Some("an SSH session: the browser is on another machine")
    } else if cfg!(target_os = "linux") && !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
        Some("no DISPLAY or WAYLAND_DISPLAY")
    } else {
        None
    }
}

/// Writes the redirect file and hands it to the browser: `$BROWSER` (its first
/// entry: a program and its arguments, `%s` standing for the file), else `xdg-open`
/// (`open` on macOS). The child is not waited for (some handlers return only when
/// the browser exits), only watched for a moment: one that fails at once sends the
/// caller to printing the URL. Returns what opened it.
fn open_browser(state_dir: &Path, url: &str) -> anyhow::Result<String> {
    let file = redirect_file(state_dir, url)?;
    let entry = std::env::var("BROWSER")
        .ok()
        .and_then(|b| b.split(':').next().map(str::trim).map(String::from))
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open".into()
            } else {
                "xdg-open".into()
            }
        });
    let mut words = entry.split_whitespace();
    let program = words.next().unwrap_or_default().to_owned();
    let file = file.to_string_lossy();
    let mut args: Vec<String> = words.map(|w| w.replace("%s", &file)).collect();
    if !entry.contains("%s") {
        args.push(file.into_owned());
    }
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    for _ in 0..10 {
        match child.try_wait() {
            Ok(Some(status)) if !status.success() => {
                anyhow::bail!("{program} exited with {status}")
            }
            Ok(Some(_)) => break,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Ok(program)
}

/// `open.html` in the state directory (0700), 0600: a page that sends the browser
/// to `url`. Rewritten at every `open`; the code in it is good once.
fn redirect_file(state_dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
    let path = state_dir.join("open.html");
    let url = html_escape(url);
    let page = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" \
         content=\"no-referrer\">\n<meta http-equiv=\"refresh\" content=\"0;url={url}\">\n\
         <title>doc-serve</title>\n<p><a href=\"{url}\">Open the search page</a></p>\n"
    );
    crate::fsutil::write_atomic(&path, page.as_bytes(), 0o600)?;
    Ok(path)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
