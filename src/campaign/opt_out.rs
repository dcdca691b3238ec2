//! Opt-out: the stop and start words customers write, and the opt-out list
//! as CSV.
//!
//! # When a message is a stop (or start) word
//!
//! A message opts out when, after normalizing, it is a stop word or phrase
//! **alone**, optionally with courtesy words around it ("please", "bitte",
//! "thanks", "hi", ...). A stop word inside a sentence is not an opt-out:
//! "please stop the installation next week" asks for something else, and a
//! person should read it. Normalizing:
//!
//! 1. letters lose case and accents (`Désabonner` → `desabonner`, `İPTAL` →
//!    `iptal`, `Rezygnuję` → `rezygnuje`; `ß` → `ss`, `ł` → `l`);
//! 2. everything that is not a letter or digit (punctuation, emoji,
//!    apostrophes, hyphens) separates words: `STOP!!!`, `stop.`, `opt-out`,
//!    `🛑 Stop` match;
//! 3. courtesy words are taken off the start and the end, repeatedly;
//! 4. what is left must equal a stop or start phrase word for word.
//!
//! Messages longer than 100 characters are never opt-outs. Stop words are
//! looked for before start words, so a configured word in both lists stops
//! (and [`OptOutWords::from_config`] refuses such a configuration).
//!
//! The defaults cover English, German, French, Spanish, Italian, Dutch,
//! Portuguese, Polish and Turkish ([`LANGUAGES`]). English includes `CANCEL`
//! and `END`, as carriers do; a project whose flows ask customers to reply
//! "cancel" to cancel an appointment removes it with
//! [`OptOutConfig::not_stop_words`].
//!
//! ```
//! use flowc::campaign::opt_out::{OptChange, OptOutWords};
//!
//! let words = OptOutWords::defaults();
//! assert_eq!(words.classify("STOP"), Some(OptChange::OptOut));
//! assert_eq!(words.classify("  Stop please! "), Some(OptChange::OptOut));
//! assert_eq!(words.classify("Bitte abmelden."), Some(OptChange::OptOut));
//! assert_eq!(words.classify("désabonner"), Some(OptChange::OptOut));
//! assert_eq!(words.classify("START"), Some(OptChange::OptIn));
//! assert_eq!(words.classify("please stop the installation next week"), None);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Read, Write};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::csv_input::{CsvInput, Encoding, FileProblem};
use super::recipients::{CellProblem, DuplicateRow, HeaderProblem, SkipReason, SkippedRow};
use crate::check::rules::closest;
use crate::phone::{check_e164, describe};

/// What a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptChange {
    /// Stop sending marketing.
    OptOut,
    /// Send again.
    OptIn,
}

/// The languages with default words.
pub const LANGUAGES: &[&str] = &["en", "de", "fr", "es", "it", "nl", "pt", "pl", "tr"];

/// Default words of a language: (stop, start, courtesy).
fn defaults_of(
    language: &str,
) -> Option<(
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
)> {
    Some(match language {
        "en" => (
            &[
                "stop",
                "stop all",
                "stopall",
                "unsubscribe",
                "cancel",
                "end",
                "quit",
                "opt out",
                "optout",
            ][..],
            &["start", "subscribe", "unstop", "opt in"][..],
            &[
                "please",
                "pls",
                "plz",
                "thanks",
                "thank you",
                "thx",
                "hi",
                "hello",
                "hey",
            ][..],
        ),
        "de" => (
            &[
                "stopp",
                "stop",
                "abmelden",
                "abbestellen",
                "austragen",
                "abmeldung",
            ][..],
            &["start", "anmelden"][..],
            &["bitte", "danke", "hallo", "hi"][..],
        ),
        "fr" => (
            &[
                "stop",
                "arret",
                "arreter",
                "desabonner",
                "desabonnement",
                "desinscrire",
                "desinscription",
            ][..],
            &["start"][..],
            &["svp", "s il vous plait", "stp", "merci", "bonjour"][..],
        ),
        "es" => (
            &[
                "baja",
                "darme de baja",
                "parar",
                "detener",
                "cancelar",
                "alto",
                "stop",
            ][..],
            &["alta"][..],
            &["por favor", "gracias", "hola"][..],
        ),
        "it" => (
            &["stop", "basta", "disiscrivimi", "cancellami", "annulla"][..],
            &[][..],
            &["per favore", "grazie", "ciao"][..],
        ),
        "nl" => (
            &["stop", "stoppen", "afmelden", "uitschrijven"][..],
            &["aanmelden"][..],
            &[
                "aub",
                "alstublieft",
                "graag",
                "bedankt",
                "dank je",
                "hallo",
                "hoi",
            ][..],
        ),
        "pt" => (
            &["parar", "pare", "sair", "cancelar", "descadastrar", "stop"][..],
            &[][..],
            &["por favor", "obrigado", "obrigada", "ola"][..],
        ),
        "pl" => (
            &["stop", "wypisz", "wypisz mnie", "rezygnuje", "anuluj"][..],
            &[][..],
            &["prosze", "dziekuje", "dzien dobry", "czesc"][..],
        ),
        "tr" => (
            &["dur", "durdur", "iptal", "abonelikten cik", "stop"][..],
            &[][..],
            &["lutfen", "tesekkurler", "merhaba"][..],
        ),
        _ => return None,
    })
}

/// The opt-out words as `flow.toml` could configure them. Every list is
/// optional; the defaults are all [`LANGUAGES`].
///
/// ```
/// use flowc::campaign::opt_out::{OptChange, OptOutConfig, OptOutWords};
///
/// let config: OptOutConfig = toml::from_str(r#"
/// languages = ["en", "de"]
/// stop_words = ["genug"]
/// not_stop_words = ["cancel"]
/// "#).unwrap();
/// let words = OptOutWords::from_config(&config).unwrap();
/// assert_eq!(words.classify("Genug!"), Some(OptChange::OptOut));
/// assert_eq!(words.classify("cancel"), None);
/// assert_eq!(words.classify("arrêt"), None); // French is not on
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptOutConfig {
    /// Languages whose default words apply; all of [`LANGUAGES`] when `None`,
    /// none when empty.
    pub languages: Option<Vec<String>>,
    /// Stop words or phrases added to the defaults.
    pub stop_words: Vec<String>,
    /// Start words or phrases added to the defaults.
    pub start_words: Vec<String>,
    /// Default stop words that should not stop.
    pub not_stop_words: Vec<String>,
    /// Default start words that should not start.
    pub not_start_words: Vec<String>,
    /// Courtesy words added to the defaults.
    pub courtesy_words: Vec<String>,
}

/// Why an opt-out configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptOutConfigError {
    /// A language without defaults.
    #[error("opt-out words: no default words for the language `{language}`; known: {}", LANGUAGES.join(", "))]
    UnknownLanguage {
        /// The language given.
        language: String,
    },
    /// A word that normalizes to nothing.
    #[error("opt-out words: \"{word}\" has no letters or digits")]
    EmptyWord {
        /// The word given.
        word: String,
    },
    /// A word in both lists.
    #[error("opt-out words: \"{word}\" is both a stop and a start word")]
    Conflict {
        /// The word, normalized.
        word: String,
    },
}

/// Stop, start and courtesy words, normalized, ready to classify messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutWords {
    stop: BTreeSet<String>,
    start: BTreeSet<String>,
    /// Courtesy phrases as word lists, longest first.
    courtesy: Vec<Vec<String>>,
    /// Every word of the phrases above: a message with any other word is
    /// neither a stop nor a start word, which most messages show at their
    /// first word without being normalized.
    vocabulary: std::collections::HashSet<String>,
    /// The longest word of the vocabulary, in bytes.
    longest_word: usize,
}

impl Default for OptOutWords {
    fn default() -> Self {
        OptOutWords::defaults()
    }
}

impl OptOutWords {
    /// The default words of all [`LANGUAGES`].
    pub fn defaults() -> Self {
        OptOutWords::from_config(&OptOutConfig::default()).unwrap_or_else(|_| OptOutWords::empty())
    }

    fn empty() -> Self {
        OptOutWords {
            stop: BTreeSet::new(),
            start: BTreeSet::new(),
            courtesy: Vec::new(),
            vocabulary: std::collections::HashSet::new(),
            longest_word: 0,
        }
    }

    /// The words a configuration asks for.
    pub fn from_config(config: &OptOutConfig) -> Result<Self, OptOutConfigError> {
        let mut words = OptOutWords::empty();
        let mut courtesy = BTreeSet::new();
        let languages: Vec<String> = match &config.languages {
            Some(list) => list.iter().map(|l| l.trim().to_ascii_lowercase()).collect(),
            None => LANGUAGES.iter().map(|l| l.to_string()).collect(),
        };
        for language in &languages {
            let (stop, start, polite) =
                defaults_of(language).ok_or_else(|| OptOutConfigError::UnknownLanguage {
                    language: language.clone(),
                })?;
            words.stop.extend(stop.iter().map(|w| normalize(w)));
            words.start.extend(start.iter().map(|w| normalize(w)));
            courtesy.extend(polite.iter().map(|w| normalize(w)));
        }
        let checked = |word: &String| {
            let n = normalize(word);
            if n.is_empty() {
                Err(OptOutConfigError::EmptyWord { word: word.clone() })
            } else {
                Ok(n)
            }
        };
        for word in &config.stop_words {
            words.stop.insert(checked(word)?);
        }
        for word in &config.start_words {
            words.start.insert(checked(word)?);
        }
        for word in &config.courtesy_words {
            courtesy.insert(checked(word)?);
        }
        for word in &config.not_stop_words {
            words.stop.remove(&checked(word)?);
        }
        for word in &config.not_start_words {
            words.start.remove(&checked(word)?);
        }
        if let Some(word) = words.stop.intersection(&words.start).next() {
            return Err(OptOutConfigError::Conflict { word: word.clone() });
        }
        let mut courtesy: Vec<Vec<String>> = courtesy
            .into_iter()
            .map(|c| c.split(' ').map(String::from).collect())
            .collect();
        courtesy.sort_by_key(|c: &Vec<String>| std::cmp::Reverse(c.len()));
        words.courtesy = courtesy;
        words.vocabulary = words
            .stop
            .iter()
            .chain(&words.start)
            .flat_map(|phrase| phrase.split(' '))
            .chain(words.courtesy.iter().flatten().map(String::as_str))
            .map(String::from)
            .collect();
        words.longest_word = words.vocabulary.iter().map(String::len).max().unwrap_or(0);
        Ok(words)
    }

    /// Whether an ASCII message has a word outside the vocabulary, and so
    /// cannot be a stop or start word. For ASCII text the normalization
    /// keeps exactly the lowercased runs of letters and digits, which this
    /// compares without allocating.
    fn has_foreign_word(&self, message: &str) -> bool {
        if !message.is_ascii() {
            return false;
        }
        let mut lower = [0u8; 64];
        message
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty())
            .any(|word| {
                if word.len() > self.longest_word || word.len() > lower.len() {
                    return true;
                }
                let lower = &mut lower[..word.len()];
                lower.copy_from_slice(word.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower).map_or(true, |w| !self.vocabulary.contains(w))
            })
    }

    /// Whether the message is a stop word ([`OptChange::OptOut`]), a start
    /// word ([`OptChange::OptIn`]) or neither, by the rule of the
    /// [module](self).
    pub fn classify(&self, message: &str) -> Option<OptChange> {
        if message.chars().count() > 100 || self.has_foreign_word(message) {
            return None;
        }
        let normalized = normalize(message);
        let mut words: &[&str] = &normalized
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>();
        // Courtesy words off both ends, until none is left to take.
        loop {
            let before = words.len();
            for phrase in &self.courtesy {
                if words.len() > phrase.len() && words.iter().zip(phrase).all(|(w, p)| w == p) {
                    words = &words[phrase.len()..];
                }
                if words.len() > phrase.len()
                    && words[words.len() - phrase.len()..]
                        .iter()
                        .zip(phrase)
                        .all(|(w, p)| w == p)
                {
                    words = &words[..words.len() - phrase.len()];
                }
            }
            if words.len() == before {
                break;
            }
        }
        let rest = words.join(" ");
        if self.stop.contains(&rest) {
            Some(OptChange::OptOut)
        } else if self.start.contains(&rest) {
            Some(OptChange::OptIn)
        } else {
            None
        }
    }

    /// The stop phrases, normalized.
    pub fn stop_words(&self) -> impl Iterator<Item = &str> {
        self.stop.iter().map(String::as_str)
    }

    /// The start phrases, normalized.
    pub fn start_words(&self) -> impl Iterator<Item = &str> {
        self.start.iter().map(String::as_str)
    }
}

/// Lower case, no accents, words separated by single spaces.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    let mut push = |c: char, out: &mut String| {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    };
    for c in text.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ß' => {
                push('s', &mut out);
                push('s', &mut out);
            }
            'ł' | 'Ł' => push('l', &mut out),
            'ı' => push('i', &mut out),
            'ø' | 'Ø' => push('o', &mut out),
            'đ' | 'Đ' => push('d', &mut out),
            'æ' | 'Æ' => {
                push('a', &mut out);
                push('e', &mut out);
            }
            'œ' | 'Œ' => {
                push('o', &mut out);
                push('e', &mut out);
            }
            c => {
                for lower in c.to_lowercase() {
                    push(lower, &mut out);
                }
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

// ---------------------------------------------------------------------------
// The opt-out list as CSV
// ---------------------------------------------------------------------------

/// One opted-out number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRecord {
    /// The number, strict E.164.
    pub phone: String,
    /// When the customer opted out, if known.
    pub opted_out_at: Option<DateTime<Utc>>,
    /// How: `message` (a stop word), `import`, `manual`, or another tool's
    /// word.
    pub source: String,
}

/// The source given to imported rows without one.
pub const IMPORT_SOURCE: &str = "import";

/// Writes an opt-out list: a header `phone,opted_out_at,source`, then one row
/// per record, times in RFC 3339 UTC. [`read_opt_outs`] reads it back.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use flowc::campaign::opt_out::{read_opt_outs, write_opt_outs, OptOutRecord};
/// use flowc::campaign::Encoding;
///
/// let records = vec![OptOutRecord {
///     phone: "+4915112345678".into(),
///     opted_out_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()),
///     source: "message".into(),
/// }];
/// let mut csv = Vec::new();
/// write_opt_outs(&mut csv, &records).unwrap();
/// assert_eq!(String::from_utf8(csv.clone()).unwrap(),
///     "phone,opted_out_at,source\n+4915112345678,2026-03-01T09:30:00Z,message\n");
/// let back = read_opt_outs(&csv[..], "opt-outs.csv", Encoding::Utf8).unwrap();
/// assert_eq!(back.records, records);
/// ```
pub fn write_opt_outs<'a, W: Write>(
    writer: W,
    records: impl IntoIterator<Item = &'a OptOutRecord>,
) -> io::Result<()> {
    let mut writer = io::BufWriter::new(writer);
    writer.write_all(b"phone,opted_out_at,source\n")?;
    for record in records {
        let at = record
            .opted_out_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        writeln!(
            writer,
            "{},{},{}",
            csv_field(&record.phone),
            at,
            csv_field(&record.source)
        )?;
    }
    writer.flush()
}

/// A value as a CSV field: quoted when it holds a comma, quote or line
/// break, or starts with a character spreadsheets read as a formula.
fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    let formula = value.starts_with(['=', '@', '-'])
        || (value.starts_with('+') && check_e164(value).is_err());
    if value.contains([',', '"', '\n', '\r']) || formula {
        let escaped = value.replace('"', "\"\"");
        if formula {
            // A leading apostrophe keeps a spreadsheet from running it.
            format!("\"'{escaped}\"").into()
        } else {
            format!("\"{escaped}\"").into()
        }
    } else {
        value.into()
    }
}

/// Why an opt-out list cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptOutListError {
    /// The file is unreadable, empty, not UTF-8, or not CSV.
    #[error("{file}: {problem}")]
    File {
        /// The file's name as given.
        file: String,
        /// What is wrong.
        problem: FileProblem,
    },
    /// The header row has problems.
    #[error("{file}, line {line} (the header row): {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Header {
        /// The file's name as given.
        file: String,
        /// The header row's line.
        line: u64,
        /// Every problem found.
        problems: Vec<HeaderProblem>,
    },
}

/// An imported list and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutImport {
    /// The numbers, in file order, each once.
    pub records: Vec<OptOutRecord>,
    /// Rows with a bad number or time, with their lines.
    pub skipped: Vec<SkippedRow>,
    /// Rows whose number came before (the first row wins).
    pub duplicates: Vec<DuplicateRow>,
    /// Columns other than `phone`, `opted_out_at` and `source`, which are
    /// ignored (lists from other tools have names and the like).
    pub ignored_columns: Vec<String>,
}

impl fmt::Display for OptOutImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} skipped, {}",
            crate::diag::counted(self.records.len(), "number"),
            self.skipped.len(),
            crate::diag::counted(self.duplicates.len(), "duplicate")
        )?;
        if !self.ignored_columns.is_empty() {
            write!(f, "; ignored columns: {}", self.ignored_columns.join(", "))?;
        }
        for s in &self.skipped {
            write!(f, "\n  {s}")?;
        }
        for d in &self.duplicates {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Reads an opt-out list written by [`write_opt_outs`] or another tool.
///
/// Columns: `phone` (required, strict E.164), `opted_out_at` (optional: RFC
/// 3339, or a date `2026-03-01` read as midnight UTC; empty when unknown),
/// `source` (optional; `import` when empty). Names match ignoring case;
/// other columns are ignored and listed, except near misses of these three,
/// which are errors with a suggestion. Delimiter and encoding are handled as
/// for recipient lists ([`super::recipients`]). A header row alone is an
/// empty list.
pub fn read_opt_outs(
    source: impl Read,
    file: impl Into<String>,
    encoding: Encoding,
) -> Result<OptOutImport, OptOutListError> {
    let file = file.into();
    let file_error = |problem| OptOutListError::File {
        file: file.clone(),
        problem,
    };
    let mut input = CsvInput::new(source, encoding, None).map_err(file_error)?;
    let header = input
        .next_record()
        .map_err(file_error)?
        .ok_or_else(|| file_error(FileProblem::Empty))?;
    const KNOWN: [&str; 3] = ["phone", "opted_out_at", "source"];
    let mut positions: [Option<usize>; 3] = [None; 3];
    let mut problems = Vec::new();
    let mut ignored_columns = Vec::new();
    for (i, name) in header.fields.iter().enumerate() {
        let name = name.trim();
        let wanted = name.to_lowercase().replace([' ', '-'], "_");
        if let Some(k) = KNOWN.iter().position(|k| *k == wanted) {
            match positions[k] {
                Some(first) => problems.push(HeaderProblem::Duplicate {
                    column: i + 1,
                    first_column: first + 1,
                    field: KNOWN[k].to_string(),
                }),
                None => positions[k] = Some(i),
            }
        } else if name.starts_with('+') && check_e164(name).is_ok() {
            problems.push(HeaderProblem::LooksLikeData {
                value: name.to_string(),
            });
        } else if let Some(suggestion) = closest(&wanted, KNOWN) {
            problems.push(HeaderProblem::Unknown {
                column: i + 1,
                name: name.to_string(),
                suggestion: Some(suggestion.to_string()),
            });
        } else {
            ignored_columns.push(name.to_string());
        }
    }
    if positions[0].is_none()
        && !problems
            .iter()
            .any(|p| matches!(p, HeaderProblem::LooksLikeData { .. }))
    {
        problems.push(HeaderProblem::Missing(vec![(
            "phone".into(),
            "Phone".into(),
        )]));
    }
    if !problems.is_empty() {
        return Err(OptOutListError::Header {
            file,
            line: header.line,
            problems,
        });
    }
    let phone_at = positions[0].unwrap_or(0);
    let mut import = OptOutImport {
        records: Vec::new(),
        skipped: Vec::new(),
        duplicates: Vec::new(),
        ignored_columns,
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Some(raw) = input.next_record().map_err(file_error)? {
        if raw.fields.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |k: usize| {
            positions[k]
                .and_then(|i| raw.fields.get(i))
                .map(|c| c.trim())
                .unwrap_or("")
        };
        let mut cells = Vec::new();
        let phone = cell(0);
        if let Err(p) = check_e164(phone) {
            cells.push(CellProblem {
                column: phone_at + 1,
                name: header.fields[phone_at].trim().to_string(),
                value: phone.to_string(),
                problem: format!("\"{phone}\" is not an E.164 phone number: {}", describe(&p)),
                is_phone: true,
            });
        }
        let at_text = cell(1);
        let opted_out_at = match parse_time(at_text) {
            Ok(at) => at,
            Err(problem) => {
                let column = positions[1].unwrap_or(0);
                cells.push(CellProblem {
                    column: column + 1,
                    name: header.fields[column].trim().to_string(),
                    value: at_text.to_string(),
                    problem,
                    is_phone: false,
                });
                None
            }
        };
        if !cells.is_empty() {
            import.skipped.push(SkippedRow {
                line: raw.line,
                reason: SkipReason::BadValues { cells },
            });
            continue;
        }
        if let Some(&first_line) = seen.get(phone) {
            import.duplicates.push(DuplicateRow {
                line: raw.line,
                first_line,
                phone: phone.to_string(),
            });
            continue;
        }
        seen.insert(phone.to_string(), raw.line);
        let source = match cell(2) {
            "" => IMPORT_SOURCE.to_string(),
            s => s.to_string(),
        };
        import.records.push(OptOutRecord {
            phone: phone.to_string(),
            opted_out_at,
            source,
        });
    }
    Ok(import)
}

fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(format!(
        "\"{text}\" is not an RFC 3339 time such as 2026-03-01T09:30:00Z or a date such as 2026-03-01"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing() {
        assert_eq!(normalize("  STOP!!! "), "stop");
        assert_eq!(normalize("Désabonner"), "desabonner");
        assert_eq!(normalize("İPTAL"), "iptal");
        assert_eq!(normalize("Abonelikten çık"), "abonelikten cik");
        assert_eq!(normalize("Rezygnuję"), "rezygnuje");
        assert_eq!(normalize("opt-out"), "opt out");
        assert_eq!(normalize("🛑 Stop 🙏"), "stop");
        assert_eq!(normalize("S'il vous plaît"), "s il vous plait");
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("ＳＴＯＰ"), "stop");
    }

    /// The quick check never rejects an ASCII message the full rule would
    /// take: a message with a foreign word normalizes to words that are
    /// not all in the vocabulary.
    #[test]
    fn a_foreign_word_rejects_only_what_the_full_rule_rejects() {
        let words = OptOutWords::defaults();
        let messages = [
            "STOP",
            "stop!!!",
            "Stop please",
            "please STOP thank you",
            "  Stopp bitte ",
            "UNSUBSCRIBE",
            "start",
            "I want to stop",
            "STOP 123",
            "stop-stop",
            "opt out",
            "Opt-Out",
            "cancel my appointment",
            "Hello, what is the price?",
            "END",
            "stop\tplease",
        ];
        for message in messages {
            if words.has_foreign_word(message) {
                let normalized = normalize(message);
                assert!(
                    normalized.split(' ').any(|w| !words.vocabulary.contains(w)),
                    "{message:?} was rejected but all its words are known"
                );
            }
        }
        assert!(words.has_foreign_word("Hello, what is the price?"));
        assert!(!words.has_foreign_word("Stop please"));
        assert_eq!(words.classify("Stop please"), Some(OptChange::OptOut));
        assert_eq!(words.classify("I want to stop"), None);
    }

    #[test]
    fn defaults_have_no_conflicts() {
        let words = OptOutWords::defaults();
        assert!(words.stop_words().count() > 40);
        for w in words.stop_words() {
            assert_eq!(normalize(w), w);
            assert!(!words.start.contains(w), "{w}");
        }
    }

    #[test]
    fn config_errors() {
        let bad = |c: OptOutConfig| OptOutWords::from_config(&c).unwrap_err().to_string();
        assert_eq!(
            bad(OptOutConfig { languages: Some(vec!["xx".into()]), ..Default::default() }),
            "opt-out words: no default words for the language `xx`; known: en, de, fr, es, it, nl, pt, pl, tr"
        );
        assert_eq!(
            bad(OptOutConfig {
                stop_words: vec!["start".into()],
                ..Default::default()
            }),
            "opt-out words: \"start\" is both a stop and a start word"
        );
        assert_eq!(
            bad(OptOutConfig {
                stop_words: vec!["!!".into()],
                ..Default::default()
            }),
            "opt-out words: \"!!\" has no letters or digits"
        );
        let none = OptOutWords::from_config(&OptOutConfig {
            languages: Some(vec![]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(none.classify("stop"), None);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(""), Ok(None));
        assert!(parse_time("2026-03-01T10:30:00+01:00").unwrap().is_some());
        assert_eq!(
            parse_time("2026-03-01").unwrap().unwrap().to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        assert!(parse_time("01.03.2026").is_err());
    }
}
