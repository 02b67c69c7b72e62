fn main() {
    if std::env::args().nth(1).as_deref() == Some("--pause") {
        std::process::exit(capsa_shim::pause::run());
    }
    std::process::exit(capsa_shim::shim::main());
}
