//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`) through the same property
//! checks the fuzz targets run, so every input the fuzzer ever found interesting (and
//! every crash it found, once fixed) stays a regression test.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        check(&data);
        count += 1;
    }
    assert!(count > 0, "the corpus of {target} is empty");
}

#[test]
fn sse_decoder_corpus() {
    replay("sse_decoder", gapless_core::fuzz_checks::sse_decoder);
}

#[test]
fn offset_parse_corpus() {
    replay("offset_parse", gapless_core::fuzz_checks::offset_parse);
}

#[test]
fn envelope_decode_corpus() {
    replay(
        "envelope_decode",
        gapless_core::fuzz_checks::envelope_decode,
    );
}

#[test]
fn json_append_body_corpus() {
    replay(
        "json_append_body",
        gapless_core::fuzz_checks::json_append_body,
    );
}
