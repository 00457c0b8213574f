//! Compiles the tessera.v1 standard with protox (pure Rust): no `protoc` is
//! needed on any machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "tessera/v1/badge.proto",
        "tessera/v1/trust.proto",
        "tessera/v1/privacy.proto",
        "tessera/v1/node.proto",
        "tessera/v1/gateway.proto",
        "tessera/bench/v1/echo.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    // For server reflection: what `grpcurl list` and friends read.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("tessera_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // The messages are always built; the gRPC client and server modules sit
    // behind this crate's `client` and `server` features, so a crate that
    // needs only the messages (tessera-core, an offline verifier) builds
    // without tonic and its server stack. No `connect` helper is generated:
    // channels are made by the serving runtime with its TLS configuration.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .client_mod_attribute(".", "#[cfg(feature = \"client\")]")
        .server_mod_attribute(".", "#[cfg(feature = \"server\")]")
        .compile_fds(descriptors)?;
    Ok(())
}
