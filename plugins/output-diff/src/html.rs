//! Interim page (replaced by the real renderer).
use serde_json::Value;
/// The page.
pub fn render(report: &Value) -> String {
    format!(
        "<!doctype html><pre>{}</pre>",
        report.to_string().replace('<', "&lt;")
    )
}
