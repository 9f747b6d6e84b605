//! Builds the CRI tests' sandbox ("pause") program, integration/pause/pause.rs, as a
//! static executable with the same rustc: `RUNRS_PAUSE_BIN` names it for the tests.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("pause/pause.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("pause");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run rustc for pause.rs");
    assert!(status.success(), "building {} failed", src.display());
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rustc-env=RUNRS_PAUSE_BIN={}", out.display());
}
