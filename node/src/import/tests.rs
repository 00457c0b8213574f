//! The import's parsing, line numbering and limits.

use super::*;

const HEADER: &str = "record_id,national_id,type,time,test_kind,positive,lab";

fn row(record_id: &str, kind: &str) -> String {
    format!("{record_id},11010519491231002X,{kind},2026-11-27T08:00:00+08:00,pcr,false,HZ-LAB-01")
}

fn lines_of(input: &str) -> (Vec<u64>, Vec<(u64, String)>) {
    let (rows, errors) = parse_csv(input.as_bytes()).unwrap();
    (
        rows.iter().map(|(line, _)| *line).collect(),
        errors.into_iter().map(|e| (e.line, e.reason)).collect(),
    )
}

#[test]
fn line_numbers_are_an_editors_whatever_the_line_endings() {
    for ending in ["\n", "\r\n", "\r"] {
        // 1 header, 2 good, 3 bad type, 4 blank, 5 good, 6 one field.
        let file = [
            HEADER.to_owned(),
            row("a", "test"),
            row("b", "colour"),
            String::new(),
            row("c", "test"),
            "d".to_owned(),
        ]
        .join(ending);
        let (rows, errors) = lines_of(&file);
        assert_eq!(rows, [2, 5], "{ending:?}");
        let errors: Vec<u64> = errors.iter().map(|(line, _)| *line).collect();
        assert_eq!(errors, [3, 6], "{ending:?}");
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_file_over_the_limits_is_refused_without_being_read_whole() {
    let body: String = (0..10_000)
        .map(|i| row(&format!("r{i}"), "test") + "\n")
        .collect();
    let file = format!("{HEADER}\n{body}");
    let limits = Limits {
        max_bytes: 4096,
        max_rows: u64::MAX,
    };
    assert!(matches!(
        limits.check_size(file.len() as u64),
        Err(ImportError::TooLarge { limit: 4096, .. })
    ));
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = Counting {
        inner: file.as_bytes(),
        read: std::rc::Rc::clone(&read),
    };
    let err = parse_csv_within(input, limits).unwrap_err();
    assert!(
        matches!(err, ImportError::TooLarge { limit: 4096, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("limit of 4096 bytes"), "{err}");
    assert!(read.get() <= 4097, "read {} bytes", read.get());

    let limits = Limits {
        max_bytes: u64::MAX,
        max_rows: 3,
    };
    let err = parse_csv_within(file.as_bytes(), limits).unwrap_err();
    assert!(
        matches!(err, ImportError::TooManyRows { limit: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("more than 3 rows"), "{err}");
    // At the limit, it is read.
    let three = format!(
        "{HEADER}\n{}\n{}\n{}\n",
        row("a", "test"),
        row("b", "test"),
        row("c", "test")
    );
    assert_eq!(
        parse_csv_within(three.as_bytes(), limits).unwrap().0.len(),
        3
    );
    let exact = Limits {
        max_bytes: three.len() as u64,
        max_rows: 3,
    };
    assert!(parse_csv_within(three.as_bytes(), exact).is_ok());
}

#[test]
fn a_quoted_line_break_counts_as_a_line() {
    let file = format!(
        "{HEADER}\n\"a\nb\",11010519491231002X,test,2026-11-27T08:00:00+08:00,pcr,false,HZ\n{}\n",
        row("c", "colour")
    );
    let (rows, errors) = lines_of(&file);
    assert_eq!(rows, [2]);
    assert_eq!(errors[0].0, 4);
}

/// Found by `cargo fuzz run csv_import` (minimised): a bare CR after the
/// header put the next record on "line 1", the header's line.
#[test]
fn fuzz_bare_cr_after_the_header_is_line_2() {
    let (rows, errors) = lines_of("record_id,national_id,type,time\r5");
    assert!(rows.is_empty());
    assert_eq!(
        errors,
        [(2, "has 1 field(s) where the header has 4".to_owned())]
    );
}

#[test]
fn csv_errors_do_not_repeat_csvs_own_line_count() {
    let (_, errors) = lines_of(&format!("{HEADER}\r\n{}\r\nx,\u{0}\r\n", row("a", "test")));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 3);
    assert!(!errors[0].1.contains("line"), "{}", errors[0].1);
    let bad_utf8 = [HEADER.as_bytes(), b"\n\xff,1,2,3,4,5,6\n"].concat();
    let (_, errors) = parse_csv(bad_utf8.as_slice()).unwrap();
    assert_eq!(errors[0].line, 2);
    assert_eq!(
        errors[0].reason,
        "field 1 is not valid UTF-8 (after byte 0)"
    );
}

/// Hands out at most 7 bytes a read, so that line breaks, a CRLF's two
/// bytes among them, fall across the reads.
struct Dribble<'a>(&'a [u8]);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn line_numbers_stay_exact_across_reads_and_buffers() {
    for ending in ["\n", "\r\n", "\r"] {
        // 20,000 rows, far more than one read buffer; the bad ones are
        // lines 4,001 and 20,001 (the last).
        let mut lines = vec![HEADER.to_owned()];
        for i in 2..=20_001 {
            let kind = if i == 4_001 || i == 20_001 {
                "colour"
            } else {
                "test"
            };
            lines.push(row(&format!("r{i}"), kind));
        }
        let file = lines.join(ending);
        assert!(file.len() > 10 * super::READ_BUFFER);
        let (rows, errors) = parse_csv(Dribble(file.as_bytes())).unwrap();
        assert_eq!(rows.len(), 19_998, "{ending:?}");
        assert_eq!(rows[4_000].0, 4_003, "{ending:?}");
        let errors: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(errors, [4_001, 20_001], "{ending:?}");
    }
}
