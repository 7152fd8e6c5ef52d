//! Fuzz target: gapless-core's sse decoder (see core/src/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_core::fuzz_checks::sse_decoder(data);
});
