//! The five capability sets of `process.capabilities`.

use anyhow::Result;
use oci_spec::runtime::LinuxCapabilities;

/// Drop every capability not in the bounding set of `caps` from the bounding set. Runs while
/// still root (needs `CAP_SETPCAP`), before the uid change.
pub fn drop_bounding(_caps: &LinuxCapabilities) -> Result<()> {
    anyhow::bail!("capabilities are not available in this build")
}

/// Set effective, permitted and inheritable, then raise ambient. Runs after the uid change
/// (with `PR_SET_KEEPCAPS` set before it). A capability the runtime itself does not hold is
/// an error that names it.
pub fn apply(_caps: &LinuxCapabilities) -> Result<()> {
    anyhow::bail!("capabilities are not available in this build")
}
