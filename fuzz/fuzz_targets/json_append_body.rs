//! Fuzz target: gapless-core's json append body (see core/src/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_core::fuzz_checks::json_append_body(data);
});
