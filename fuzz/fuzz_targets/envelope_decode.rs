//! Fuzz target: gapless-core's envelope decode (see core/src/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_core::fuzz_checks::envelope_decode(data);
});
