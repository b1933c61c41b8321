//! Compiles proto/citysense/v1/*.proto with protox (pure Rust), so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/citysense/v1/reading.proto",
        "proto/citysense/v1/window.proto",
        "proto/citysense/v1/alert.proto",
        "proto/citysense/v1/aggregate.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
