//! The `mtfu` command: serve, migrate, manage tenants, load demo data, collect garbage, check
//! and import stores. This file finds the configuration and dispatches; the command line itself
//! is in `cli/args.rs`, logging in `cli/logging.rs`, `serve` in `cli/serve.rs` and `tenant` in
//! `cli/tenant.rs` (modules of the binary, not of the library).

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use mtfu::app::open_stores;
use mtfu::config::Config;
use mtfu::meta::Meta;

use cli::args::{Cli, Command};
use cli::logging::{init_logging, journal, json_logs};

mod cli;

/// jemalloc rather than glibc's malloc: glibc kept what a load had used (thread arenas, and
/// freed part buffers it would not unmap once it had raised its mmap threshold), so RSS never
/// came back down after a load. jemalloc, configured in `.cargo/config.toml`
/// (`background_thread`, `dirty_decay_ms`), gives freed pages back to the system by itself
/// within about a second (see the README's memory benchmark).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The packaged configuration, used when neither --config nor MTFU_CONFIG names one.
const SYSTEM_CONFIG: &str = "/etc/mtfu/config.toml";

/// One line: the error and the causes that add something (a cause whose text the line already
/// holds, like an I/O error its wrapper printed, is not repeated), no backtrace.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve { .. }));
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = one_line(&e);
            if json_logs() {
                tracing::error!("{line}");
            } else if journal() {
                eprintln!("<3>mtfu: {line}");
            } else {
                eprintln!("mtfu: {line}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config.clone().or_else(|| {
        let p = PathBuf::from(SYSTEM_CONFIG);
        p.exists().then_some(p)
    });
    let cfg = Config::load(path.as_deref())?;
    let admin = matches!(
        cli.command,
        Command::Tenant { .. } | Command::Gc { .. } | Command::Fsck { .. }
    );
    if admin
        && !cli.init
        && cfg.metadata.backend == mtfu::config::MetadataBackend::Sqlite
        && !cfg.sqlite_path().exists()
    {
        let from = match &path {
            Some(p) => format!("the configuration {}", p.display()),
            None => format!("the defaults (no --config, no MTFU_CONFIG, no {SYSTEM_CONFIG})"),
        };
        bail!(
            "no metadata store at {} (from {from}): point at your configuration with --config or \
             MTFU_CONFIG, or pass --init to create an empty store there",
            cfg.sqlite_path().display()
        );
    }
    match cli.command {
        Command::Serve { init_data: demo } => cli::serve::serve(cfg, demo).await?,
        Command::Migrate => {
            let meta = Meta::open(&cfg).await?;
            let n = meta.migrate().await?;
            println!("{n} migration(s) applied");
        }
        Command::InitData => {
            let (meta, _) = open_stores(&cfg).await?;
            cli::tenant::init_data(&cfg, &meta).await?;
        }
        Command::Tenant { command } => cli::tenant::run(&cfg, command).await?,
        Command::Fsck {
            verify_sha256,
            json,
        } => {
            let (meta, blob) = open_stores(&cfg).await?;
            let r = mtfu::fsck::check(&meta, &blob, verify_sha256).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                for p in &r.problems {
                    println!("problem: {p}");
                }
                println!(
                    "{} file(s), {} byte(s), {} digest(s) verified; {} stored piece(s): {} of \
                     uploads in progress, {} garbage, {} quarantined; {} problem(s)",
                    r.files,
                    r.bytes,
                    r.digests_verified,
                    r.blobs_held,
                    r.uploads_in_progress,
                    r.garbage,
                    r.quarantined,
                    r.problems.len()
                );
            }
            if !r.problems.is_empty() {
                std::process::exit(1);
            }
        }
        Command::ImportSeed {
            database_url,
            source_bucket,
            dry_run,
            include_expired,
            no_digest,
            delete_dead_objects,
            json,
        } => {
            let (meta, blob) = open_stores(&cfg).await?;
            let opts = mtfu::import::ImportOptions {
                database_url,
                source_bucket,
                dry_run,
                include_expired,
                no_digest,
                delete_dead_objects,
            };
            let r = mtfu::import::import_seed(&cfg, &meta, &blob, &opts).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{r}");
            }
        }
        Command::Gc {
            dry_run,
            grace_secs,
        } => {
            let (meta, blob) = open_stores(&cfg).await?;
            let settings = mtfu::gc::Settings::from_config(&cfg.gc, grace_secs, dry_run);
            let r = mtfu::gc::sweep_with(&meta, &blob, &settings).await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for (what, keys) in [
                ("garbage", &r.garbage),
                ("abandoned upload", &r.stale_uploads),
                ("expired resumable upload", &r.tus_expired),
                ("orphan (quarantined)", &r.orphans),
            ] {
                for k in keys {
                    println!("{verb} {what} {k}");
                }
            }
            println!(
                "{verb} {} blob(s); {} file row(s) reaped; {} quarantined blob(s) and {} tail \
                 object(s) deleted; {} failure(s)",
                r.blobs_removed(),
                r.files_reaped,
                r.quarantine_deleted,
                r.tails_deleted,
                r.failures
            );
            if r.failures > 0 {
                bail!("{} blob(s) could not be removed", r.failures);
            }
        }
    }
    Ok(())
}
