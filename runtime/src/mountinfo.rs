//! The few facts read from `/proc/self/mountinfo`.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// The path inside the filesystem that is mounted (`/` for a whole filesystem).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields, e.g. `shared:1 master:2`.
    pub optional: String,
    pub fs_type: String,
    pub super_options: String,
}

pub(crate) fn read_mountinfo() -> Result<Vec<MountInfo>> {
    let text = crate::kernfs::read("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(parse(&text))
}

/// Every well-formed line of mountinfo `text`.
pub(crate) fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let _dev = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let _options = fields.next()?;
    let optional = fields.collect::<Vec<_>>().join(" ");
    let mut fields = after.split(' ');
    let fs_type = fields.next()?.to_string();
    let _source = fields.next()?;
    let super_options = fields.next().unwrap_or("").to_string();
    Some(MountInfo {
        root,
        mount_point,
        optional,
        fs_type,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Three octal digits that make a byte (the kernel writes at most \377).
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escape_beyond_a_byte_stays_as_written() {
        // Found by fuzz/ (proc): `\777` overflowed the byte it was decoded into.
        assert_eq!(unescape(r"/a\777b"), PathBuf::from(r"/a\777b"));
        use std::os::unix::ffi::OsStringExt;
        let decoded = std::ffi::OsString::from_vec(b"/a b\xff".to_vec());
        assert_eq!(unescape(r"/a\040b\377"), PathBuf::from(decoded));
    }

    #[test]
    fn parses_mountinfo_lines() {
        let line = "32 31 0:29 / /sys/fs/cgroup/cpu\\040x rw,relatime shared:5 master:1 - cgroup cgroup rw,cpu";
        let info = parse_line(line).unwrap();
        assert_eq!(info.mount_point, PathBuf::from("/sys/fs/cgroup/cpu x"));
        assert_eq!(info.root, PathBuf::from("/"));
        assert_eq!(info.optional, "shared:5 master:1");
        assert_eq!(info.fs_type, "cgroup");
        assert_eq!(info.super_options, "rw,cpu");
    }
}
