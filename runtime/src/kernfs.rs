//! Reading the small text files the kernel generates (procfs, cgroupfs).
//!
//! They report a size of 0, so `fs::read_to_string` starts with a 32-byte probe and doubles
//! from there: eight read(2) calls for a mountinfo, each making the kernel render more of it.
//! One page-sized buffer takes most of them in one call. `File::read_to_string` would also
//! stat the file and ask for its position first (for a size hint that is always 0 here): two
//! system calls of six, so the file is read with plain `read`s until the end instead.

use std::io::Read;
use std::path::Path;

pub fn read(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

    #[test]
    fn reads_past_the_first_buffer() {
        // A mountinfo of thousands of mounts outgrows the first read's buffer.
        let dir = std::env::temp_dir().join(format!("runrs-kernfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let text: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() > 3 * 8192);
        std::fs::write(&path, &text).unwrap();
        let read = super::read(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.unwrap(), text);
    }
}
