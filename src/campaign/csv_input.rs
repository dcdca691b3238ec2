//! The CSV reading shared by recipient and opt-out lists: encoding, byte order
//! mark, delimiter detection, line numbers, and the file-level refusals
//! (UTF-16, Excel workbooks, unclosed quotes) that must stop a list before any
//! row of it is used.

use std::fmt;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};

use serde::{Deserialize, Serialize};

/// The text encoding of a CSV file.
///
/// Files are UTF-8 (with or without a byte order mark) unless the caller says
/// otherwise. A file that is not valid UTF-8 is refused with the first bad
/// line, never guessed at: a wrong guess would put wrong names into messages.
/// Files saved by Excel as "CSV (Comma delimited)" are Windows-1252; read them
/// with [`Encoding::Windows1252`] or save them again as "CSV UTF-8".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8; a leading byte order mark is skipped.
    #[default]
    Utf8,
    /// Windows-1252, the superset of ISO-8859-1 (Latin-1) that Excel and
    /// Windows write; every byte is a character, so decoding never fails.
    Windows1252,
}

impl Encoding {
    /// The name used in messages and options: `utf-8`, `windows-1252`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `utf-8`/`utf8`, or `windows-1252`/`cp1252`/`latin-1`/`latin1`/`iso-8859-1`
    /// (Latin-1 is read as Windows-1252, as browsers do).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "windows-1252" | "cp1252" | "latin-1" | "latin1" | "iso-8859-1" => {
                Ok(Encoding::Windows1252)
            }
            other => Err(format!(
                "unknown encoding `{other}`; use `utf-8` or `windows-1252`"
            )),
        }
    }
}

/// What makes a CSV file unusable as a whole. Its `Display` text leaves out
/// the file name, which the error that holds it adds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub enum FileProblem {
    /// Reading failed.
    Io(String),
    /// Nothing but blank lines (or nothing at all).
    Empty,
    /// UTF-16 text, as Excel's "Unicode Text" saves.
    Utf16,
    /// An Excel workbook (`.xlsx` or `.xls`) instead of CSV.
    Workbook,
    /// NUL bytes: not text.
    Binary,
    /// No line break in the first [`MAX_RECORD_BYTES`] bytes.
    HeaderTooLong,
    /// Bytes that are not UTF-8, with the encoding [`Encoding::Utf8`].
    NotUtf8 {
        /// The line of the first bad byte.
        line: u64,
        /// Its column, from 1.
        column: usize,
        /// The value read as Windows-1252, to show what it probably says.
        windows_1252: Option<String>,
    },
    /// A row longer than [`MAX_RECORD_BYTES`].
    RecordTooLong {
        /// Where the row starts.
        line: u64,
    },
    /// A quote still open at the end of the file.
    QuoteNotClosed {
        /// The line of the opening quote.
        line: u64,
        /// Its column, from 1.
        column: usize,
    },
    /// A quoted value that spans lines holding the delimiter: a closing
    /// quote is missing and later rows would be swallowed into one value.
    UnclosedQuote {
        /// Where the row starts.
        line: u64,
        /// The value's column, from 1.
        column: usize,
        /// How many lines the value spans.
        lines: usize,
    },
}

impl FileProblem {
    /// The message, without the file name.
    fn describe(&self) -> String {
        match self {
            FileProblem::Io(e) => format!("cannot be read: {e}"),
            FileProblem::Empty => "is empty: a header row with the column names is needed, e.g. `phone,name`".into(),
            FileProblem::Utf16 => "is UTF-16 text (Excel's \"Unicode Text\"); save it as \"CSV UTF-8 (Comma delimited)\" instead".into(),
            FileProblem::Workbook => "is an Excel workbook, not CSV; in Excel use File > Save As > \"CSV UTF-8 (Comma delimited)\"".into(),
            FileProblem::Binary => "is not text (it contains NUL bytes); export the list as CSV".into(),
            FileProblem::HeaderTooLong => format!("has no line break in its first {} bytes; is it a CSV file?", MAX_RECORD_BYTES),
            FileProblem::NotUtf8 { line, column, windows_1252 } => {
                let mut text = format!("line {line}, column {column}: not UTF-8 text");
                if let Some(guess) = windows_1252 {
                    text.push_str(&format!(
                        " (read as Windows-1252 it says \"{guess}\", as Excel's \"CSV (Comma delimited)\" saves)"
                    ));
                }
                text.push_str("; in Excel use File > Save As > \"CSV UTF-8 (Comma delimited)\", or read the file with the encoding windows-1252");
                text
            }
            FileProblem::RecordTooLong { line } => format!(
                "line {line}: the row is longer than {MAX_RECORD_BYTES} bytes; a closing quote is probably missing"
            ),
            FileProblem::QuoteNotClosed { line, column } => format!(
                "line {line}, column {column}: the quote opened here is never closed, so the rest of the file would be one value"
            ),
            FileProblem::UnclosedQuote { line, column, lines } => format!(
                "line {line}, column {column}: a quoted value runs over {lines} lines and holds what look like further rows; a closing quote is probably missing"
            ),
        }
    }
}

/// The longest row accepted, in bytes. A longer one almost always means a
/// quote that is never closed, which would swallow the rest of the file.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

type Source<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// Where the parser is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a record: blank lines are skipped here.
    RecordStart,
    /// At the start of a field.
    FieldStart,
    /// Inside a field without quotes.
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just after a quote inside quotes: `""` or the closing quote.
    QuoteInQuoted,
}

/// A CSV file being read record by record, with the line each starts on.
///
/// RFC 4180 with the leniencies spreadsheets need: line ends LF, CRLF or CR;
/// a quote inside an unquoted value is kept; text after a closing quote is
/// kept (`"a"b` is `ab`). Blank lines are skipped but counted. A quote
/// still open at the end of the file, or a row longer than
/// [`MAX_RECORD_BYTES`], is an error: either would swallow rows.
pub(crate) struct CsvInput<R: Read> {
    source: Source<R>,
    encoding: Encoding,
    /// The detected (or given) delimiter.
    pub(crate) delimiter: u8,
    cells: Cells,
}

/// The parser's position and the fields of the record being read.
struct Cells {
    /// The line the parser is on.
    line: u64,
    /// A CR ended the last line: a LF right after it is part of that end.
    skip_lf: bool,
    /// The last byte inside quotes was a CR.
    quoted_cr: bool,
    /// Field buffers, reused from record to record.
    fields: Vec<Vec<u8>>,
    /// How many of them the current record has.
    count: usize,
}

impl Cells {
    /// Makes `fields[count]` an empty field to fill.
    fn begin_field(&mut self) {
        if self.fields.len() <= self.count {
            self.fields.push(Vec::new());
        } else {
            self.fields[self.count].clear();
        }
    }

    fn push(&mut self, b: u8) {
        self.fields[self.count].push(b);
    }
}

/// One record: where it starts and its decoded fields.
pub(crate) struct RawRecord {
    pub(crate) line: u64,
    pub(crate) fields: Vec<String>,
}

impl<R: Read> CsvInput<R> {
    /// Starts reading: looks at the first line to refuse what is not CSV text
    /// and to find the delimiter (`,`, `;` or tab, whichever occurs most
    /// outside quotes; `,` on a tie) unless one is given.
    pub(crate) fn new(
        mut source: R,
        encoding: Encoding,
        delimiter: Option<u8>,
    ) -> Result<Self, FileProblem> {
        let prefix = read_first_line(&mut source)?;
        let mut start = 0;
        if prefix.starts_with(&[0xEF, 0xBB, 0xBF]) {
            start = 3;
        } else if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
            return Err(FileProblem::Utf16);
        } else if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0])
        {
            return Err(FileProblem::Workbook);
        }
        let prefix = prefix[start..].to_vec();
        if prefix.contains(&0) {
            // UTF-16 text of Latin letters is every other byte NUL.
            let nuls = prefix.iter().filter(|&&b| b == 0).count();
            return Err(if nuls * 3 >= prefix.len() {
                FileProblem::Utf16
            } else {
                FileProblem::Binary
            });
        }
        if prefix.iter().all(u8::is_ascii_whitespace) {
            return Err(FileProblem::Empty);
        }
        let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&prefix));
        Ok(CsvInput {
            source: BufReader::with_capacity(64 * 1024, Cursor::new(prefix).chain(source)),
            encoding,
            delimiter,
            cells: Cells {
                line: 1,
                skip_lf: false,
                quoted_cr: false,
                fields: Vec::new(),
                count: 0,
            },
        })
    }

    /// The next record, or `None` at the end.
    pub(crate) fn next_record(&mut self) -> Result<Option<RawRecord>, FileProblem> {
        let Some(line) = self.parse_record()? else {
            return Ok(None);
        };
        let mut fields = Vec::with_capacity(self.cells.count);
        for (i, bytes) in self.cells.fields[..self.cells.count].iter().enumerate() {
            let text = match self.encoding {
                Encoding::Utf8 => match std::str::from_utf8(bytes) {
                    Ok(text) => text.to_string(),
                    Err(e) => {
                        // The line of the bad byte, counting line breaks
                        // inside a quoted value before it.
                        let before = &bytes[..e.valid_up_to()];
                        let extra = before.iter().filter(|&&b| b == b'\n').count() as u64;
                        return Err(FileProblem::NotUtf8 {
                            line: line + extra,
                            column: i + 1,
                            windows_1252: Some(decode_windows_1252(bytes))
                                .filter(|s| s.chars().count() <= 60),
                        });
                    }
                },
                Encoding::Windows1252 => decode_windows_1252(bytes),
            };
            if let Some(first_break) = text.find(['\n', '\r']) {
                if text.as_bytes()[first_break..].contains(&self.delimiter) {
                    return Err(FileProblem::UnclosedQuote {
                        line,
                        column: i + 1,
                        lines: text.matches('\n').count() + 1,
                    });
                }
            }
            fields.push(text);
        }
        Ok(Some(RawRecord { line, fields }))
    }

    /// Parses the next record into `self.fields[..self.field_count]`;
    /// returns the line it starts on.
    fn parse_record(&mut self) -> Result<Option<u64>, FileProblem> {
        let delimiter = self.delimiter;
        let (source, cells) = (&mut self.source, &mut self.cells);
        let mut state = State::RecordStart;
        let mut start_line = cells.line;
        let mut quote_line = cells.line;
        let mut quote_column = 0;
        let mut size = 0usize;
        cells.count = 0;
        loop {
            let buffer = match source.fill_buf() {
                Ok(buffer) => buffer,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FileProblem::Io(e.to_string())),
            };
            if buffer.is_empty() {
                // The end of the file.
                return match state {
                    State::RecordStart => Ok(None),
                    State::Quoted => Err(FileProblem::QuoteNotClosed {
                        line: quote_line,
                        column: quote_column,
                    }),
                    _ => {
                        if state == State::FieldStart {
                            cells.begin_field();
                        }
                        cells.count += 1;
                        Ok(Some(start_line))
                    }
                };
            }
            let mut used = 0;
            let mut done = false;
            for &b in buffer {
                used += 1;
                // The LF of a CRLF whose CR ended a line.
                if std::mem::take(&mut cells.skip_lf) && b == b'\n' {
                    continue;
                }
                if state != State::Quoted && (b == b'\n' || b == b'\r') {
                    cells.line += 1;
                    cells.skip_lf = b == b'\r';
                    if state == State::RecordStart {
                        // A blank line.
                        continue;
                    }
                    if state == State::FieldStart {
                        cells.begin_field();
                    }
                    cells.count += 1;
                    done = true;
                    break;
                }
                size += 1;
                if size > MAX_RECORD_BYTES {
                    return Err(FileProblem::RecordTooLong { line: start_line });
                }
                match state {
                    State::RecordStart | State::FieldStart => {
                        if state == State::RecordStart {
                            start_line = cells.line;
                        }
                        cells.begin_field();
                        if b == b'"' {
                            quote_line = cells.line;
                            quote_column = cells.count + 1;
                            state = State::Quoted;
                        } else if b == delimiter {
                            cells.count += 1;
                            state = State::FieldStart;
                        } else {
                            cells.push(b);
                            state = State::Unquoted;
                        }
                    }
                    State::Unquoted => {
                        if b == delimiter {
                            cells.count += 1;
                            state = State::FieldStart;
                        } else {
                            cells.push(b);
                        }
                    }
                    State::Quoted => {
                        if b == b'"' {
                            state = State::QuoteInQuoted;
                        } else {
                            // Line breaks inside quotes: CRLF counts once.
                            if b == b'\r' || (b == b'\n' && !cells.quoted_cr) {
                                cells.line += 1;
                            }
                            cells.quoted_cr = b == b'\r';
                            cells.push(b);
                        }
                    }
                    State::QuoteInQuoted => {
                        if b == b'"' {
                            cells.push(b'"');
                            state = State::Quoted;
                        } else if b == delimiter {
                            cells.count += 1;
                            state = State::FieldStart;
                        } else {
                            cells.push(b);
                            state = State::Unquoted;
                        }
                    }
                }
            }
            source.consume(used);
            if done {
                return Ok(Some(start_line));
            }
        }
    }
}

/// Reads up to and including the first line break that ends a non-blank line
/// outside quotes (or to the end of a short file).
fn read_first_line<R: Read>(source: &mut R) -> Result<Vec<u8>, FileProblem> {
    let mut prefix = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    let mut in_quotes = false;
    let mut seen_text = false;
    loop {
        match source.read(&mut byte) {
            Ok(0) => return Ok(prefix),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileProblem::Io(e.to_string())),
        }
        let b = byte[0];
        prefix.push(b);
        if prefix.len() > MAX_RECORD_BYTES {
            return Err(FileProblem::HeaderTooLong);
        }
        // Binary files: stop early, the caller refuses them.
        if prefix.len() == 4
            && (prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]))
        {
            return Ok(prefix);
        }
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes && seen_text => return Ok(prefix),
            b'\n' | b'\r' | b' ' | b'\t' => {}
            // The UTF-8 byte order mark is not text.
            0xEF | 0xBB | 0xBF if prefix.len() <= 3 => {}
            _ => seen_text = true,
        }
    }
}

/// `,`, `;` or tab: whichever occurs most outside quotes in `line`.
fn detect_delimiter(line: &[u8]) -> u8 {
    let (mut commas, mut semicolons, mut tabs) = (0usize, 0usize, 0usize);
    let mut in_quotes = false;
    for &b in line {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => commas += 1,
            b';' if !in_quotes => semicolons += 1,
            b'\t' if !in_quotes => tabs += 1,
            _ => {}
        }
    }
    if semicolons > commas && semicolons >= tabs {
        b';'
    } else if tabs > commas && tabs > semicolons {
        b'\t'
    } else {
        b','
    }
}

/// Windows-1252 to text. Bytes 0x80–0x9F are the typographic characters
/// Windows puts there (€, „, “, ”, –, …); the five unassigned ones become
/// the C1 controls, as the WHATWG encoding standard says.
pub(crate) fn decode_windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8]) -> Result<Vec<(u64, Vec<String>)>, FileProblem> {
        let mut input = CsvInput::new(text, Encoding::Utf8, None)?;
        let mut out = Vec::new();
        while let Some(r) = input.next_record()? {
            out.push((r.line, r.fields));
        }
        Ok(out)
    }

    #[test]
    fn delimiters_are_detected_outside_quotes() {
        assert_eq!(detect_delimiter(b"phone,name"), b',');
        assert_eq!(detect_delimiter(b"phone;name;city"), b';');
        assert_eq!(detect_delimiter(b"\"a,b,c\";name"), b';');
        assert_eq!(detect_delimiter(b"phone\tname"), b'\t');
        assert_eq!(detect_delimiter(b"phone"), b',');
    }

    #[test]
    fn lines_count_blank_lines_and_quoted_breaks() {
        let rows = records(b"\xEF\xBB\xBF\r\nphone;name\r\n\r\n+1;\"a\r\nb\"\r\n+2;c\r\n").unwrap();
        assert_eq!(rows[0], (2, vec!["phone".to_string(), "name".to_string()]));
        assert_eq!(rows[1].0, 4);
        assert_eq!(rows[1].1[1], "a\r\nb");
        assert_eq!(rows[2], (6, vec!["+2".to_string(), "c".to_string()]));
    }

    #[test]
    fn line_ends_and_quotes() {
        // CR only (old Mac Excel), empty last field, no final line break.
        let rows = records(b"a,b\r1,\r\r2,\"x\"\"y\"").unwrap();
        assert_eq!(rows[1], (2, vec!["1".to_string(), String::new()]));
        assert_eq!(rows[2], (4, vec!["2".to_string(), "x\"y".to_string()]));
        // CRLF inside quotes counts one line; text after a closing quote is kept.
        let rows = records(b"a,b\r\n\"1\r\n2\",\"q\"r\r\n3,4\r\n").unwrap();
        assert_eq!(rows[1], (2, vec!["1\r\n2".to_string(), "qr".to_string()]));
        assert_eq!(rows[2], (4, vec!["3".to_string(), "4".to_string()]));
        // Quotes inside unquoted values stay.
        let rows = records(b"a\n5\" screen\n").unwrap();
        assert_eq!(rows[1].1, ["5\" screen"]);
    }

    #[test]
    fn refusals() {
        assert_eq!(records(b"").unwrap_err(), FileProblem::Empty);
        assert_eq!(
            records(b"\xEF\xBB\xBF\r\n  \n").unwrap_err(),
            FileProblem::Empty
        );
        assert_eq!(records(b"\xFF\xFEp\0h\0").unwrap_err(), FileProblem::Utf16);
        assert_eq!(records(b"p\0h\0o\0").unwrap_err(), FileProblem::Utf16);
        assert_eq!(
            records(b"PK\x03\x04abc").unwrap_err(),
            FileProblem::Workbook
        );
        let bad = records(b"phone,name\n+1,J\xfcrgen\n").unwrap_err();
        assert_eq!(
            bad,
            FileProblem::NotUtf8 {
                line: 2,
                column: 2,
                windows_1252: Some("Jürgen".into())
            }
        );
        let unclosed = records(b"phone,name\n+1,\"Anna\n+2,Bob\n+3,Carl\n").unwrap_err();
        assert_eq!(unclosed, FileProblem::QuoteNotClosed { line: 2, column: 2 });
        let swallowed = records(b"phone,name\n+1,\"Anna\n+2,Bob\"\n+3,Carl\n").unwrap_err();
        assert_eq!(
            swallowed,
            FileProblem::UnclosedQuote {
                line: 2,
                column: 2,
                lines: 2
            }
        );
        assert_eq!(
            records(&[b'a'; MAX_RECORD_BYTES + 10]).unwrap_err(),
            FileProblem::HeaderTooLong
        );
        let mut long = b"a\n".to_vec();
        long.extend(vec![b'b'; MAX_RECORD_BYTES + 1]);
        assert_eq!(
            records(&long).unwrap_err(),
            FileProblem::RecordTooLong { line: 2 }
        );
    }

    #[test]
    fn windows_1252_decodes_every_byte() {
        assert_eq!(
            decode_windows_1252(b"M\xfcller \x80 \x84x\x93"),
            "Müller € „x“"
        );
        let mut input = CsvInput::new(&b"n\nJ\xfcrgen\n"[..], Encoding::Windows1252, None).unwrap();
        input.next_record().unwrap();
        assert_eq!(input.next_record().unwrap().unwrap().fields, ["Jürgen"]);
    }

    #[test]
    fn encoding_names() {
        assert_eq!("UTF8".parse::<Encoding>(), Ok(Encoding::Utf8));
        assert_eq!("latin-1".parse::<Encoding>(), Ok(Encoding::Windows1252));
        assert!("ebcdic".parse::<Encoding>().is_err());
    }
}
