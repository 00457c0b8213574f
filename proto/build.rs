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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
