//! The man pages in `packaging/man`, rendered from the clap definitions ([`Cli`]) by the test
//! below, so that they cannot drift from the command line: `mtfu.1` (the commands and options
//! from clap, the prose clap cannot hold from `packaging/man/mtfu.description` and
//! `mtfu.extra`) and one page per command (`mtfu-tenant-quota.1`, ...). After changing the
//! command line, `MTFU_BLESS_MAN=1 cargo test --bin mtfu man` rewrites them.

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};

use super::args::Cli;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man")
}

fn man(cmd: Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .source(format!("mtfu {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration")
}

/// Every page: file name and roff text.
fn pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = Cli::command();
    cmd.build();
    let read = |name: &str| std::fs::read(dir().join(name)).expect("man page prose");
    let top = man(cmd.clone());
    let mut page = Vec::new();
    top.render_title(&mut page).expect("render");
    top.render_name_section(&mut page).expect("render");
    top.render_synopsis_section(&mut page).expect("render");
    page.extend(read("mtfu.description"));
    top.render_options_section(&mut page).expect("render");
    top.render_subcommands_section(&mut page).expect("render");
    page.extend(read("mtfu.extra"));
    let mut out = vec![("mtfu.1".to_owned(), page)];
    commands(&cmd, &mut out);
    out
}

fn commands(cmd: &Command, out: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub
            .get_display_name()
            .unwrap_or_else(|| sub.get_name())
            .to_owned();
        let mut page = Vec::new();
        man(sub.clone()).render(&mut page).expect("render");
        out.push((format!("{name}.1"), page));
        commands(sub, out);
    }
}

#[test]
fn the_man_pages_are_the_command_lines() {
    let pages = pages();
    if std::env::var_os("MTFU_BLESS_MAN").is_some() {
        for (name, text) in &pages {
            std::fs::write(dir().join(name), text).expect("write the page");
        }
    }
    let mut stale: Vec<String> = std::fs::read_dir(dir())
        .expect("packaging/man")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1") && !pages.iter().any(|(p, _)| p == n))
        .collect();
    stale.sort();
    assert!(stale.is_empty(), "pages of no command: {stale:?}");
    for (name, text) in &pages {
        let committed = std::fs::read(dir().join(name)).unwrap_or_default();
        assert!(
            committed == *text,
            "packaging/man/{name} differs from the command line: \
             MTFU_BLESS_MAN=1 cargo test --bin mtfu man"
        );
    }
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["mtfu.1", "mtfu-tenant-quota.1", "mtfu-fsck.1", "mtfu-gc.1"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
}
