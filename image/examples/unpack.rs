//! Applies one layer (plain, gzip or zstd tar) onto a directory and prints
//! the time taken and what was unpacked.
//!
//! ```text
//! cargo run --release --example unpack -- [--one-thread] LAYER TARGET_DIR
//! ```
//!
//! `--one-thread` inflates, hashes and applies on one thread, one after the
//! other (the default inflates and hashes on a second thread: `pipelined`).

use std::fs::File;
use std::time::Instant;

use capsa_image::apply::{apply_layer, ApplyOptions};

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let one_thread = args.iter().any(|a| a == "--one-thread");
    args.retain(|a| a != "--one-thread");
    if args.len() != 3 {
        eprintln!("usage: {} [--one-thread] LAYER TARGET_DIR", args[0]);
        std::process::exit(2);
    }
    let layer = File::open(&args[1]).unwrap_or_else(|e| {
        eprintln!("unpack: open {}: {e}", args[1]);
        std::process::exit(1)
    });
    std::fs::create_dir_all(&args[2]).expect("create target");
    let start = Instant::now();
    let opts = ApplyOptions { pipelined: !one_thread, ..ApplyOptions::default() };
    match apply_layer(layer, args[2].as_ref(), &opts) {
        Ok(st) => {
            let secs = start.elapsed().as_secs_f64();
            let c = &st.counts;
            println!(
                "unpacked {} entries ({} files, {} dirs, {} symlinks, {} hardlinks) in {:.3} s",
                c.entries, c.files, c.dirs, c.symlinks, c.hardlinks, secs
            );
            println!(
                "{:?}, {} MB uncompressed ({:.0} MB/s), diff_id {}",
                st.compression,
                st.tar_size / 1_000_000,
                st.tar_size as f64 / 1e6 / secs,
                st.diff_id
            );
        }
        Err(e) => {
            eprintln!("unpack: {e}");
            std::process::exit(1);
        }
    }
}
