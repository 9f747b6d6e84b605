//! config.json → validated spec → create's plan (everything before the first host change).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A bundle directory holding `rootfs/`, so that validation goes past the root check.
fn bundle() -> &'static PathBuf {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("runrs-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("make the fuzz bundle");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    runrs::fuzzing::config(data, bundle());
});
