//! Fuzz target: the server's lean HTTP layer answers any request on the wire exactly
//! as hyper and the router do (see server-stub/src/fuzz_checks/wire.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gapless_server::fuzz_checks::wire(data);
});
