//! `process.rlimits`.

use anyhow::Result;
use oci_spec::runtime::PosixRlimit;

/// Apply each rlimit to the calling process. An error names the limit and, when the hard
/// limit cannot be raised, says so.
pub fn apply(_rlimits: &[PosixRlimit]) -> Result<()> {
    anyhow::bail!("rlimits are not available in this build")
}
