//! state.json as the commands after create load it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runrs::fuzzing::state_json(data);
});
