//! Replays every committed fuzz seed and every past crash through its target on stable Rust.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(folder).join(target)) else {
            continue;
        };
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

#[test]
fn every_target_has_a_seed_corpus_and_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("plugins/fuzz");
    for target in shadowtap_fuzz_targets::TARGETS {
        assert!(
            !inputs(target.name).is_empty(),
            "no seeds for {}",
            target.name
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "plugins/fuzz has no binary for {}",
            target.name
        );
    }
}

#[test]
fn seeds_and_past_crashes_pass() {
    let mut replayed = 0;
    for target in shadowtap_fuzz_targets::TARGETS {
        for input in inputs(target.name) {
            let data = std::fs::read(&input).expect("readable seed");
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "{} fails on {}",
                target.name,
                input.display()
            );
            replayed += 1;
        }
    }
    println!("replayed {replayed} inputs");
}
