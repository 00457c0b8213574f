//! CSV import of records (`tessera node import`): the parser and the
//! per-record validation the node applies before storing anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_node::import::parse_csv;
use tessera_node::records::{self, EARLIEST_RECORD, FUTURE_SKEW_SECS};

/// 2026-12-01T00:00:00Z: after every time in the seed corpus.
const NOW: i64 = 1_796_083_200;

fuzz_target!(|data: &[u8]| {
    let Ok((rows, errors)) = parse_csv(data) else {
        return;
    };
    // Line numbers count the header as line 1 and only go forward.
    let mut last = 1;
    for (line, _) in &rows {
        assert!(*line > last, "line {line} after {last}");
        last = *line;
    }
    for error in &errors {
        assert!(error.line >= 2);
        assert!(!error.reason.is_empty());
    }
    for (_, record) in &rows {
        match records::validate(record, NOW) {
            Ok(valid) => {
                assert_eq!(valid.record_id, record.record_id);
                assert!(valid.stored.national_id.is_empty());
                let (_, time) = records::type_and_time(&valid.stored).unwrap();
                assert!((EARLIEST_RECORD..=NOW + FUTURE_SKEW_SECS).contains(&time));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
