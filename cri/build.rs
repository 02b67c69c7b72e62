//! Generates the runtime.v1 gRPC types and services from the vendored CRI proto,
//! with protox (a proto compiler in Rust): no protoc binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // The records kept on disk hold the kubelet's configs as it sent them.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".", "#[serde(default)]")
        .compile_fds(fds)?;
    Ok(())
}
