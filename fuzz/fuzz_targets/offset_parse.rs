//! Fuzz target: gapless-core's offset parse (see core/src/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_core::fuzz_checks::offset_parse(data);
});
