//! Links the `capsa-shim` binary statically: one shim per container, so its resident
//! memory counts a thousandfold (see `build/static_link.rs`).
#[path = "../build/static_link.rs"]
mod static_link;

fn main() {
    static_link::bin("capsa-shim");
}
