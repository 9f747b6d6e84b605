//! Reading the small text files the kernel generates (procfs, cgroupfs).
//!
//! They report a size of 0, so `fs::read_to_string` starts with a 32-byte probe and doubles
//! from there: eight read(2) calls for a mountinfo, each making the kernel render more of it.
//! One page-sized buffer takes most of them in one call.

use std::io::Read;
use std::path::Path;

pub fn read(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut text = String::with_capacity(8192);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_generated_files_whole() {
        for file in ["/proc/self/limits", "/proc/self/cgroup"] {
            let text = super::read(file).unwrap();
            assert_eq!(text, std::fs::read_to_string(file).unwrap());
            assert!(text.ends_with('\n'), "{file}: {text:?}");
        }
        assert!(super::read("/proc/self/no-such-file").is_err());
    }
}
