//! Links the `capsa` runtime binary statically: it is exec'd on every container
//! start, and a static binary starts without the dynamic loader and keeps no
//! unused libc pages resident (see `build/static_link.rs`). `capsa-image` (the
//! human-facing verbs, with DNS lookups through glibc's NSS) stays dynamic.
#[path = "build/static_link.rs"]
mod static_link;

fn main() {
    static_link::bin("capsa");
}
