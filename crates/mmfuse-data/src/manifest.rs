//! Checksummed folders: `manifest.json` lists each file of a folder (a checkpoint) with its size
//! and CRC-32, so that a truncated or damaged file is found when the folder is read, before its
//! bytes reach a parser. Written by the trainer's checkpoints, checked by resume and by
//! prediction.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file in a checked folder listing every other file's size and CRC-32.
pub const MANIFEST: &str = "manifest.json";

/// Size and CRC-32 of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    bytes: u64,
    crc32: u32,
}

impl FileSum {
    /// The sum of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self { bytes: bytes.len() as u64, crc32: crc32fast::hash(bytes) }
    }
}

/// File name → size and checksum, as `manifest.json` holds them.
pub type Manifest = std::collections::BTreeMap<String, FileSum>;

/// The manifest of the folder `dir`; `None` for a folder written before manifests.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let mp = dir.join(MANIFEST);
    if !mp.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&mp).map_err(|e| DataError::io(&mp, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| DataError::Other(format!("{} is corrupt: {e}", mp.display())))
}

/// Check the bytes of file `name` of the folder `dir` against the manifest's entry.
pub fn check(dir: &Path, manifest: &Manifest, name: &str, bytes: &[u8]) -> Result<()> {
    let Some(want) = manifest.get(name) else { return Ok(()) };
    let (p, got) = (dir.join(name), FileSum::of(bytes));
    if got.bytes != want.bytes {
        return Err(DataError::Other(format!("{} has {} bytes, its manifest says {} (truncated or overwritten)", p.display(), got.bytes, want.bytes)));
    }
    if got.crc32 != want.crc32 {
        return Err(DataError::Other(format!(
            "{} does not match its checksum (crc32 {:08x}, manifest {:08x}): the file is damaged",
            p.display(),
            got.crc32,
            want.crc32
        )));
    }
    Ok(())
}

/// Read file `name` of the folder `dir` once, checked against `manifest`: `None` when it is
/// absent and the manifest does not list it.
pub fn read_checked(dir: &Path, manifest: Option<&Manifest>, name: &str) -> Result<Option<Vec<u8>>> {
    let p = dir.join(name);
    if !p.is_file() {
        if manifest.is_some_and(|m| m.contains_key(name)) {
            return Err(DataError::Other(format!("{} is missing", p.display())));
        }
        return Ok(None);
    }
    let bytes = std::fs::read(&p).map_err(|e| DataError::io(&p, e))?;
    if let Some(m) = manifest {
        check(dir, m, name, &bytes)?;
    }
    Ok(Some(bytes))
}

/// [`read_checked`] of a file that must be there.
pub fn read_required(dir: &Path, manifest: Option<&Manifest>, name: &str) -> Result<Vec<u8>> {
    read_checked(dir, manifest, name)?.ok_or_else(|| DataError::Other(format!("{} is missing", dir.join(name).display())))
}

/// The file `path`, checked against the manifest of its folder where it has one.
pub fn read_file_checked(path: &Path) -> Result<Vec<u8>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| DataError::Other(format!("{}: not a file name", path.display())))?;
    read_required(dir, read_manifest(dir)?.as_ref(), name)
}
