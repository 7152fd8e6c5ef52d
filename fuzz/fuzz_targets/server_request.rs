//! Fuzz target: any request to gapless-server gets an answer, never a panic or a 5xx
//! (see server-stub/src/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_server::fuzz_checks::request(data);
});
