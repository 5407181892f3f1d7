//! `mtfu tenant ...`: add, list, remove tenants; passwords, sessions, quotas and download links.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use mtfu::app::{build_auth, open_stores};
use mtfu::config::Config;
use mtfu::domain::TenantName;
use mtfu::meta::{Meta, MetaError};

use super::args::TenantCommand;

/// Run one tenant subcommand against the configured stores.
pub async fn run(cfg: &Config, command: TenantCommand) -> anyhow::Result<()> {
    let (meta, _) = open_stores(cfg).await?;
    match command {
        TenantCommand::Add { name } => {
            // NFKC, one script; unique by look-alike key (the store refuses a clash).
            let name =
                TenantName::new_account(&name).map_err(|m| anyhow::anyhow!("{name:?}: {m}"))?;
            let hash = build_auth(cfg)?.hash_password(read_password()?).await?;
            meta.create_tenant(&name, &hash)
                .await
                .with_context(|| format!("adding tenant {name}"))?;
            println!("tenant {name} added");
        }
        TenantCommand::List { json } => {
            let now = mtfu::domain::now_micros();
            let defaults = (cfg.limits.quota_bytes, cfg.limits.quota_files);
            let mut rows = Vec::new();
            for e in meta.list_tenants().await? {
                let (u, q) = meta.usage(e.tenant.id, now).await?;
                rows.push(serde_json::json!({
                    "name": e.tenant.name.as_str(),
                    "files": u.files,
                    "bytes": u.bytes,
                    "quota_bytes": q.bytes.resolve(defaults.0),
                    "quota_files": q.files.resolve(defaults.1),
                    "reserved_bytes": u.reserved_bytes,
                    "reserved_files": u.reserved_files,
                    "created": rfc3339(Some(e.created_at)),
                    "last_login": rfc3339(e.last_login_at),
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
                    "{:<24} {:>8} {:>14} {:>14} {:>10} {:>14} {:<20} {:<20}",
                    "NAME",
                    "FILES",
                    "BYTES",
                    "QUOTA_BYTES",
                    "QUOTA_FILES",
                    "RESERVED",
                    "CREATED",
                    "LAST_LOGIN"
                );
                for r in &rows {
                    println!(
                        "{:<24} {:>8} {:>14} {:>14} {:>10} {:>14} {:<20} {:<20}",
                        show(&r["name"]),
                        show(&r["files"]),
                        show(&r["bytes"]),
                        show(&r["quota_bytes"]),
                        show(&r["quota_files"]),
                        show(&r["reserved_bytes"]),
                        to_seconds(show(&r["created"])),
                        to_seconds(show(&r["last_login"]))
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
            let hash = build_auth(cfg)?.hash_password(read_password()?).await?;
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
    Ok(())
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

pub fn tenant_name(s: &str) -> anyhow::Result<TenantName> {
    TenantName::parse(s).map_err(|m| anyhow::anyhow!("{s:?}: {m}"))
}

/// The demo tenants john1..john10 with the password `test` (like the original init_data).
pub async fn init_data(cfg: &Config, meta: &Meta) -> anyhow::Result<()> {
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

/// A time for `--json`: RFC 3339 with microseconds, or null (never logged in).
fn rfc3339(t: Option<mtfu::domain::Micros>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        mtfu::domain::format_micros(t).into()
    })
}

/// A time for the table: RFC 3339 to the second (`2026-12-02T04:50:00Z`).
fn to_seconds(t: String) -> String {
    match t.get(..19) {
        Some(secs) if t.len() > 20 => format!("{secs}Z"),
        _ => t,
    }
}
