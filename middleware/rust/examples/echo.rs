//! Passes every message on unchanged.
//!
//! `shadowtap --input-file in.gor --middleware "target/release/examples/echo" --output-stdout`

fn main() -> std::io::Result<()> {
    shadowtap_middleware::run(Some)
}
