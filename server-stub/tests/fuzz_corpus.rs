//! Replays the kept corpus of the `server_request` fuzz target through the same
//! property check: every request gets an answer, never a panic or a 5xx.

use std::path::Path;

#[test]
fn server_request_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_request");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        gapless_server::fuzz_checks::request(&data);
        count += 1;
    }
    assert!(count > 0, "the corpus is empty");
}

#[test]
fn server_wire_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_wire");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        gapless_server::fuzz_checks::wire(&data);
        count += 1;
    }
    assert!(count > 0, "the corpus is empty");
}
