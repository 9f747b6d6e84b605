//! OCI seccomp profiles (the resources-and-confinement issue).

use anyhow::Result;
use oci_spec::runtime::LinuxSeccomp;

/// Refuse a profile until seccomp lands: running a container without the filter its config
/// asks for would silently weaken it.
pub fn check_supported(seccomp: Option<&LinuxSeccomp>) -> Result<()> {
    if seccomp.is_some() {
        anyhow::bail!("linux.seccomp is not supported by this build of runrs yet");
    }
    Ok(())
}
