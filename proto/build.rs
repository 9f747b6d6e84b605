//! Generates Rust for the containerd .proto files in proto/ into OUT_DIR.
//! Pure Rust (ttrpc-codegen's parser): no protoc binary is needed.

use std::fs;
use std::path::{Path, PathBuf};

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

/// Messages only.
const MESSAGES: &[&str] = &[
    "mount.proto",
    "task.proto",
    "task_events.proto",
    "runc_options.proto",
    "runtime_options.proto",
    "metrics_v1.proto",
    "metrics_v2.proto",
];
/// Files that declare a ttrpc service too (`<name>_ttrpc.rs` is generated for them).
const SERVICES: &[&str] = &["shim.proto", "events.proto"];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let gen_dir = out.join("gen");
    fs::create_dir_all(&gen_dir).expect("create OUT_DIR/gen");
    println!("cargo:rerun-if-changed=proto");

    let inputs: Vec<PathBuf> = MESSAGES
        .iter()
        .chain(SERVICES)
        .map(|f| Path::new("proto").join(f))
        .collect();
    Codegen::new()
        .out_dir(&gen_dir)
        .inputs(&inputs)
        .include("proto")
        .rust_protobuf()
        .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
        .customize(Customize::default())
        .run()
        .expect("generating Rust from proto/*.proto");

    // The generated files start with inner attributes and `//!` docs, which `include!`
    // does not accept: strip them and wrap every file in a module of its own name.
    let mut modules = String::new();
    let mut names: Vec<String> = Vec::new();
    for f in MESSAGES.iter().chain(SERVICES) {
        let stem = f.trim_end_matches(".proto");
        names.push(stem.to_string());
        if SERVICES.contains(f) {
            names.push(format!("{stem}_ttrpc"));
        }
    }
    for name in names {
        let src = gen_dir.join(format!("{name}.rs"));
        let text = fs::read_to_string(&src)
            .unwrap_or_else(|e| panic!("reading generated {}: {e}", src.display()));
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
            .map(|l| format!("{l}\n"))
            .collect();
        let dst = out.join(format!("{name}.rs"));
        fs::write(&dst, body).expect("write cleaned generated file");
        modules.push_str(&format!(
            "#[allow(warnings, clippy::all, clippy::undocumented_unsafe_blocks)]\npub mod {name} {{ include!(concat!(env!(\"OUT_DIR\"), \"/{name}.rs\")); }}\n"
        ));
    }
    fs::write(out.join("modules.rs"), modules).expect("write modules.rs");
}
