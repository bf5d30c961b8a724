//! Fuzzing of run configurations with `proptest`: every shipped config (`configs/*.toml`) with
//! random byte edits, and random `--set` overrides on a valid one, either parse into a checked
//! configuration or give an error — never a panic. `PROPTEST_CASES` sets the cases (CI: 256).

use mmfuse_testkit::cases;
use mmfuse_testkit::proptest::prelude::*;
use mmfuse_train::RunConfig;
use std::path::Path;

fn configs() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut v: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    v.sort();
    v.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn damaged_configs_never_panic(k in 0usize..64, e in mmfuse_testkit::edits()) {
        let all = configs();
        let b = mmfuse_testkit::mutate(all[k % all.len()].as_bytes(), &e);
        let _ = RunConfig::from_toml_str(&String::from_utf8_lossy(&b), &[]);
    }

    #[test]
    fn random_overrides_never_panic(
        key in prop::sample::select(vec!["data.task", "data.max_len", "model.method", "model.muse", "model.muse.exchange_ratio", "model.clfa.tau", "model.mim.fusion", "model", "train.devices", "train.lr", "train", "model.d_model", "x.y.z", "model.muse.x", "data"]),
        value in "[ -~]{0,24}",
    ) {
        let base = "[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n";
        let _ = RunConfig::from_toml_str(base, &[format!("{key}={value}")]);
        let _ = RunConfig::from_toml_str(base, &["model.method=\"muse\"".to_string(), format!("{key}={value}")]);
    }
}
