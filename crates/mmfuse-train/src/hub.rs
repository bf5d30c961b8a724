//! Pretrained model folders by path or by Hugging Face hub id, offline first.
//!
//! `model.text_encoder` (and `clip-embed --clip`) accept a local folder, used as is, or a hub
//! id such as `bert-base-uncased` / `sentence-transformers/all-MiniLM-L6-v2`: the files are
//! taken from the Hugging Face cache (`$HF_HOME/hub`, as the Python `huggingface_hub` writes
//! it) when all are there, otherwise downloaded into it with the `hf-hub` crate — unless
//! `HF_HUB_OFFLINE=1` — and otherwise the error names the missing files and where to put them.

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// Whether `s` reads as a hub id (`name` or `org/name`) rather than a path.
pub fn looks_like_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    !s.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        && !s.starts_with('.')
}

/// The folder holding `files` for `spec` (a folder path, or a hub id; see the module docs).
pub fn resolve_folder(spec: &Path, files: &[&str], what: &str) -> Result<PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    let s = spec.to_string_lossy();
    if !looks_like_hub_id(&s) {
        bail!("{what} = {}: no such folder (expected a folder with {})", spec.display(), files.join(", "));
    }
    let cache = hf_hub::Cache::from_env();
    let repo = cache.model(s.to_string());
    let cached: Vec<Option<PathBuf>> = files.iter().map(|f| repo.get(f)).collect();
    if let Some(Some(first)) = cached.first()
        && cached.iter().all(Option::is_some)
    {
        return Ok(first.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
    let missing: Vec<&str> = files.iter().zip(&cached).filter(|(_, c)| c.is_none()).map(|(f, _)| *f).collect();
    let hint = format!(
        "{what} = {s}: not a local folder, and the Hugging Face cache ({}) lacks {}. Download the model's {} into a folder and set {what} to that folder",
        cache.path().join(format!("models--{}", s.replace('/', "--"))).display(),
        missing.join(", "),
        files.join(", ")
    );
    if offline {
        bail!("{hint} (HF_HUB_OFFLINE is set, so nothing was downloaded)");
    }
    let api = match hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(false).build() {
        Ok(a) => a,
        Err(e) => bail!("{hint} (the hub client could not start: {e})"),
    };
    let r = api.model(s.to_string());
    let mut dir = None;
    for f in files {
        match r.get(f) {
            Ok(p) => dir = p.parent().map(Path::to_path_buf),
            Err(e) => bail!("{hint} (download of {f} failed: {e})"),
        }
    }
    Ok(dir.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths() {
        for id in ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2", "openai/clip-vit-base-patch32"] {
            assert!(looks_like_hub_id(id), "{id}");
        }
        for p in ["", "./models/bert", "../shared/models/x", "/abs/path", "a/b/c", "models/bert base", ".hidden"] {
            assert!(!looks_like_hub_id(p), "{p}");
        }
    }

    #[test]
    fn cached_snapshot_is_found_offline_and_missing_files_are_named() {
        let home = std::env::temp_dir().join(format!("mmfuse-hf-{}", std::process::id()));
        let snap = home.join("hub/models--acme--tiny-bert/snapshots/0123abcd");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(home.join("hub/models--acme--tiny-bert/refs")).unwrap();
        std::fs::write(home.join("hub/models--acme--tiny-bert/refs/main"), "0123abcd").unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::write(snap.join(f), "x").unwrap();
        }
        // the cache is read from HF_HOME; this test owns that variable (no other test reads it)
        unsafe {
            std::env::set_var("HF_HOME", &home);
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let dir = resolve_folder(Path::new("acme/tiny-bert"), &["config.json", "model.safetensors"], "model.text_encoder").unwrap();
        assert_eq!(dir, snap);
        let e = resolve_folder(Path::new("acme/tiny-bert"), &["config.json", "model.safetensors", "tokenizer.json"], "model.text_encoder").unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("lacks tokenizer.json") && e.contains("models--acme--tiny-bert") && e.contains("HF_HUB_OFFLINE"), "{e}");
        let e = format!("{:#}", resolve_folder(Path::new("./no/such/dir"), &["config.json"], "model.text_encoder").unwrap_err());
        assert!(e.contains("no such folder"), "{e}");
        let _ = std::fs::remove_dir_all(&home);
    }
}
