//! Per-layer progress bars on a terminal (indicatif).
//!
//! The CLI calls [`enable`] when stderr is a terminal and `--quiet` is not
//! given; from then on layer downloads and unpacks each get a byte bar in one
//! [`MultiProgress`], and progress lines go above the bars ([`println`]).
//! Without [`enable`] (not a terminal, `--quiet`, the library used on its
//! own) [`layer`] gives `None` and nothing is drawn: the plain lines stay.

use std::io::Read;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Turns the bars on (stderr, for this process).
pub fn enable() {
    BARS.get_or_init(MultiProgress::new);
}

/// Prints `line` above the bars; false when the bars are off (the caller
/// prints it itself).
pub fn println(line: &str) -> bool {
    match BARS.get() {
        Some(m) => {
            let _ = m.println(line);
            true
        }
        None => false,
    }
}

/// A byte bar for one layer (`what`: "download" / "unpack"), when the bars
/// are on.
pub fn layer(what: &str, index: usize, total: usize, digest: &crate::Digest, size: u64) -> Option<ProgressBar> {
    BARS.get().map(|m| m.add(layer_bar(what, index, total, digest, size)))
}

fn layer_bar(what: &str, index: usize, total: usize, digest: &crate::Digest, size: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{spinner} {prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let hex = digest.hex();
    ProgressBar::new(size)
        .with_style(style)
        .with_prefix(format!("{what:<8} {index}/{total} {}", &hex[..hex.len().min(12)]))
}

/// A reader that advances a bar by the bytes read through it.
pub struct Counting<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Counting<R> {
    /// Wraps `inner`; `bar` None counts nothing.
    pub fn new(inner: R, bar: Option<ProgressBar>) -> Counting<R> {
        Counting { inner, bar }
    }

    /// Marks the bar done (kept on screen) or, on `ok == false`, abandoned.
    pub fn finish(&self, ok: bool) {
        if let Some(b) = &self.bar {
            if ok {
                b.finish_with_message("done");
            } else {
                b.abandon_with_message("failed");
            }
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_reader_advances_the_bar() {
        let d = crate::Digest::sha256_of(b"x");
        let bar = layer_bar("download", 1, 2, &d, 10_000);
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        let data = vec![7u8; 10_000];
        let mut r = Counting::new(&data[..], Some(bar.clone()));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        r.finish(true);
        assert_eq!((out.len() as u64, bar.position(), bar.length()), (10_000, 10_000, Some(10_000)));
        assert!(bar.is_finished());
        assert_eq!(bar.prefix(), format!("download 1/2 {}", &d.hex()[..12]));
        // Off by default: no bars, no lines taken.
        assert!(layer("unpack", 1, 1, &d, 1).is_none() && !println("x"));
    }
}
