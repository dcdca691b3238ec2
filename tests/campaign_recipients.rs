//! Recipient lists: the bad inputs of issue #11 (missing columns, wrong
//! encoding, duplicate and bad phone numbers with their lines, a million
//! rows) and the mapping of columns to a trigger's fields.

use std::io::Write;
use std::time::Instant;

use flowc::campaign::recipients::{
    ColumnTarget, HeaderProblem, RecipientOptions, RecipientReader, Row, SkipReason,
};
use flowc::campaign::{
    read_recipients, validate_recipients, Encoding, FileProblem, RecipientsError,
};
use flowc::check::schema::TriggerSchema;
use flowc::check::{Compiler, Schemas};

const DECLARATIONS: &str = "
trigger campaign.sale {
    phone: Phone
    name: String?
    discount: Int
    vip: Bool?
    score: Float?
    last_visit: DateTime?
}

trigger campaign.vars {
    phone: Phone
    name: String
    vars: Variables?
}

trigger campaign.two_phones {
    phone: Phone?
    backup: Phone?
}

trigger campaign.no_phone {
    name: String
}
";

fn schemas() -> Schemas {
    let mut compiler = Compiler::new();
    compiler.add_source("campaign.flow", DECLARATIONS);
    let checked = compiler.check();
    assert!(checked.diagnostics.is_empty(), "{}", checked.render_plain());
    checked.program.unwrap().schemas().clone()
}

fn trigger(schemas: &Schemas, name: &str) -> TriggerSchema {
    schemas.triggers[name].clone()
}

fn read(
    text: &[u8],
    trigger_name: &str,
) -> Result<flowc::campaign::RecipientList, RecipientsError> {
    let s = schemas();
    read_recipients(
        text,
        "customers.csv",
        &trigger(&s, trigger_name),
        &RecipientOptions::default(),
    )
}

#[test]
fn a_german_excel_file_maps_to_events() {
    let s = schemas();
    let file = "\u{feff}Phone;Name;Discount;VIP;Score;Last Visit\r\n\
                +4915112345678;\"Schmidt; Anna\";20;ja;3,5;2026-03-01T10:00:00+01:00\r\n\
                \r\n\
                +436641234567;;10;;;\r\n\
                ;;;;;\r\n";
    let list = read_recipients(
        file.as_bytes(),
        "customers.csv",
        &trigger(&s, "campaign.sale"),
        &RecipientOptions::default(),
    )
    .unwrap();
    assert!(list.report.is_clean(), "{}", list.report);
    assert_eq!(list.report.delimiter, ';');
    assert_eq!(
        (
            list.report.rows,
            list.report.blank_rows,
            list.report.recipients
        ),
        (2, 1, 2)
    );
    let first = &list.recipients[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.phone, "+4915112345678");
    assert_eq!(
        serde_json::Value::Object(first.fields.clone()),
        serde_json::json!({
            "phone": "+4915112345678", "name": "Schmidt; Anna", "discount": 20,
            "vip": true, "score": 3.5, "last_visit": "2026-03-01T10:00:00+01:00"
        })
    );
    let second = &list.recipients[1];
    assert_eq!(second.line, 4);
    assert_eq!(second.fields.len(), 2, "empty optional fields are left out");
    // Every recipient is an event the engine accepts.
    for r in &list.recipients {
        r.to_event("campaign.sale").to_value(&s).unwrap();
    }
}

#[test]
fn missing_columns_are_one_error_listing_them() {
    let err = read(b"name,vip\nAnna,yes\n", "campaign.sale").unwrap_err();
    assert_eq!(
        err.to_string(),
        "customers.csv, line 1 (the header row): missing columns for `phone` (Phone), `discount` (Int)"
    );
    let RecipientsError::Header { problems, .. } = err else {
        panic!()
    };
    assert_eq!(
        problems,
        [HeaderProblem::Missing(vec![
            ("phone".into(), "Phone".into()),
            ("discount".into(), "Int".into())
        ])]
    );
}

#[test]
fn unknown_columns_suggest_and_all_problems_come_together() {
    let err = read(
        b"phnoe,discont,city,,name,Name\n+4915112345678,1,x,,a,b\n",
        "campaign.sale",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "customers.csv, line 1 (the header row): column 1 `phnoe` is no field of the trigger; did you mean `phone`?; \
         column 2 `discont` is no field of the trigger; did you mean `discount`?; \
         column 3 `city` is no field of the trigger; column 4 has no name; \
         columns 5 and 6 both fill the field `name`; \
         missing columns for `phone` (Phone), `discount` (Int)"
    );
}

#[test]
fn unmatched_columns_become_variables_when_the_trigger_has_a_bag() {
    let s = schemas();
    let t = trigger(&s, "campaign.vars");
    let reader = RecipientReader::new(
        &b"phone,name,Discount Code,city\n"[..],
        "c.csv",
        &t,
        &RecipientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        reader.columns()[2].target,
        ColumnTarget::Variable {
            field: "vars".into(),
            key: "Discount Code".into()
        }
    );
    let list = read_recipients(
        &b"phone,name,code,city\n+4915112345678,Anna,SPRING,\n+4915112345679,Bob,,\n"[..],
        "c.csv",
        &t,
        &RecipientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        list.recipients[0].fields["vars"],
        serde_json::json!({"code": "SPRING"})
    );
    assert!(!list.recipients[1].fields.contains_key("vars"));
    for r in &list.recipients {
        r.to_event("campaign.vars").to_value(&s).unwrap();
    }
    // A column of JSON for the bag itself takes the other columns in.
    let merged = read_recipients(
        &b"phone,name,vars,code\n+4915112345678,Anna,\"{\"\"city\"\":\"\"Berlin\"\"}\",SPRING\n"[..],
        "c.csv",
        &t,
        &RecipientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        merged.recipients[0].fields["vars"],
        serde_json::json!({"city": "Berlin", "code": "SPRING"})
    );
    // A near miss of a field is still an error, not a variable.
    let err = read(b"phone,nmae\n+4915112345678,Anna\n", "campaign.vars").unwrap_err();
    assert!(err.to_string().contains("did you mean `name`?"), "{err}");
}

#[test]
fn bad_phone_numbers_are_skipped_with_their_lines() {
    let list = read(
        b"phone,discount\n\
          +4915112345678,1\n\
          0151/12345678,2\n\
          4915112345679,3\n\
          +4915112345680,many\n\
          ,5\n\
          +4915112345681,6,extra\n\
          +4915112345682,7\n",
        "campaign.sale",
    )
    .unwrap();
    let report = &list.report;
    assert_eq!(
        list.recipients.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 8]
    );
    assert_eq!(
        (report.rows, report.skipped_count, report.bad_phone_count),
        (7, 5, 3)
    );
    assert_eq!(
        report.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
        [3, 4, 5, 6, 7]
    );
    assert!(matches!(
        report.skipped[4].reason,
        SkipReason::WrongCellCount {
            found: 3,
            expected: 2
        }
    ));
    let text = report.to_string();
    assert_eq!(
        text,
        "customers.csv: 7 rows, 2 recipients, 5 skipped (3 bad phone numbers), 0 duplicates\n  \
         line 3: column 1 `phone`: \"0151/12345678\" is not an E.164 phone number: no leading + and country code; '/' is not allowed\n  \
         line 4: column 1 `phone`: \"4915112345679\" is not an E.164 phone number: no leading +; spreadsheets drop the leading + of numbers: format the column as text and write it with + and the country code\n  \
         line 5: column 2 `discount`: \"many\" is not a whole number\n  \
         line 6: column 1 `phone`: no phone number\n  \
         line 7: 3 cells, but the header row has 2 columns"
    );
}

#[test]
fn duplicates_keep_the_first_and_name_both_lines() {
    let s = schemas();
    let t = trigger(&s, "campaign.sale");
    let text =
        b"phone,discount\n+4915112345678,1\n+4915112345679,2\n+4915112345678,3\n+4915112345678,4\n";
    let mut reader =
        RecipientReader::new(&text[..], "c.csv", &t, &RecipientOptions::default()).unwrap();
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        rows.push(row);
    }
    let Row::Duplicate(d) = &rows[2] else {
        panic!("{rows:?}")
    };
    assert_eq!(
        (d.line, d.first_line, d.phone.as_str()),
        (4, 2, "+4915112345678")
    );
    let report = reader.into_report();
    assert_eq!((report.recipients, report.duplicate_count), (2, 2));
    assert!(report
        .to_string()
        .ends_with("line 4: +4915112345678 is already on line 2\n  line 5: +4915112345678 is already on line 2"));
    // The first row's values are the ones kept.
    let list = read_recipients(&text[..], "c.csv", &t, &RecipientOptions::default()).unwrap();
    assert_eq!(list.recipients[0].fields["discount"], 1);
}

#[test]
fn a_latin_1_file_is_refused_with_its_line_or_read_when_asked() {
    let s = schemas();
    let t = trigger(&s, "campaign.sale");
    let file =
        b"phone;name;discount\n+4915112345678;Anna;1\n+4915112345679;J\xfcrgen M\xfcller;2\n";
    let err =
        validate_recipients(&file[..], "kunden.csv", &t, &RecipientOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kunden.csv: line 3, column 2: not UTF-8 text (read as Windows-1252 it says \"Jürgen Müller\", \
         as Excel's \"CSV (Comma delimited)\" saves); in Excel use File > Save As > \"CSV UTF-8 (Comma delimited)\", \
         or read the file with the encoding windows-1252"
    );
    let options = RecipientOptions {
        encoding: Encoding::Windows1252,
        ..RecipientOptions::default()
    };
    let list = read_recipients(&file[..], "kunden.csv", &t, &options).unwrap();
    assert_eq!(list.recipients[1].fields["name"], "Jürgen Müller");
}

#[test]
fn file_level_problems_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "customers.csv: is empty: a header row with the column names is needed, e.g. `phone,name`"),
        (b"\xef\xbb\xbf\r\n\r\n", "customers.csv: is empty: a header row with the column names is needed, e.g. `phone,name`"),
        (b"phone,discount\r\n", "customers.csv: there are no rows below the header row (line 1)"),
        (b"phone,discount\n\n,\n", "customers.csv: there are no rows below the header row (line 1)"),
        (
            b"+4915112345678,20\n+4915112345679,10\n",
            "customers.csv, line 1 (the header row): \"+4915112345678\" looks like data, not a column name; the first row must name the columns, e.g. `phone,name`",
        ),
        (b"PK\x03\x04\x14\x00", "customers.csv: is an Excel workbook, not CSV; in Excel use File > Save As > \"CSV UTF-8 (Comma delimited)\""),
        (b"\xff\xfep\x00h\x00", "customers.csv: is UTF-16 text (Excel's \"Unicode Text\"); save it as \"CSV UTF-8 (Comma delimited)\" instead"),
        (
            b"phone,discount\n+4915112345678,\"1\n+4915112345679,2\n",
            "customers.csv: line 2, column 2: the quote opened here is never closed, so the rest of the file would be one value",
        ),
    ];
    for (text, message) in cases {
        let err = read(text, "campaign.sale").unwrap_err();
        assert_eq!(err.to_string(), *message);
    }
}

#[test]
fn a_bad_byte_late_in_the_file_fails_the_whole_validation() {
    let s = schemas();
    let t = trigger(&s, "campaign.sale");
    let mut file = b"phone,discount\n".to_vec();
    for i in 0..5000 {
        writeln!(file, "+49151{:08},1", i).unwrap();
    }
    file.extend_from_slice(b"+4915199999999,\xe9\n");
    let err =
        validate_recipients(&file[..], "c.csv", &t, &RecipientOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RecipientsError::File {
                problem: FileProblem::NotUtf8 {
                    line: 5002,
                    column: 2,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_row_limit_is_an_error_with_the_line() {
    let s = schemas();
    let options = RecipientOptions {
        max_rows: Some(2),
        ..RecipientOptions::default()
    };
    let err = validate_recipients(
        &b"phone,discount\n+4915112345678,1\n\n+4915112345679,1\n+4915112345670,1\n"[..],
        "c.csv",
        &trigger(&s, "campaign.sale"),
        &options,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.csv, line 5: more than 2 rows; split the list or raise the limit"
    );
}

#[test]
fn the_phone_field_must_be_clear() {
    let s = schemas();
    let opts = RecipientOptions::default();
    let err = read_recipients(
        &b"name\nAnna\n"[..],
        "c.csv",
        &trigger(&s, "campaign.no_phone"),
        &opts,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "trigger `campaign.no_phone`: has no Phone field, so a list cannot say whom to send to"
    );
    let two = trigger(&s, "campaign.two_phones");
    let err = read_recipients(&b"phone\n+4915112345678\n"[..], "c.csv", &two, &opts).unwrap_err();
    assert!(
        err.to_string()
            .contains("several Phone fields (`phone`, `backup`)"),
        "{err}"
    );
    let chosen = RecipientOptions {
        phone_field: Some("backup".into()),
        ..opts
    };
    let list = read_recipients(&b"backup\n+4915112345678\n"[..], "c.csv", &two, &chosen).unwrap();
    assert_eq!(list.recipients[0].phone, "+4915112345678");
}

/// `rows` recipients with distinct valid German mobile numbers.
fn big_file(rows: usize) -> Vec<u8> {
    let mut file = Vec::with_capacity(rows * 40);
    file.extend_from_slice(b"phone,name,discount\n");
    for i in 0..rows {
        writeln!(file, "+49151{:08},Customer {i},{}", i, i % 50).unwrap();
    }
    file
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_hundred_thousand_rows_stream() {
    let s = schemas();
    let file = big_file(100_000);
    let start = Instant::now();
    let report = validate_recipients(
        &file[..],
        "big.csv",
        &trigger(&s, "campaign.sale"),
        &RecipientOptions::default(),
    )
    .unwrap();
    eprintln!("100k rows validated in {:?}", start.elapsed());
    assert_eq!((report.rows, report.recipients), (100_000, 100_000));
}

/// `cargo test --release --test campaign_recipients -- --ignored --nocapture`
#[test]
#[ignore = "a million rows: slow in debug builds"]
fn a_million_rows_stream_in_bounded_memory() {
    let s = schemas();
    let t = trigger(&s, "campaign.sale");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.csv");
    std::fs::write(&path, big_file(1_000_000)).unwrap();
    let before = peak_rss_kb();
    let start = Instant::now();
    let mut reader = RecipientReader::open(&path, &t, &RecipientOptions::default()).unwrap();
    let mut recipients = 0u64;
    while let Some(row) = reader.next_row().unwrap() {
        if let Row::Recipient(_) = row {
            recipients += 1;
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "1M rows read in {elapsed:?}; peak RSS {:?} kB before, {:?} kB after",
        before,
        peak_rss_kb()
    );
    assert_eq!(recipients, 1_000_000);
    assert_eq!(reader.report().recipients, 1_000_000);
}
