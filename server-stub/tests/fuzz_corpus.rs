//! Replays the kept corpora of the server's fuzz targets through the same property
//! checks: `server_request` (every request gets an answer, never a panic or a 5xx)
//! and `server_wire` (the lean HTTP layer answers as hyper and the router do).

use std::path::Path;

/// Runs `check` over every input kept in `fuzz/corpus/<target>`, which must hold some.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        check(&data);
        count += 1;
    }
    assert!(count > 0, "the corpus of {target} is empty");
}

#[test]
fn server_request_corpus() {
    replay("server_request", gapless_server::fuzz_checks::request);
}

#[test]
fn server_wire_corpus() {
    replay("server_wire", gapless_server::fuzz_checks::wire);
}
