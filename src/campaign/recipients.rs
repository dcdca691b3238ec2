//! Recipient lists: a CSV file whose columns are a trigger's fields, read
//! into the events a campaign starts its flow with.
//!
//! # The file
//!
//! - A header row names the columns; the rows below it are recipients.
//!   Blank lines (and rows whose cells are all empty, as spreadsheets leave
//!   at the end) are skipped and counted.
//! - The delimiter is `,`, `;` or tab: whichever the header row has most of
//!   outside quotes (German Excel writes `;`). Values may be quoted
//!   (`"Schmidt, Anna"`, `""` for a quote) and span lines. Line ends may be
//!   LF or CRLF.
//! - UTF-8, with or without a byte order mark. Any other bytes are refused
//!   with the first bad line and how to save the file again, unless the caller
//!   reads it as [`Encoding::Windows1252`] (Excel's "CSV (Comma delimited)").
//!   UTF-16 files and Excel workbooks are refused by name.
//!
//! # Columns and fields
//!
//! A column whose name is a field of the trigger fills that field. Names
//! match ignoring case, surrounding spaces and the difference between space,
//! `-` and `_` (`Customer Name` fills `customer_name`).
//!
//! - Every required field (type without `?`) needs a column, and so does the
//!   phone field even when it is optional. All missing ones are reported in
//!   one error.
//! - **Variables convention.** When the trigger declares exactly one field of
//!   type `Variables` (e.g. `vars: Variables?`), every column that is not a
//!   field goes into that field's object as a text keyed by the column's name
//!   (`discount` → `vars.discount`), for template placeholders; empty cells
//!   are left out. A column whose name is a near miss of a field name is an
//!   error even then (`phnoe`: did you mean `phone`?), so a typo never turns a
//!   field into a variable. Without such a field every unknown column is an
//!   error.
//! - The phone field, whose number is the recipient, is
//!   [`RecipientOptions::phone_field`] or else the trigger's one field of type
//!   `Phone` (the one required `Phone` field when there are several).
//!
//! # Values
//!
//! Cells are trimmed of surrounding spaces, then converted by the field's type:
//!
//! | type | accepted |
//! | --- | --- |
//! | `Phone` | strict E.164 ([`crate::phone::check_e164`]): `+4915112345678` |
//! | `Int` | `42`, `-7` |
//! | `Float` | `3.5` or `3,5` (decimal comma, as `;` files have), no thousands separators |
//! | `Bool` | `true`/`false`, `yes`/`no`, `1`/`0`, `ja`/`nein`, `wahr`/`falsch` (any case) |
//! | `DateTime` | RFC 3339: `2026-12-03T10:30:00+01:00` |
//! | `Duration` | `4m30s` |
//! | `TimeZone` | an IANA name: `Europe/Berlin` |
//! | lists, records, `Variables` | JSON text: `["a","b"]`, `{"k":"v"}` |
//! | other text types | the text |
//!
//! An empty cell is `none` for an optional field (left out of the fields) and
//! a bad value for a required one.
//!
//! # Rows that are skipped, and file problems
//!
//! A row with a bad phone number, a bad value or the wrong number of cells is
//! skipped and reported with its line ([`SkippedRow`]); a row whose phone
//! number came before is skipped as a duplicate with both lines
//! ([`DuplicateRow`]): the first row wins. Nothing about a row stops the file.
//!
//! File problems are errors, never partial results ([`RecipientsError`]):
//! encoding, empty file, no header, missing or unknown columns, no rows,
//! more rows than [`RecipientOptions::max_rows`], an unclosed quote. Some of
//! them (a bad byte, an unclosed quote) can only be found where they are, so
//! a runner must read a file to its end before it starts any send:
//! [`validate_recipients`] does that in one streaming pass, and
//! [`RecipientReader`] gives the rows one at a time to record them.
//!
//! # Memory
//!
//! [`RecipientReader`] holds one row at a time, the header and, to find
//! duplicates, 16 bytes per distinct phone number (about 40 MB for
//! 1,000,000 rows). The report lists at most [`RecipientOptions::max_listed`]
//! skipped rows and duplicates; its counts are always complete.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use thiserror::Error;

use super::csv_input::{CsvInput, Encoding, FileProblem, RawRecord};
use crate::check::rules::closest;
use crate::check::schema::TriggerSchema;
use crate::check::types::{RecordTy, Ty};
use crate::phone::{check_e164, describe};
use crate::runtime::Event;

/// How to read a recipient list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecipientOptions {
    /// The file's encoding; UTF-8 by default.
    pub encoding: Encoding,
    /// The delimiter; detected from the header row when `None`.
    pub delimiter: Option<char>,
    /// The field holding the recipient's number; the trigger's `Phone` field
    /// when `None`.
    pub phone_field: Option<String>,
    /// The most data rows accepted; a longer file is an error. No limit when
    /// `None`.
    pub max_rows: Option<u64>,
    /// How many skipped rows and duplicates the [`Report`] lists (the counts
    /// are always complete).
    pub max_listed: usize,
}

impl Default for RecipientOptions {
    fn default() -> Self {
        RecipientOptions {
            encoding: Encoding::Utf8,
            delimiter: None,
            phone_field: None,
            max_rows: None,
            max_listed: 1000,
        }
    }
}

/// Why a recipient list cannot be used at all. Each text names the file and,
/// where there is one, the line and column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecipientsError {
    /// The file is unreadable, empty, not UTF-8, not CSV, or has an unclosed
    /// quote.
    #[error("{file}: {problem}")]
    File {
        /// The file's name as given.
        file: String,
        /// What is wrong.
        problem: FileProblem,
    },
    /// The header row has problems: all of them.
    #[error(
        "{file}, line {line} (the header row): {}",
        HeaderProblem::list(problems)
    )]
    Header {
        /// The file's name as given.
        file: String,
        /// The header row's line.
        line: u64,
        /// Every problem found, in column order; missing columns last.
        problems: Vec<HeaderProblem>,
    },
    /// A header row and no data rows.
    #[error("{file}: there are no rows below the header row (line {header_line})")]
    NoRows {
        /// The file's name as given.
        file: String,
        /// The header row's line.
        header_line: u64,
    },
    /// More data rows than [`RecipientOptions::max_rows`].
    #[error("{file}, line {line}: more than {max} rows; split the list or raise the limit")]
    TooManyRows {
        /// The file's name as given.
        file: String,
        /// The first row over the limit.
        line: u64,
        /// The limit.
        max: u64,
    },
    /// The trigger cannot take a recipient list (no phone field, or an
    /// unclear one).
    #[error("trigger `{trigger}`: {problem}")]
    Trigger {
        /// The trigger's name.
        trigger: String,
        /// What is wrong.
        problem: String,
    },
}

/// One problem with the header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The row looks like data, so the file has no header.
    LooksLikeData {
        /// The cell that looks like data.
        value: String,
    },
    /// A column without a name.
    EmptyName {
        /// The column, from 1.
        column: usize,
    },
    /// Two columns for the same field.
    Duplicate {
        /// The later column, from 1.
        column: usize,
        /// The earlier one.
        first_column: usize,
        /// The field both fill.
        field: String,
    },
    /// A column that is no field of the trigger.
    Unknown {
        /// The column, from 1.
        column: usize,
        /// Its name.
        name: String,
        /// A field it is probably meant to be.
        suggestion: Option<String>,
    },
    /// Fields that need a column and have none: `(name, type)`.
    Missing(Vec<(String, String)>),
}

impl HeaderProblem {
    fn list(problems: &[HeaderProblem]) -> String {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::LooksLikeData { value } => write!(
                f,
                "\"{value}\" looks like data, not a column name; the first row must name the columns, e.g. `phone,name`"
            ),
            HeaderProblem::EmptyName { column } => write!(f, "column {column} has no name"),
            HeaderProblem::Duplicate {
                column,
                first_column,
                field,
            } => write!(
                f,
                "columns {first_column} and {column} both fill the field `{field}`"
            ),
            HeaderProblem::Unknown {
                column,
                name,
                suggestion,
            } => {
                write!(f, "column {column} `{name}` is no field of the trigger")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => Ok(()),
                }
            }
            HeaderProblem::Missing(fields) => {
                let names: Vec<String> = fields
                    .iter()
                    .map(|(name, ty)| format!("`{name}` ({ty})"))
                    .collect();
                write!(
                    f,
                    "missing column{} for {}",
                    if fields.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
        }
    }
}

/// Where a column's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnTarget {
    /// A field of the trigger.
    Field(String),
    /// A key of the trigger's `Variables` field.
    Variable {
        /// The `Variables` field.
        field: String,
        /// The key: the column's name as written (trimmed).
        key: String,
    },
}

/// A column of the file and where its values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column, from 1.
    pub index: usize,
    /// Its name in the header row.
    pub name: String,
    /// Where its values go.
    pub target: ColumnTarget,
}

/// A recipient: a row turned into the fields of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The row's line in the file (the first line when a value spans lines).
    pub line: u64,
    /// The phone number, strict E.164.
    pub phone: String,
    /// The event's fields, as [`Event::fields`] takes them; empty optional
    /// fields are left out.
    pub fields: Map<String, Json>,
}

impl Recipient {
    /// The event that starts the flow for this recipient.
    pub fn to_event(&self, trigger: &str) -> Event {
        Event {
            trigger: trigger.to_string(),
            fields: self.fields.clone(),
        }
    }
}

/// A row that is not sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    /// The row's line.
    pub line: u64,
    /// Why.
    pub reason: SkipReason,
}

/// Why a row is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// Cells that cannot be used, the phone number among them or not.
    BadValues {
        /// Each bad cell.
        cells: Vec<CellProblem>,
    },
    /// More or fewer cells than the header has columns.
    WrongCellCount {
        /// The row's cells.
        found: usize,
        /// The header's columns.
        expected: usize,
    },
}

impl SkipReason {
    /// Whether the phone number is one of the problems.
    pub fn is_bad_phone(&self) -> bool {
        matches!(self, SkipReason::BadValues { cells } if cells.iter().any(|c| c.is_phone))
    }
}

/// A cell that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellProblem {
    /// The column, from 1.
    pub column: usize,
    /// The column's name.
    pub name: String,
    /// The cell as written (trimmed).
    pub value: String,
    /// What is wrong.
    pub problem: String,
    /// Whether the cell is the recipient's phone number.
    pub is_phone: bool,
}

/// A row whose phone number an earlier row has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateRow {
    /// The row's line.
    pub line: u64,
    /// The line of the first row with the number, which is kept.
    pub first_line: u64,
    /// The number.
    pub phone: String,
}

impl fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.reason {
            SkipReason::BadValues { cells } => {
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(
                        f,
                        "column {} `{}`: {}",
                        cell.column, cell.name, cell.problem
                    )?;
                }
                Ok(())
            }
            SkipReason::WrongCellCount { found, expected } => write!(
                f,
                "{found} cells, but the header row has {expected} columns"
            ),
        }
    }
}

impl fmt::Display for DuplicateRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} is already on line {}",
            self.line, self.phone, self.first_line
        )
    }
}

/// What reading a list found: counts, and the rows that are not sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The file's name as given.
    pub file: String,
    /// The delimiter used.
    pub delimiter: char,
    /// The encoding used.
    pub encoding: Encoding,
    /// The header row's line.
    pub header_line: u64,
    /// Data rows read (blank ones not counted).
    pub rows: u64,
    /// Rows that became recipients.
    pub recipients: u64,
    /// Rows whose cells are all empty.
    pub blank_rows: u64,
    /// Rows skipped for bad values or cell counts (duplicates not counted).
    pub skipped_count: u64,
    /// Of those, rows whose phone number is bad.
    pub bad_phone_count: u64,
    /// Rows skipped as duplicates.
    pub duplicate_count: u64,
    /// The first [`RecipientOptions::max_listed`] skipped rows.
    pub skipped: Vec<SkippedRow>,
    /// The first [`RecipientOptions::max_listed`] duplicates.
    pub duplicates: Vec<DuplicateRow>,
}

impl Report {
    /// Whether every row became a recipient.
    pub fn is_clean(&self) -> bool {
        self.skipped_count == 0 && self.duplicate_count == 0
    }
}

impl fmt::Display for Report {
    /// A summary line, then each listed row on its own line:
    ///
    /// ```text
    /// customers.csv: 5 rows, 3 recipients, 1 skipped (1 bad phone number), 1 duplicate
    ///   line 4: column 1 `phone`: "0151/123" is not an E.164 phone number: ...
    ///   line 6: +4915112345678 is already on line 2
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{}: {}, {}, {} skipped",
            self.file,
            plural(self.rows, "row", "rows"),
            plural(self.recipients, "recipient", "recipients"),
            self.skipped_count
        )?;
        if self.bad_phone_count > 0 {
            write!(
                f,
                " ({})",
                plural(
                    self.bad_phone_count,
                    "bad phone number",
                    "bad phone numbers"
                )
            )?;
        }
        write!(
            f,
            ", {}",
            plural(self.duplicate_count, "duplicate", "duplicates")
        )?;
        // Skipped rows and duplicates in line order.
        let mut lines: Vec<(u64, String)> = self
            .skipped
            .iter()
            .map(|s| (s.line, s.to_string()))
            .chain(self.duplicates.iter().map(|d| (d.line, d.to_string())))
            .collect();
        lines.sort_by_key(|(line, _)| *line);
        for (_, text) in &lines {
            write!(f, "\n  {text}")?;
        }
        let unlisted = (self.skipped_count + self.duplicate_count) - lines.len() as u64;
        if unlisted > 0 {
            write!(f, "\n  ... and {unlisted} more")?;
        }
        Ok(())
    }
}

/// A row of the file, as [`RecipientReader::next_row`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A recipient to send to.
    Recipient(Recipient),
    /// A row with bad values.
    Skipped(SkippedRow),
    /// A row whose number came before.
    Duplicate(DuplicateRow),
}

/// A whole list in memory: for small files and tests. Large files are better
/// read with [`RecipientReader`], one row at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientList {
    /// The recipients in file order.
    pub recipients: Vec<Recipient>,
    /// Counts and the rows not sent to.
    pub report: Report,
}

/// Reads a recipient list one row at a time.
///
/// [`RecipientReader::new`] reads the header row and checks it against the
/// trigger; [`RecipientReader::next_row`] then gives each row (recipient,
/// skipped or duplicate), updating [`RecipientReader::report`]. It is also an
/// iterator over the recipients alone.
///
/// ```
/// use flowc::campaign::recipients::{RecipientOptions, RecipientReader};
/// use flowc::check::Compiler;
///
/// let mut compiler = Compiler::new();
/// compiler.add_source("sale.flow", "
/// trigger campaign.spring_sale {
///     phone: Phone
///     name: String?
///     discount: Int
/// }
/// ");
/// let program = compiler.check().program.unwrap();
/// let trigger = &program.schemas().triggers["campaign.spring_sale"];
///
/// let csv = "Phone;Name;Discount\n+4915112345678;Anna;20\n0151/1234;Bob;10\n+4915112345678;Anna;20\n";
/// let mut reader = RecipientReader::new(csv.as_bytes(), "customers.csv", trigger, &RecipientOptions::default()).unwrap();
/// let recipients: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
/// assert_eq!(recipients.len(), 1);
/// assert_eq!(recipients[0].line, 2);
/// assert_eq!(recipients[0].fields["discount"], 20);
///
/// let report = reader.into_report();
/// assert_eq!((report.skipped_count, report.duplicate_count), (1, 1));
/// assert_eq!(report.skipped[0].line, 3);
/// assert_eq!(report.duplicates[0].first_line, 2);
/// ```
pub struct RecipientReader<R: Read> {
    input: CsvInput<R>,
    file: String,
    fields: Arc<RecordTy>,
    columns: Vec<Column>,
    /// For each column, the field's type (`None` for variables).
    types: Vec<Option<Ty>>,
    phone_field: String,
    variables_field: Option<String>,
    seen: HashMap<u64, u64>,
    options: RecipientOptions,
    report: Report,
    finished: bool,
}

impl RecipientReader<File> {
    /// Opens a file; its path is the name in messages.
    pub fn open(
        path: impl AsRef<Path>,
        trigger: &TriggerSchema,
        options: &RecipientOptions,
    ) -> Result<Self, RecipientsError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| RecipientsError::File {
            file: name.clone(),
            problem: FileProblem::Io(e.to_string()),
        })?;
        RecipientReader::new(file, name, trigger, options)
    }
}

impl<R: Read> RecipientReader<R> {
    /// Reads the header row of `source` and maps its columns to the fields of
    /// `trigger`. `file` names the source in messages.
    pub fn new(
        source: R,
        file: impl Into<String>,
        trigger: &TriggerSchema,
        options: &RecipientOptions,
    ) -> Result<Self, RecipientsError> {
        let file = file.into();
        let phone_field = phone_field(trigger, options.phone_field.as_deref())?;
        let file_error = |problem| RecipientsError::File {
            file: file.clone(),
            problem,
        };
        let delimiter = match options.delimiter {
            Some(c) if c.is_ascii() => Some(c as u8),
            Some(c) => {
                return Err(file_error(FileProblem::Io(format!(
                    "the delimiter '{c}' is not an ASCII character"
                ))))
            }
            None => None,
        };
        let mut input = CsvInput::new(source, options.encoding, delimiter).map_err(file_error)?;
        let header = input
            .next_record()
            .map_err(file_error)?
            .ok_or_else(|| file_error(FileProblem::Empty))?;
        let fields = trigger.fields.clone();
        let variables_field = {
            let mut bags = fields
                .fields
                .iter()
                .filter(|f| matches!(f.ty.non_optional(), Ty::Variables));
            match (bags.next(), bags.next()) {
                (Some(only), None) => Some(only.name.clone()),
                _ => None,
            }
        };
        let columns = map_columns(&header, &fields, &phone_field, variables_field.as_deref())
            .map_err(|problems| RecipientsError::Header {
                file: file.clone(),
                line: header.line,
                problems,
            })?;
        let types = columns
            .iter()
            .map(|c| match &c.target {
                ColumnTarget::Field(name) => fields.field(name).map(|f| f.ty.clone()),
                ColumnTarget::Variable { .. } => None,
            })
            .collect();
        let report = Report {
            file: file.clone(),
            delimiter: char::from(input.delimiter),
            encoding: options.encoding,
            header_line: header.line,
            rows: 0,
            recipients: 0,
            blank_rows: 0,
            skipped_count: 0,
            bad_phone_count: 0,
            duplicate_count: 0,
            skipped: Vec::new(),
            duplicates: Vec::new(),
        };
        Ok(RecipientReader {
            input,
            file,
            fields,
            columns,
            types,
            phone_field,
            variables_field,
            seen: HashMap::new(),
            options: options.clone(),
            report,
            finished: false,
        })
    }

    /// The columns and where their values go.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The field that holds each recipient's number.
    pub fn phone_field(&self) -> &str {
        &self.phone_field
    }

    /// The counts and rows so far; complete once [`RecipientReader::next_row`]
    /// has returned `Ok(None)`.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The report, complete if the reader was read to the end.
    pub fn into_report(self) -> Report {
        self.report
    }

    /// The next row, or `Ok(None)` after the last. An error is about the file
    /// as a whole: nothing read from it should be used.
    pub fn next_row(&mut self) -> Result<Option<Row>, RecipientsError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let raw = match self.input.next_record() {
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    self.finished = true;
                    if self.report.rows == 0 {
                        return Err(RecipientsError::NoRows {
                            file: self.file.clone(),
                            header_line: self.report.header_line,
                        });
                    }
                    return Ok(None);
                }
                Err(problem) => {
                    self.finished = true;
                    return Err(RecipientsError::File {
                        file: self.file.clone(),
                        problem,
                    });
                }
            };
            if raw.fields.iter().all(|cell| cell.trim().is_empty()) {
                self.report.blank_rows += 1;
                continue;
            }
            self.report.rows += 1;
            if let Some(max) = self.options.max_rows {
                if self.report.rows > max {
                    self.finished = true;
                    return Err(RecipientsError::TooManyRows {
                        file: self.file.clone(),
                        line: raw.line,
                        max,
                    });
                }
            }
            let row = self.convert(raw);
            let listed = self.options.max_listed;
            match &row {
                Row::Recipient(_) => self.report.recipients += 1,
                Row::Skipped(skipped) => {
                    self.report.skipped_count += 1;
                    if skipped.reason.is_bad_phone() {
                        self.report.bad_phone_count += 1;
                    }
                    if self.report.skipped.len() < listed {
                        self.report.skipped.push(skipped.clone());
                    }
                }
                Row::Duplicate(duplicate) => {
                    self.report.duplicate_count += 1;
                    if self.report.duplicates.len() < listed {
                        self.report.duplicates.push(duplicate.clone());
                    }
                }
            }
            return Ok(Some(row));
        }
    }

    fn convert(&mut self, raw: RawRecord) -> Row {
        let expected = self.columns.len();
        let found = raw.fields.len();
        // Spreadsheets sometimes end rows with empty cells past the header.
        let extra_empty =
            found > expected && raw.fields[expected..].iter().all(|c| c.trim().is_empty());
        if found != expected && !extra_empty {
            return Row::Skipped(SkippedRow {
                line: raw.line,
                reason: SkipReason::WrongCellCount { found, expected },
            });
        }
        let mut fields = Map::new();
        let mut variables = Map::new();
        let mut problems = Vec::new();
        let mut phone = None;
        for ((column, ty), cell) in self.columns.iter().zip(&self.types).zip(raw.fields) {
            let text = cell.trim();
            match (&column.target, ty) {
                (ColumnTarget::Field(name), Some(ty)) => {
                    let is_phone = *name == self.phone_field;
                    let converted = if is_phone && text.is_empty() {
                        Ok(None)
                    } else {
                        convert_cell(text, ty)
                    };
                    match converted {
                        Ok(Some(json)) => {
                            if is_phone {
                                phone = json.as_str().map(str::to_string);
                            }
                            fields.insert(name.clone(), json);
                        }
                        Ok(None) if is_phone => problems.push(CellProblem {
                            column: column.index,
                            name: column.name.clone(),
                            value: String::new(),
                            problem: "no phone number".into(),
                            is_phone,
                        }),
                        Ok(None) => {}
                        Err(problem) => problems.push(CellProblem {
                            column: column.index,
                            name: column.name.clone(),
                            value: text.to_string(),
                            problem,
                            is_phone,
                        }),
                    }
                }
                (ColumnTarget::Variable { key, .. }, _) => {
                    if !text.is_empty() {
                        variables.insert(key.clone(), Json::String(text.to_string()));
                    }
                }
                (ColumnTarget::Field(_), None) => {}
            }
        }
        if !problems.is_empty() {
            return Row::Skipped(SkippedRow {
                line: raw.line,
                reason: SkipReason::BadValues { cells: problems },
            });
        }
        if let Some(bag) = &self.variables_field {
            match fields.get_mut(bag) {
                // A column of JSON objects for the bag itself: the other
                // columns add to it.
                Some(Json::Object(given)) => given.extend(variables),
                Some(_) => {}
                None if !variables.is_empty() || self.required(bag) => {
                    fields.insert(bag.clone(), Json::Object(variables));
                }
                None => {}
            }
        }
        let phone = phone.unwrap_or_default();
        // E.164 numbers are at most 15 digits: the number itself is the key.
        let key: u64 = phone[1..].parse().unwrap_or(0);
        if let Some(&first_line) = self.seen.get(&key) {
            return Row::Duplicate(DuplicateRow {
                line: raw.line,
                first_line,
                phone,
            });
        }
        self.seen.insert(key, raw.line);
        Row::Recipient(Recipient {
            line: raw.line,
            phone,
            fields,
        })
    }

    fn required(&self, field: &str) -> bool {
        self.fields
            .field(field)
            .is_some_and(|f| !matches!(f.ty, Ty::Optional(_)))
    }
}

impl<R: Read> Iterator for RecipientReader<R> {
    type Item = Result<Recipient, RecipientsError>;

    /// The next recipient; skipped rows and duplicates only go into the
    /// report.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_row() {
                Ok(Some(Row::Recipient(r))) => return Some(Ok(r)),
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Reads a whole list into memory. See [`RecipientReader`] for large files.
pub fn read_recipients(
    source: impl Read,
    file: impl Into<String>,
    trigger: &TriggerSchema,
    options: &RecipientOptions,
) -> Result<RecipientList, RecipientsError> {
    let mut reader = RecipientReader::new(source, file, trigger, options)?;
    let recipients = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok(RecipientList {
        recipients,
        report: reader.into_report(),
    })
}

/// Reads a whole list, keeping no rows: the report, or the error that makes
/// the file unusable. A runner calls it before it records or sends anything.
pub fn validate_recipients(
    source: impl Read,
    file: impl Into<String>,
    trigger: &TriggerSchema,
    options: &RecipientOptions,
) -> Result<Report, RecipientsError> {
    let mut reader = RecipientReader::new(source, file, trigger, options)?;
    while reader.next_row()?.is_some() {}
    Ok(reader.into_report())
}

/// The field holding the recipient's number.
fn phone_field(trigger: &TriggerSchema, given: Option<&str>) -> Result<String, RecipientsError> {
    let error = |problem: String| RecipientsError::Trigger {
        trigger: trigger.name.clone(),
        problem,
    };
    let phones: Vec<&crate::check::types::FieldTy> = trigger
        .fields
        .fields
        .iter()
        .filter(|f| matches!(f.ty.non_optional(), Ty::Phone))
        .collect();
    if let Some(name) = given {
        return match trigger.fields.field(name) {
            Some(f) if matches!(f.ty.non_optional(), Ty::Phone) => Ok(f.name.clone()),
            Some(f) => Err(error(format!(
                "the phone field `{name}` is {}, not Phone",
                f.ty
            ))),
            None => Err(error(format!(
                "has no field `{name}`{}",
                closest(name, trigger.fields.fields.iter().map(|f| f.name.as_str()))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default()
            ))),
        };
    }
    let required: Vec<_> = phones
        .iter()
        .filter(|f| !matches!(f.ty, Ty::Optional(_)))
        .collect();
    match (phones.as_slice(), required.as_slice()) {
        ([only], _) => Ok(only.name.clone()),
        ([], _) => Err(error(
            "has no Phone field, so a list cannot say whom to send to".into(),
        )),
        (_, [only]) => Ok(only.name.clone()),
        (many, _) => Err(error(format!(
            "has several Phone fields ({}); name the recipient's one",
            many.iter()
                .map(|f| format!("`{}`", f.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `Customer Name` → `customer_name`.
fn normalize(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect::<String>()
        .to_lowercase()
}

/// The field a column name is probably a typo of: [`closest`], or one
/// transposition away (`phnoe` for `phone`).
fn near_miss<'a>(wanted: &str, names: &[&'a str]) -> Option<&'a str> {
    closest(wanted, names.iter().copied()).or_else(|| {
        let limit = (wanted.chars().count() / 3).max(1);
        names
            .iter()
            .map(|n| (strsim::osa_distance(wanted, n), *n))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, n)| n)
    })
}

/// Maps the header row to the fields, or every problem with it.
fn map_columns(
    header: &RawRecord,
    fields: &RecordTy,
    phone_field: &str,
    variables_field: Option<&str>,
) -> Result<Vec<Column>, Vec<HeaderProblem>> {
    // A header that is a phone number is a row of data.
    if let Some(value) = header.fields.iter().map(|c| c.trim()).find(|c| {
        let mut chars = c.chars();
        chars.next() == Some('+') && chars.next().is_some_and(|d| d.is_ascii_digit())
    }) {
        return Err(vec![HeaderProblem::LooksLikeData {
            value: value.to_string(),
        }]);
    }
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    let mut filled: HashMap<&str, usize> = HashMap::new();
    let names: Vec<&str> = fields.fields.iter().map(|f| f.name.as_str()).collect();
    for (i, raw) in header.fields.iter().enumerate() {
        let index = i + 1;
        let name = raw.trim();
        if name.is_empty() {
            problems.push(HeaderProblem::EmptyName { column: index });
            continue;
        }
        let wanted = normalize(name);
        let field = fields
            .fields
            .iter()
            .find(|f| f.name == name)
            .or_else(|| fields.fields.iter().find(|f| normalize(&f.name) == wanted));
        let target = match field {
            Some(field) if Some(field.name.as_str()) == variables_field => {
                // The bag itself as a column of JSON objects.
                ColumnTarget::Field(field.name.clone())
            }
            Some(field) => ColumnTarget::Field(field.name.clone()),
            None => {
                let suggestion = near_miss(&wanted, &names);
                match (variables_field, suggestion) {
                    (Some(bag), None) => ColumnTarget::Variable {
                        field: bag.to_string(),
                        key: name.to_string(),
                    },
                    (_, suggestion) => {
                        problems.push(HeaderProblem::Unknown {
                            column: index,
                            name: name.to_string(),
                            suggestion: suggestion.map(String::from),
                        });
                        continue;
                    }
                }
            }
        };
        if let ColumnTarget::Field(field) = &target {
            let field = fields.field(field).map_or("", |f| f.name.as_str());
            if let Some(&first_column) = filled.get(field) {
                problems.push(HeaderProblem::Duplicate {
                    column: index,
                    first_column,
                    field: field.to_string(),
                });
                continue;
            }
            filled.insert(field, index);
        }
        columns.push(Column {
            index,
            name: name.to_string(),
            target,
        });
    }
    let missing: Vec<(String, String)> = fields
        .fields
        .iter()
        .filter(|f| {
            let needed = f.name == phone_field
                || (!matches!(f.ty, Ty::Optional(_)) && Some(f.name.as_str()) != variables_field);
            needed && !filled.contains_key(f.name.as_str())
        })
        .map(|f| (f.name.clone(), f.ty.to_string()))
        .collect();
    if !missing.is_empty() {
        problems.push(HeaderProblem::Missing(missing));
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(problems)
    }
}

/// A cell's text as the JSON value of a field of type `ty`: `None` for an
/// empty optional cell, or what is wrong.
pub(crate) fn convert_cell(text: &str, ty: &Ty) -> Result<Option<Json>, String> {
    if text.is_empty() {
        return match ty {
            Ty::Optional(_) | Ty::Any | Ty::Unknown => Ok(None),
            _ => Err("empty, but the field is required".into()),
        };
    }
    let ty = ty.non_optional();
    let string = || Ok(Some(Json::String(text.to_string())));
    match ty {
        Ty::Phone => match check_e164(text) {
            Ok(()) => string(),
            Err(problems) => Err(format!(
                "\"{text}\" is not an E.164 phone number: {}{}",
                describe(&problems),
                spreadsheet_hint(text)
            )),
        },
        Ty::Int => text
            .strip_prefix('+')
            .unwrap_or(text)
            .parse::<i64>()
            .map(|i| Some(Json::from(i)))
            .map_err(|_| format!("\"{text}\" is not a whole number")),
        Ty::Float => {
            let dotted = if text.contains(',') && !text.contains('.') {
                text.replacen(',', ".", 1)
            } else {
                text.to_string()
            };
            match dotted.parse::<f64>() {
                Ok(x) if x.is_finite() && !dotted.chars().any(char::is_alphabetic) => {
                    Ok(serde_json::Number::from_f64(x).map(Json::Number))
                }
                _ => Err(format!("\"{text}\" is not a number such as 3.5")),
            }
        }
        Ty::Bool => match text.to_lowercase().as_str() {
            "true" | "yes" | "1" | "ja" | "wahr" => Ok(Some(Json::Bool(true))),
            "false" | "no" | "0" | "nein" | "falsch" => Ok(Some(Json::Bool(false))),
            _ => Err(format!("\"{text}\" is not true or false")),
        },
        Ty::DateTime => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(_) => string(),
            Err(_) => Err(format!(
                "\"{text}\" is not an RFC 3339 date and time such as 2026-12-03T10:30:00+01:00"
            )),
        },
        Ty::Duration => match crate::duration::parse(text) {
            Some(_) => string(),
            None => Err(format!("\"{text}\" is not a duration such as 4m30s")),
        },
        Ty::TimeZone => match text.parse::<chrono_tz::Tz>() {
            Ok(_) => string(),
            Err(_) => Err(format!(
                "\"{text}\" is not an IANA time zone such as Europe/Berlin"
            )),
        },
        Ty::List(_) | Ty::Record(_) | Ty::Variables => {
            let json: Json = serde_json::from_str(text)
                .map_err(|e| format!("\"{text}\" is not JSON text for {ty}: {e}"))?;
            json_fits(&json, ty).map_err(|problem| format!("\"{text}\": {problem}"))?;
            Ok(Some(json))
        }
        // Text-like types and anything unconstrained: the text.
        _ => string(),
    }
}

/// Why a spreadsheet may have mangled a phone number, if it looks so.
fn spreadsheet_hint(text: &str) -> &'static str {
    let scientific = (text.contains("E+") || text.contains("e+")) && text.parse::<f64>().is_ok();
    if scientific {
        "; the spreadsheet shows it as a number in scientific notation: format the column as text and write the full number with +"
    } else if text.len() >= 8 && text.chars().all(|c| c.is_ascii_digit()) {
        "; spreadsheets drop the leading + of numbers: format the column as text and write it with + and the country code"
    } else {
        ""
    }
}

/// Whether JSON fits `ty`, the rules of events.
fn json_fits(json: &Json, ty: &Ty) -> Result<(), String> {
    let wrong = || Err(format!("expected {ty}"));
    match (ty, json) {
        (Ty::Optional(_), Json::Null) => Ok(()),
        (Ty::Optional(inner), _) => json_fits(json, inner),
        (Ty::Any | Ty::Unknown, _) => Ok(()),
        (Ty::Phone, Json::String(s)) => check_e164(s)
            .map_err(|p| format!("\"{s}\" is not an E.164 phone number: {}", describe(&p))),
        (t, Json::String(_)) if t.is_text() => Ok(()),
        (Ty::Int, Json::Number(n)) if n.is_i64() => Ok(()),
        (Ty::Float, Json::Number(_)) | (Ty::Bool, Json::Bool(_)) => Ok(()),
        (Ty::DateTime | Ty::Duration, Json::String(s)) => convert_cell(s, ty).map(|_| ()),
        (Ty::List(element), Json::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| {
                json_fits(item, element).map_err(|p| format!("item {i}: {p}"))
            })
        }
        (Ty::Record(record), Json::Object(map)) => {
            record
                .fields
                .iter()
                .try_for_each(|field| match map.get(&field.name) {
                    None if matches!(field.ty, Ty::Optional(_)) => Ok(()),
                    None => Err(format!("missing `{}` ({})", field.name, field.ty)),
                    Some(v) => {
                        json_fits(v, &field.ty).map_err(|p| format!("`{}`: {p}", field.name))
                    }
                })
        }
        (Ty::Variables, Json::Array(_) | Json::Object(_)) => Ok(()),
        _ => wrong(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_convert_by_type() {
        let some = |t: &str, ty: Ty| convert_cell(t, &ty);
        assert_eq!(some("42", Ty::Int), Ok(Some(Json::from(42))));
        assert_eq!(some("+42", Ty::Int), Ok(Some(Json::from(42))));
        assert!(some("4.2", Ty::Int).is_err());
        assert_eq!(some("3,5", Ty::Float), Ok(Some(Json::from(3.5))));
        assert_eq!(some("3.5", Ty::Float), Ok(Some(Json::from(3.5))));
        assert!(some("NaN", Ty::Float).is_err());
        assert!(some("inf", Ty::Float).is_err());
        assert!(some("1.234,5", Ty::Float).is_err());
        assert_eq!(some("JA", Ty::Bool), Ok(Some(Json::Bool(true))));
        assert_eq!(some("no", Ty::Bool), Ok(Some(Json::Bool(false))));
        assert!(some("maybe", Ty::Bool).is_err());
        assert!(some("2026-12-03T10:30:00+01:00", Ty::DateTime).is_ok());
        assert!(some("03.12.2026", Ty::DateTime).is_err());
        assert!(some("4m30s", Ty::Duration).is_ok());
        assert!(some("Europe/Berlin", Ty::TimeZone).is_ok());
        assert!(some("Berlin", Ty::TimeZone).is_err());
        assert_eq!(some("", Ty::String.optional()), Ok(None));
        assert!(some("", Ty::String).is_err());
        assert_eq!(
            some("[1,2]", Ty::List(Box::new(Ty::Int))),
            Ok(Some(serde_json::json!([1, 2])))
        );
        assert!(some("[1,\"a\"]", Ty::List(Box::new(Ty::Int))).is_err());
        assert!(some("{\"a\":\"b\"}", Ty::Variables).is_ok());
    }

    #[test]
    fn phone_cells_explain_spreadsheet_damage() {
        let digits = convert_cell("4915112345678", &Ty::Phone).unwrap_err();
        assert!(digits.contains("no leading +"), "{digits}");
        assert!(
            digits.contains("spreadsheets drop the leading +"),
            "{digits}"
        );
        let scientific = convert_cell("4.91511E+12", &Ty::Phone).unwrap_err();
        assert!(scientific.contains("scientific notation"), "{scientific}");
        assert!(convert_cell("+4915112345678", &Ty::Phone).is_ok());
    }

    #[test]
    fn names_normalize() {
        assert_eq!(normalize(" Customer Name "), "customer_name");
        assert_eq!(normalize("CUSTOMER-PHONE"), "customer_phone");
    }
}
