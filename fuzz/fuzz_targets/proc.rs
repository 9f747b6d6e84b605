//! /proc parsers: mountinfo and /proc/<pid>/cgroup (split at the first NUL), and
//! /proc/<pid>/stat.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (mountinfo, cgroup) = text.split_once('\0').unwrap_or((&text, "0::/\n"));
    runrs::fuzzing::proc_cgroups(mountinfo, cgroup);
    runrs::fuzzing::proc_stat(&text);
});
