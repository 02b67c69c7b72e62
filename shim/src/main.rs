fn main() {
    std::process::exit(capsa_shim::shim::main());
}
