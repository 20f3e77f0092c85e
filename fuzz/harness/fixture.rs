//! A small indexed project on disk: the integration tests' fixture docs plus files of
//! identifiers, non-ASCII text and one long section, so searches and snippets have
//! something to hit.
//!
//! Shared by the `query_parse` and `http_request` harnesses. The files are compiled in
//! (`include_str!` is relative to this file), so the fuzz binaries need no checkout.

use std::path::Path;

use doc_serve::config::Config;
use doc_serve::ingest::sync::Indexer;
use doc_serve::project::{Project, RootReason};

const DOCS: &[(&str, &str)] = &[
    (
        "docs/guide/install.md",
        include_str!("../../tests/fixtures/docs/guide/install.md"),
    ),
    (
        "docs/guide/tuning.md",
        include_str!("../../tests/fixtures/docs/guide/tuning.md"),
    ),
    (
        "docs/api/reference.rst",
        include_str!("../../tests/fixtures/docs/api/reference.rst"),
    ),
    (
        "docs/api/manual.adoc",
        include_str!("../../tests/fixtures/docs/api/manual.adoc"),
    ),
    (
        "docs/notes.txt",
        include_str!("../../tests/fixtures/docs/notes.txt"),
    ),
    (
        "docs/code.md",
        "# Identifiers\n\nCall `snake_case_fn` or `HTTPServer::new` with --max-depth.\n\n\
         ## Unicode\n\nStraße, naïve café, 日本語のテキスト, emoji 🦀 and Ünïcödé.\n",
    ),
];

/// One section longer than the snippet code's tokenizing region (1600 bytes), mixing
/// scripts, so long-body snippet paths run too.
fn long_doc() -> String {
    let para = "Ünïcödé naïve café: the widgetd daemon reuses ConnectionPool sockets; \
                日本語のテキスト and 🦀 appear between snapshot_restore calls.\n";
    format!("# Long section\n\n{}", para.repeat(40))
}

/// A project under `dir`, indexed with the default settings; `dir` must outlive both.
pub struct Indexed {
    pub project: Project,
    pub indexer: Indexer,
}

/// Writes the docs under `dir/project` and indexes them. Panics on failure: without
/// its fixture a harness can check nothing.
pub fn indexed(dir: &Path) -> Indexed {
    let root = dir.join("project");
    for (rel, text) in DOCS {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("fixture paths have a parent"))
            .expect("create fixture dir");
        std::fs::write(&path, text).expect("write fixture doc");
    }
    std::fs::write(root.join("docs/long.md"), long_doc()).expect("write fixture doc");
    let root = root.canonicalize().expect("canonical fixture root");
    let project = Project::at(root, RootReason::Flag);
    project.create_state_dir().expect("create state dir");
    let config = Config::default();
    let indexer = Indexer::open(&project, &config).expect("open fixture index");
    indexer
        .reconcile(true, &mut |_| {})
        .expect("index the fixture");
    indexer.engine.reload().expect("reload the fixture index");
    Indexed { project, indexer }
}
