//! containerd API definitions (generated from proto/ in build.rs once the shim lands).
