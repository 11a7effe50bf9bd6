//! Embeds the shipped report and model files into the crate, so that `svodka` (CLI and
//! service) works from any directory; folders given later layer over them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let reports = root
        .join("../../reports")
        .canonicalize()
        .expect("the reports folder");
    // Shown as `reports/…` in messages.
    let base = reports
        .parent()
        .expect("reports has a parent")
        .to_path_buf();
    println!("cargo:rerun-if-changed=../../reports");
    let mut files = Vec::new();
    collect(&reports, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Shipped definition files: (path shown in messages, text).\npub const BUILTIN_FILES: &[(&str, &str)] = &[\n",
    );
    for f in files {
        let shown = f.strip_prefix(&base).unwrap_or(&f).display().to_string();
        writeln!(
            code,
            "    ({shown:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("builtin_reports.rs");
    std::fs::write(out, code).expect("write builtin_reports.rs");
}
