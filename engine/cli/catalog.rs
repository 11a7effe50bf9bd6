//! The catalog a command works with: the shipped definitions, then user folders or files.

use std::path::PathBuf;

use anyhow::Result;
use svodka_report::catalog::{read_dir, read_file};
use svodka_report::{Catalog, SourceFile};

include!(concat!(env!("OUT_DIR"), "/builtin_reports.rs"));

/// Shipped definitions, then each path (folder or file) in order; later ids replace earlier.
pub fn load(paths: &[PathBuf]) -> Result<Catalog> {
    Ok(Catalog::from_sources(files(paths)?)?)
}

/// The files `load` reads.
pub fn files(paths: &[PathBuf]) -> Result<Vec<SourceFile>> {
    let mut files: Vec<SourceFile> = BUILTIN_FILES
        .iter()
        .map(|(name, text)| SourceFile::new(*name, *text))
        .collect();
    for p in paths {
        if p.is_dir() {
            files.extend(read_dir(p)?);
        } else {
            files.push(read_file(p)?);
        }
    }
    Ok(files)
}
