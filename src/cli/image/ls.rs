//! `capsa image ls`: the table and JSON listings of the local store.

use anyhow::{bail, Result};
use serde_json::json;

use capsa_image::images::ImageStore;

use super::super::args::Parsed;

/// `capsa image ls`: the store's images as a table (docker's look) or JSON.
pub(super) fn ls(store: &ImageStore, p: &Parsed) -> Result<i32> {
    let list = store.list()?;
    if p.on("quiet") {
        for r in &list {
            println!("{}", r.name);
        }
        return Ok(0);
    }
    let rows: Vec<(String, String, u64, usize)> = list
        .iter()
        .map(|r| {
            let (size, layers) = store
                .load(&r.digest)
                .map(|(m, _)| (m.layers.iter().map(|l| l.size).sum(), m.layers.len()))
                .unwrap_or((0, 0));
            (r.name.clone(), r.config.hex()[..12].to_owned(), size, layers)
        })
        .collect();
    match p.get("format").unwrap_or("table") {
        "json" => {
            let v: Vec<_> = list
                .iter()
                .zip(&rows)
                .map(|(r, row)| {
                    json!({"name": r.name, "id": r.config, "digest": r.digest, "size": row.2,
                           "layers": row.3, "source": r.source, "added": r.added})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
            println!("{:<w$}  {:<12}  {:>10}  LAYERS", "NAME", "IMAGE ID", "SIZE");
            for (n, id, size, layers) in rows {
                println!("{n:<w$}  {id:<12}  {:>10}  {layers}", human(size));
            }
        }
        f => bail!("--format {f:?}: table or json"),
    }
    Ok(0)
}

/// A size as docker prints it (kB, MB, GB of 1024).
fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
