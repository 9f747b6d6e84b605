//! A seccomp profile (`linux.seccomp`, JSON) → its BPF program.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runrs::fuzzing::seccomp_profile(data);
});
