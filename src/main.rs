//! The `mtfu` command: serve, migrate, manage tenants, load demo data, collect garbage.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mtfu::app::{App, build_auth, open_stores};
use mtfu::blob::Blob;
use mtfu::config::Config;
use mtfu::domain::TenantName;
use mtfu::meta::{Meta, MetaError};

#[derive(Parser)]
#[command(name = "mtfu", version, about = "Multi-tenant file upload server")]
struct Cli {
    /// TOML configuration file (keys: see config/mtfu.toml); without it and MTFU_CONFIG,
    /// /etc/mtfu/config.toml when it exists. Environment: MTFU_* override it.
    #[arg(long, global = true, env = "MTFU_CONFIG")]
    config: Option<PathBuf>,
    /// Let an admin command (tenant, gc, fsck) create an empty metadata store where none is;
    /// without it, a missing SQLite database is an error (a wrong --config, say).
    #[arg(long, global = true)]
    init: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Create the demo tenants john1..john10 (password `test`) first, if missing.
        #[arg(long)]
        init_data: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Create the demo tenants john1..john10 with password `test` (like the original init_data).
    InitData,
    /// Remove the blobs of deleted and expired files, abandoned uploads and orphans.
    Gc {
        /// List what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Override gc.grace_secs: only what is older than this is touched.
        #[arg(long)]
        grace_secs: Option<u64>,
    },
    /// Check that the metadata and blob stores agree (read only): every file's blob is there
    /// with its size, every blob belongs to something. Exits 1 when there are problems.
    Fsck {
        /// Also read every file's blob and compare its SHA-256.
        #[arg(long)]
        verify_sha256: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Import the original Django service's tenants and files (its PostgreSQL database and S3
    /// bucket); idempotent and resumable. See docs/migrate-from-django.md.
    ImportSeed {
        /// The original's database, `postgres://user@host/db`.
        #[arg(long, env = "MTFU_SEED_DATABASE_URL")]
        database_url: String,
        /// The original's bucket (default: blobs.s3.bucket, where objects stay in place).
        #[arg(long)]
        source_bucket: Option<String>,
        /// Read and report; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also import rows whose expire_at passed, expired (invisible) as they are.
        #[arg(long)]
        include_expired: bool,
        /// Do not read objects kept in place for their SHA-256 (recorded empty).
        #[arg(long)]
        no_digest: bool,
        /// Delete the objects of rows the original no longer listed that no file names.
        #[arg(long)]
        delete_dead_objects: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Add a tenant; the password is read from a prompt, or from stdin when it is not a terminal.
    Add { name: String },
    /// List tenants with their files, bytes, quotas and what uploads in flight hold.
    List {
        /// One JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant and all its files.
    Remove { name: String },
    /// Set a tenant's password (prompt or stdin); ends every session (token) of the tenant.
    Passwd { name: String },
    /// End every session of the tenant: all its access and refresh tokens issued until now
    /// answer 401, on every node.
    Logout { name: String },
    /// Show a tenant's quotas and usage; with --bytes/--files, change the quotas first.
    Quota {
        name: String,
        /// Bytes of live files: a number (K, M, G, T suffixes: powers of 1024), `unlimited`, or
        /// `default` (limits.quota_bytes).
        #[arg(long)]
        bytes: Option<String>,
        /// Number of live files: a number, `unlimited`, or `default` (limits.quota_files).
        #[arg(long)]
        files: Option<String>,
    },
    /// Revoke every signed /dl/... download link the tenant was handed until now (links issued
    /// later work). S3 presigned URLs are not reached: they expire on their own (at most their
    /// TTL), see blobs.s3.presigned_urls.
    RevokeUrls { name: String },
}

/// Logs: `serve` writes them to stdout (journald under systemd), the other commands to stderr
/// so that their own output stays clean. `MTFU_LOG` filters (default `info`);
/// `MTFU_LOG_FORMAT=json` writes one JSON object per line instead of `key=value` text.
fn init_logging(to_stdout: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    // rustls warns once per connection whose client sends an IP address as SNI (wrk, some
    // libraries): harmless, and thousands of lines under load.
    let filter =
        EnvFilter::try_from_env("MTFU_LOG").unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let (writer, ansi) = if to_stdout {
        (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )
    } else {
        (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        )
    };
    // Under systemd, stdout is the journal: each line carries its level as a syslog priority.
    let (writer, ansi) = if to_stdout && journal() {
        (BoxMakeWriter::new(JournalLines), false)
    } else {
        (writer, ansi)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    if std::env::var("MTFU_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Whether our output goes to systemd's journal (systemd sets `JOURNAL_STREAM` for a unit whose
/// stdout or stderr is the journal).
fn journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Log lines for the journal: each prefixed with `<N>`, its syslog priority (journald reads it,
/// with the unit's default `SyslogLevelPrefix=yes`), so `journalctl -p err` finds the errors.
struct JournalLines;

/// One event's text, written out with its priority when the event is done.
struct PriorityLine {
    priority: u8,
    text: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JournalLines {
    type Writer = PriorityLine;

    fn make_writer(&'a self) -> PriorityLine {
        PriorityLine {
            priority: 6,
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> PriorityLine {
        let priority = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        PriorityLine {
            priority,
            text: Vec::new(),
        }
    }
}

impl std::io::Write for PriorityLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PriorityLine {
    fn drop(&mut self) {
        use std::io::Write;
        let mut out = Vec::with_capacity(self.text.len() + 8);
        for line in self.text.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(format!("<{}>", self.priority).as_bytes());
            out.extend_from_slice(line);
        }
        let _ = std::io::stdout().lock().write_all(&out);
    }
}

/// A password from a terminal prompt (asked twice), or the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Password (again): ")?;
        if a != b {
            bail!("the passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(pw)
}

fn tenant_name(s: &str) -> anyhow::Result<TenantName> {
    TenantName::parse(s).map_err(|m| anyhow::anyhow!("{s:?}: {m}"))
}

async fn init_data(cfg: &Config, meta: &Meta) -> anyhow::Result<()> {
    let auth = build_auth(cfg)?;
    let hash = auth.hash_password("test".into()).await?;
    let mut made = 0;
    for i in 1..=10 {
        let name = tenant_name(&format!("john{i}"))?;
        match meta.create_tenant(&name, &hash).await {
            Ok(_) => made += 1,
            Err(MetaError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!(
        "WARNING: demo tenants john1..john10 have the password `test` ({made} created now). \
         They are for trying mtfu out; remove them (`mtfu tenant remove johnN`) on any server \
         others can reach."
    );
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP reloads the TLS certificate and key from disk; open connections keep theirs, and a
/// bad new pair is logged and leaves the current one in place. The handler is installed when
/// this returns; the returned future serves it.
fn reload_tls_on_sighup(
    reloader: mtfu::tls::TlsReloader,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS certificate");
            let _ = reloader.reload();
        }
    })
}

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

/// A line of `serve`'s banner: on stdout, or a log event when the logs are JSON.
fn banner(text: String) {
    if json_logs() {
        tracing::info!(target: "mtfu::banner", "{text}");
    } else {
        println!("{text}");
    }
}

fn json_logs() -> bool {
    std::env::var("MTFU_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
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
        Command::Serve { init_data: demo } => {
            if demo {
                let (meta, _) = open_stores(&cfg).await?;
                init_data(&cfg, &meta).await?;
            }
            let describe = (Meta::describe(&cfg), Blob::describe(&cfg));
            let app = App::build(cfg.clone()).await?;
            // Registered before the address is printed: from then on SIGHUP reloads, never kills.
            tokio::spawn(reload_tls_on_sighup(app.tls_reloader())?);
            banner(format!(
                "mtfu {} listening on https://{}",
                env!("CARGO_PKG_VERSION"),
                app.https_addr()
            ));
            if let Some(m) = app.metrics_addr() {
                banner(format!("metrics on http://{m}/metrics"));
            }
            if let Some(p) = app.plain_addr() {
                banner(format!(
                    "plain HTTP (for a TLS-terminating proxy) on http://{p}"
                ));
            }
            banner(format!("metadata: {}; blobs: {}", describe.0, describe.1));
            if cfg.tls.acme.enabled() {
                banner(format!(
                    "TLS: ACME certificate for {} from {} (kept in {})",
                    cfg.tls.acme.domains.join(", "),
                    cfg.tls.acme.directory_url,
                    mtfu::acme::dir(&cfg).display()
                ));
            } else if cfg.tls.cert_path.is_none() {
                banner(format!(
                    "TLS: self-signed certificate {} (clients need -k / --cacert)",
                    mtfu::tls::cert_paths(&cfg).0.display()
                ));
            }
            // systemd (Type=notify): ready now, watchdog pings, STOPPING=1 on the signal.
            mtfu::notify::ready(app.https_addr(), app.plain_addr());
            let _watchdog = mtfu::notify::spawn_watchdog();
            app.run_until_stopped(mtfu::notify::stopping_after(shutdown_signal()))
                .await;
        }
        Command::Migrate => {
            let meta = Meta::open(&cfg).await?;
            let n = meta.migrate().await?;
            println!("{n} migration(s) applied");
        }
        Command::InitData => {
            let (meta, _) = open_stores(&cfg).await?;
            init_data(&cfg, &meta).await?;
        }
        Command::Tenant { command } => {
            let (meta, _) = open_stores(&cfg).await?;
            match command {
                TenantCommand::Add { name } => {
                    // NFKC, one script; unique by look-alike key (the store refuses a clash).
                    let name = TenantName::new_account(&name)
                        .map_err(|m| anyhow::anyhow!("{name:?}: {m}"))?;
                    let hash = build_auth(&cfg)?.hash_password(read_password()?).await?;
                    meta.create_tenant(&name, &hash)
                        .await
                        .with_context(|| format!("adding tenant {name}"))?;
                    println!("tenant {name} added");
                }
                TenantCommand::List { json } => {
                    let now = mtfu::domain::now_micros();
                    let defaults = (cfg.limits.quota_bytes, cfg.limits.quota_files);
                    let mut rows = Vec::new();
                    for t in meta.list_tenants().await? {
                        let (u, q) = meta.usage(t.id, now).await?;
                        rows.push(serde_json::json!({
                            "name": t.name.as_str(),
                            "files": u.files,
                            "bytes": u.bytes,
                            "quota_bytes": q.bytes.resolve(defaults.0),
                            "quota_files": q.files.resolve(defaults.1),
                            "reserved_bytes": u.reserved_bytes,
                            "reserved_files": u.reserved_files,
                        }));
                    }
                    if json {
                        println!("{}", serde_json::Value::Array(rows));
                    } else {
                        let show = |v: &serde_json::Value| match v {
                            serde_json::Value::Null => "-".to_owned(),
                            other => other.to_string().trim_matches('"').to_owned(),
                        };
                        println!(
                            "{:<24} {:>8} {:>14} {:>14} {:>10} {:>14}",
                            "NAME", "FILES", "BYTES", "QUOTA_BYTES", "QUOTA_FILES", "RESERVED"
                        );
                        for r in &rows {
                            println!(
                                "{:<24} {:>8} {:>14} {:>14} {:>10} {:>14}",
                                show(&r["name"]),
                                show(&r["files"]),
                                show(&r["bytes"]),
                                show(&r["quota_bytes"]),
                                show(&r["quota_files"]),
                                show(&r["reserved_bytes"])
                            );
                        }
                    }
                }
                TenantCommand::Remove { name } => {
                    if !meta.remove_tenant(&tenant_name(&name)?).await? {
                        bail!("no tenant {name}");
                    }
                    println!("tenant {name} removed; its blobs go at the next gc");
                }
                TenantCommand::Passwd { name } => {
                    let name = tenant_name(&name)?;
                    let hash = build_auth(&cfg)?.hash_password(read_password()?).await?;
                    if !meta.set_password(&name, &hash).await? {
                        bail!("no tenant {name}");
                    }
                    println!("password of {name} changed; its sessions are ended");
                }
                TenantCommand::Logout { name } => {
                    let name = tenant_name(&name)?;
                    let Some((tenant, _)) = meta.tenant_by_name(name.as_str()).await? else {
                        bail!("no tenant {name}");
                    };
                    if meta.end_sessions(tenant.id).await?.is_none() {
                        bail!("no tenant {name}");
                    }
                    println!("sessions of {name} ended");
                }
                TenantCommand::Quota { name, bytes, files } => {
                    use mtfu::meta::quota::Limit;
                    let name = tenant_name(&name)?;
                    let parse = |v: Option<String>| {
                        v.map(|s| Limit::parse(&s).map_err(anyhow::Error::msg))
                            .transpose()
                    };
                    let (bytes, files) = (parse(bytes)?, parse(files)?);
                    if (bytes.is_some() || files.is_some())
                        && !meta.set_tenant_quota(&name, bytes, files).await?
                    {
                        bail!("no tenant {name}");
                    }
                    let Some((tenant, _)) = meta.tenant_by_name(name.as_str()).await? else {
                        bail!("no tenant {name}");
                    };
                    let (usage, q) = meta.usage(tenant.id, mtfu::domain::now_micros()).await?;
                    let show = |l: Limit, default: Option<u64>| match (l, l.resolve(default)) {
                        (Limit::Default, Some(n)) => format!("{n} (default)"),
                        (Limit::Default, None) => "unlimited (default)".to_owned(),
                        (_, Some(n)) => n.to_string(),
                        (_, None) => "unlimited".to_owned(),
                    };
                    println!(
                        "tenant {name}: bytes {} of {}; files {} of {}",
                        usage.bytes,
                        show(q.bytes, cfg.limits.quota_bytes),
                        usage.files,
                        show(q.files, cfg.limits.quota_files)
                    );
                    if usage.reserved_bytes > 0 || usage.reserved_files > 0 {
                        println!(
                            "uploads in flight hold {} bytes, {} file(s)",
                            usage.reserved_bytes, usage.reserved_files
                        );
                    }
                }
                TenantCommand::RevokeUrls { name } => {
                    let name = tenant_name(&name)?;
                    let Some((tenant, _)) = meta.tenant_by_name(name.as_str()).await? else {
                        bail!("no tenant {name}");
                    };
                    let now = mtfu::domain::now_micros();
                    let Some(at) = meta.revoke_urls(tenant.id, now).await? else {
                        bail!("no tenant {name}");
                    };
                    println!(
                        "download links of {name} issued before {} are revoked",
                        mtfu::domain::format_micros(at)
                    );
                }
            }
        }
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
