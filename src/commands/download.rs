//! `pgsafe download`: the verified, decompressed archive, for the manual pg_restore path.

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::{open_repo, print_json, Ctx};
use crate::catalog;
use crate::cli::DownloadArgs;
use crate::config::Config;
use crate::error::Error;
use crate::restore::fetch;

pub async fn run(
    args: DownloadArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    if args.output.exists() {
        return Err(
            Error::usage(format!("{} already exists", args.output.display()))
                .hint("pick a new file name; pgsafe never overwrites a file")
                .into(),
        );
    }
    let storage = open_repo(&args.repo, config).await?;
    let manifest = catalog::resolve(storage.as_ref(), &args.id, args.database.as_deref()).await?;
    let parent = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Downloaded beside the output so the final rename stays on one file system.
    let (_work, fetched) = fetch::fetch_into(
        storage.as_ref(),
        &manifest,
        args.pg_bin_dir.as_deref(),
        &parent,
        "download",
        ctx.progress,
        &cancel,
    )
    .await?;
    std::fs::hard_link(&fetched.archive, &args.output)
        .with_context(|| format!("could not write {}", args.output.display()))?;
    let summary = serde_json::json!({
        "backup_id": manifest.backup_id,
        "path": args.output,
        "bytes": manifest.archive.bytes,
        "sha256": manifest.archive.sha256,
    });
    if ctx.json {
        print_json(&summary)?;
    } else {
        println!(
            "{} written: backup {}, {}, SHA-256 {} (verified)",
            args.output.display(),
            manifest.backup_id,
            crate::output::bytes(manifest.archive.bytes),
            manifest.archive.sha256
        );
        println!(
            "restore it by hand with: pg_restore --no-owner --no-acl -d <database> {}",
            args.output.display()
        );
    }
    Ok(())
}
