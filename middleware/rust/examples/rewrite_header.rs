//! Sets header NAME to VALUE on every request (kind 1); passes everything else unchanged.
//!
//! `shadowtap --input-file in.gor --middleware "target/release/examples/rewrite_header X-Shadow yes" --output-stdout`

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, value] = &args[..] else {
        eprintln!("usage: rewrite_header NAME VALUE");
        return ExitCode::from(2);
    };
    if name.is_empty() || name.contains([':', '\r', '\n']) || value.contains(['\r', '\n']) {
        eprintln!(
            "rewrite_header: header name/value must not contain CR or LF (or ':' in the name)"
        );
        return ExitCode::from(2);
    }
    let result = shadowtap_middleware::run(|mut msg| {
        if msg.is_request() {
            msg.set_header(name, value);
        }
        Some(msg)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rewrite_header: {err}");
            ExitCode::FAILURE
        }
    }
}
