//! Durable file writes shared by every crate that writes run folders, checkpoints and prepared
//! datasets: a file is either the old version or the complete new one, never a torn write.

use crate::error::DataError;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Create `path`, write `bytes` and fsync it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut f = File::create(path).map_err(|e| DataError::write(path, e))?;
    f.write_all(bytes).map_err(|e| DataError::write(path, e))?;
    f.sync_all().map_err(|e| DataError::write(path, e))
}

/// fsync a folder so that renames inside it are durable (best effort: not every platform can
/// open a folder).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write `path` atomically: a temporary file in the same folder, fsync, rename over `path`,
/// fsync the folder. On an error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|s| s.to_str()).unwrap_or("file"), std::process::id()));
    let res = write_synced(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path).map_err(|e| DataError::write(path, e)));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("mmfuse-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        // a missing folder is an error naming the file, and nothing is left behind
        let err = write_atomic(&dir.join("missing/b.json"), b"x").unwrap_err().to_string();
        assert!(err.contains("b.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
