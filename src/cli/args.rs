//! The command line: every subcommand and flag of `mtfu`, as clap derive definitions (kept
//! together, so that a man page or completions can be generated from [`Cli`] alone).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mtfu", version, about = "Multi-tenant file upload server")]
pub struct Cli {
    /// TOML configuration file (keys: see config/mtfu.toml); without it and MTFU_CONFIG,
    /// /etc/mtfu/config.toml when it exists. Environment: MTFU_* override it.
    #[arg(long, global = true, env = "MTFU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Let an admin command (tenant, gc, fsck) create an empty metadata store where none is;
    /// without it, a missing SQLite database is an error (a wrong --config, say).
    #[arg(long, global = true)]
    pub init: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum TenantCommand {
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
