//! Reading a CSV file one row at a time, in a buffer of fixed size, with
//! each row's line number as a text editor counts it, within [`Limits`].

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use tessera_proto::v1 as pb;

use super::row::{Columns, row_to_record};
use super::{COLUMNS, ImportError, Limits, REQUIRED};

/// Bytes read from the file at a time: the most of it held in memory.
pub const READ_BUFFER: usize = 64 * 1024;

/// Counts the bytes read through it and notes where each line break is, so
/// that a row's line number can be found without keeping the text.
///
/// The csv crate's own line count is wrong for line numbers shown to a user:
/// it counts only `\n` although `\r` alone also ends a record (every record
/// of a file with bare-CR line endings was "line 1"), and a record's position
/// is where the previous one ended, before the `\n` of a CRLF and before any
/// blank lines (every line of a CRLF file was one too low).
struct Tracked<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Line breaks read but not yet counted, in file order, as
    /// `(first byte, byte after)`: `\n`, `\r\n` or a lone `\r`.
    breaks: VecDeque<(u64, u64)>,
    /// The offset of a `\r` that may be the start of a `\r\n`.
    pending_cr: Option<u64>,
    /// The line after every break counted so far.
    line: u64,
}

impl<R> Tracked<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            breaks: VecDeque::new(),
            pending_cr: None,
            line: 1,
        }
    }

    /// The line of the record csv places at byte `position`: the line of its
    /// first byte after the line breaks that precede it. Positions must come
    /// in file order, as csv reads them; the breaks before it are dropped.
    fn line_of(&mut self, position: u64) -> u64 {
        let mut start = position;
        while let Some(&(first, after)) = self.breaks.front() {
            if first > start {
                break;
            }
            start = start.max(after);
            self.line += 1;
            self.breaks.pop_front();
        }
        self.line
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let Some(got) = buf.get(..n) else {
            return Ok(n);
        };
        if got.is_empty() {
            if let Some(cr) = self.pending_cr.take() {
                self.breaks.push_back((cr, cr + 1));
            }
            return Ok(0);
        }
        for (offset, &b) in (self.read..).zip(got) {
            if let Some(cr) = self.pending_cr.take() {
                if b == b'\n' {
                    self.breaks.push_back((cr, offset + 1));
                    continue;
                }
                self.breaks.push_back((cr, cr + 1));
            }
            match b {
                b'\r' => self.pending_cr = Some(offset),
                b'\n' => self.breaks.push_back((offset, offset + 1)),
                _ => {}
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// What is wrong with a line csv could not read, without csv's own (wrong)
/// line number.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("has {len} field(s) where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "field {} is not valid UTF-8 (after byte {})",
            err.field() + 1,
            err.valid_up_to()
        ),
        _ => e.to_string(),
    }
}

/// A row: its line and its record, or why it is not one.
pub type Row = (u64, Result<pb::Record, String>);

/// The rows of a CSV file, read one at a time.
pub struct RowReader<R: Read> {
    csv: csv::Reader<Tracked<std::io::Take<R>>>,
    cols: Columns,
    record: csv::StringRecord,
    rows: u64,
    limits: Limits,
}

impl<R: Read> RowReader<R> {
    /// Reads the header; refuses a wrong one.
    pub fn new(input: R, limits: Limits) -> Result<Self, ImportError> {
        let tracked = Tracked::new(input.take(limits.max_bytes.saturating_add(1)));
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(READ_BUFFER)
            .from_reader(tracked);
        let headers = csv.headers().map_err(|e| {
            let reason = csv_reason(&e);
            match e.into_kind() {
                csv::ErrorKind::Io(e) => ImportError::Read(e),
                _ => ImportError::Header(reason),
            }
        })?;
        let mut cols = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let h = h.trim();
            let known = COLUMNS.iter().find(|c| **c == h).ok_or_else(|| {
                ImportError::Header(format!(
                    "unknown column {h:?}; the columns are {}",
                    COLUMNS.join(", ")
                ))
            })?;
            if cols.insert(*known, i).is_some() {
                return Err(ImportError::Header(format!("column {h:?} appears twice")));
            }
        }
        if let Some(missing) = REQUIRED.iter().find(|c| !cols.contains_key(**c)) {
            return Err(ImportError::Header(format!(
                "required column {missing:?} is missing"
            )));
        }
        let reader = Self {
            csv,
            cols,
            record: csv::StringRecord::new(),
            rows: 0,
            limits,
        };
        reader.check_size()?;
        Ok(reader)
    }

    fn check_size(&self) -> Result<(), ImportError> {
        if self.csv.get_ref().read > self.limits.max_bytes {
            return Err(ImportError::TooLarge {
                size: None,
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// The next row, `None` at the end of the file. Refuses the file when
    /// it is over [`Limits`]: more bytes read than `max_bytes`, or a row
    /// past `max_rows`.
    pub fn next_row(&mut self) -> Result<Option<Row>, ImportError> {
        let read = self.csv.read_record(&mut self.record);
        self.check_size()?;
        let row = match read {
            Ok(false) => return Ok(None),
            Ok(true) => {
                let position = self.record.position().map(csv::Position::byte);
                let line = self.line(position);
                (line, row_to_record(&self.record, &self.cols))
            }
            Err(e) => {
                let position = e.position().map(csv::Position::byte);
                let reason = csv_reason(&e);
                if let csv::ErrorKind::Io(e) = e.into_kind() {
                    return Err(ImportError::Read(e));
                }
                (self.line(position), Err(reason))
            }
        };
        if self.rows >= self.limits.max_rows {
            return Err(ImportError::TooManyRows {
                limit: self.limits.max_rows,
            });
        }
        self.rows += 1;
        Ok(Some(row))
    }

    fn line(&mut self, position: Option<u64>) -> u64 {
        match position {
            Some(p) => self.csv.get_mut().line_of(p),
            // csv always gives one; the row count is a lower bound.
            None => self.rows + 2,
        }
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.csv.get_ref().read
    }
}
