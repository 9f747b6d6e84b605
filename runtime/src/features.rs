//! `runrs features`: the OCI features document.

/// The features JSON, pretty-printed as runc prints it.
pub fn json() -> String {
    String::from("{}")
}
