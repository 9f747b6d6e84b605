//! Generates Rust for CRIU's RPC messages (proto/criu_rpc.proto) into OUT_DIR with the
//! pure-Rust parser of ttrpc-codegen (no protoc binary), messages only.

use std::fs;
use std::path::PathBuf;

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let gen_dir = out.join("gen");
    fs::create_dir_all(&gen_dir).expect("create OUT_DIR/gen");
    println!("cargo:rerun-if-changed=proto/criu_rpc.proto");
    // How the release binary is linked (.cargo/runrs-linker): a change must relink it.
    println!("cargo:rerun-if-changed=../.cargo/runrs-linker");
    println!("cargo:rerun-if-changed=runrs.order");
    println!("cargo:rerun-if-env-changed=RUNRS_LINK_PIE");
    println!("cargo:rerun-if-env-changed=RUNRS_LINK_DYNAMIC");
    Codegen::new()
        .out_dir(&gen_dir)
        .inputs(["proto/criu_rpc.proto"])
        .include("proto")
        .rust_protobuf()
        .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
        .customize(Customize::default())
        .run()
        .expect("generating Rust from proto/criu_rpc.proto");
    // `include!` does not take the inner attributes and `//!` docs the generator writes.
    let text = fs::read_to_string(gen_dir.join("criu_rpc.rs")).expect("read generated file");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(out.join("criu_rpc.rs"), body).expect("write cleaned generated file");
}
