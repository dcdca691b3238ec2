//! The rules campaigns send by: opt-out words and lists, quiet hours across
//! daylight saving time and midnight, the messaging tier's rolling window,
//! and the quality guard.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use flowc::campaign::opt_out::{read_opt_outs, write_opt_outs, OptOutListError};
use flowc::campaign::recipients::SkipReason;
use flowc::campaign::{
    customer_zone, Encoding, OptChange, OptOutConfig, OptOutRecord, OptOutWords, QualityDecision,
    QualityGuard, QualityRating, QualityUpdate, QuietHours, TierLimit, TierWindow, ZoneSource,
};
use serde_json::json;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

// ---------------------------------------------------------------------------
// Opt-out words
// ---------------------------------------------------------------------------

#[test]
fn stop_words_in_many_languages() {
    let words = OptOutWords::defaults();
    for message in [
        "STOP",
        "stop",
        " Stop. ",
        "STOP!!!",
        "Stop please",
        "please stop",
        "Hi, STOP thanks",
        "UNSUBSCRIBE",
        "Opt-Out",
        "opt out",
        "STOPALL",
        "cancel",
        "END",
        "quit", // en
        "STOPP",
        "Abmelden",
        "bitte abmelden!",
        "ABBESTELLEN",
        "Stopp bitte", // de
        "ARRÊT",
        "arret",
        "Désabonner",
        "STOP svp",
        "désinscription merci", // fr
        "BAJA",
        "Darme de baja",
        "parar por favor", // es
        "Basta",
        "disiscrivimi",
        "cancellami grazie", // it
        "afmelden",
        "Uitschrijven",
        "stoppen aub", // nl
        "PARAR",
        "sair",
        "descadastrar obrigado", // pt
        "wypisz",
        "Rezygnuję",
        "anuluj proszę", // pl
        "İPTAL",
        "iptal",
        "DUR",
        "abonelikten çık", // tr
        "🛑 STOP 🛑",
        "ＳＴＯＰ",
    ] {
        assert_eq!(
            words.classify(message),
            Some(OptChange::OptOut),
            "{message:?}"
        );
    }
}

#[test]
fn start_words_opt_in_again() {
    let words = OptOutWords::defaults();
    for message in [
        "START",
        "start please",
        "Unstop",
        "subscribe",
        "Anmelden",
        "ALTA",
        "aanmelden",
    ] {
        assert_eq!(
            words.classify(message),
            Some(OptChange::OptIn),
            "{message:?}"
        );
    }
}

#[test]
fn stop_words_inside_sentences_are_not_opt_outs() {
    let words = OptOutWords::defaults();
    for message in [
        "please stop the installation next week",
        "Can you stop by tomorrow?",
        "stop sending me the wrong invoice, send the right one",
        "Bitte nicht abmelden",
        "start time?",
        "I want to cancel my appointment",
        "",
        "please",
        "thanks!",
        "stopper",
        "abmeldenx",
        &"stop ".repeat(30),
    ] {
        assert_eq!(words.classify(message), None, "{message:?}");
    }
}

#[test]
fn words_are_configurable() {
    let config: OptOutConfig = toml::from_str(
        r#"
        languages = ["de"]
        stop_words = ["Keine Werbung"]
        start_words = ["wieder anmelden"]
        not_stop_words = ["stop"]
        courtesy_words = ["bitteschön"]
        "#,
    )
    .unwrap();
    let words = OptOutWords::from_config(&config).unwrap();
    assert_eq!(
        words.classify("keine werbung, bitteschön"),
        Some(OptChange::OptOut)
    );
    assert_eq!(words.classify("Wieder anmelden"), Some(OptChange::OptIn));
    assert_eq!(words.classify("stop"), None, "removed");
    assert_eq!(words.classify("STOPP"), Some(OptChange::OptOut));
    assert_eq!(words.classify("unsubscribe"), None, "English is not on");
    assert!(toml::from_str::<OptOutConfig>("stop_word = [\"x\"]").is_err());
}

// ---------------------------------------------------------------------------
// The opt-out list as CSV
// ---------------------------------------------------------------------------

#[test]
fn opt_out_lists_round_trip() {
    let records = vec![
        OptOutRecord {
            phone: "+4915112345678".into(),
            opted_out_at: Some(utc(2026, 3, 1, 9, 30)),
            source: "message".into(),
        },
        OptOutRecord {
            phone: "+436641234567".into(),
            opted_out_at: None,
            source: "import, from \"CRM\"".into(),
        },
    ];
    let mut csv = Vec::new();
    write_opt_outs(&mut csv, &records).unwrap();
    assert_eq!(
        String::from_utf8(csv.clone()).unwrap(),
        "phone,opted_out_at,source\n+4915112345678,2026-03-01T09:30:00Z,message\n+436641234567,,\"import, from \"\"CRM\"\"\"\n"
    );
    let back = read_opt_outs(&csv[..], "opt-outs.csv", Encoding::Utf8).unwrap();
    assert_eq!(back.records, records);
    assert!(back.skipped.is_empty() && back.duplicates.is_empty());
    // An empty list is a header alone, and reads back empty.
    let mut empty = Vec::new();
    write_opt_outs(&mut empty, &[]).unwrap();
    assert!(read_opt_outs(&empty[..], "e.csv", Encoding::Utf8)
        .unwrap()
        .records
        .is_empty());
}

#[test]
fn opt_out_imports_report_bad_rows_with_lines() {
    let file = "Name;Phone;Opted Out At\r\n\
                Anna;+4915112345678;2026-03-01\r\n\
                Bob;0151 1234567;\r\n\
                Carl;+4915112345679;gestern\r\n\
                Anna;+4915112345678;2026-04-01T00:00:00Z\r\n";
    let import = read_opt_outs(file.as_bytes(), "crm.csv", Encoding::Utf8).unwrap();
    assert_eq!(import.records.len(), 1);
    assert_eq!(import.records[0].source, "import");
    assert_eq!(import.records[0].opted_out_at, Some(utc(2026, 3, 1, 0, 0)));
    assert_eq!(import.ignored_columns, ["Name"]);
    assert_eq!(
        import.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(import.skipped[0].reason.is_bad_phone());
    assert!(
        matches!(&import.skipped[1].reason, SkipReason::BadValues { cells } if cells[0].column == 3)
    );
    assert_eq!(
        (import.duplicates[0].line, import.duplicates[0].first_line),
        (5, 2)
    );
    assert_eq!(
        import.to_string(),
        "1 number, 2 skipped, 1 duplicate; ignored columns: Name\n  \
         line 3: column 2 `Phone`: \"0151 1234567\" is not an E.164 phone number: no leading + and country code; spaces are not allowed\n  \
         line 4: column 3 `Opted Out At`: \"gestern\" is not an RFC 3339 time such as 2026-03-01T09:30:00Z or a date such as 2026-03-01\n  \
         line 5: +4915112345678 is already on line 2"
    );
}

#[test]
fn opt_out_import_file_errors() {
    let err = read_opt_outs(
        &b"number,when\n+4915112345678,x\n"[..],
        "o.csv",
        Encoding::Utf8,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "o.csv, line 1 (the header row): missing column for `phone` (Phone)"
    );
    let err = read_opt_outs(&b"phone,opted_out\n"[..], "o.csv", Encoding::Utf8).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `opted_out_at`?"),
        "{err}"
    );
    let err = read_opt_outs(
        &b"phone\n+4915112345678\nM\xfcller\n"[..],
        "o.csv",
        Encoding::Utf8,
    )
    .unwrap_err();
    assert!(matches!(err, OptOutListError::File { .. }));
    assert!(
        err.to_string()
            .starts_with("o.csv: line 3, column 1: not UTF-8 text"),
        "{err}"
    );
    let err = read_opt_outs(&b""[..], "o.csv", Encoding::Utf8).unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");
}

// ---------------------------------------------------------------------------
// Quiet hours
// ---------------------------------------------------------------------------

const BERLIN: Tz = Tz::Europe__Berlin;

#[test]
fn quiet_hours_over_the_spring_change_in_berlin() {
    // 29 March 2026: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
    let overnight: QuietHours = "20:00-08:00".parse().unwrap();
    // 21:00 CET on Saturday → 08:00 CEST on Sunday = 06:00 UTC (not 07:00).
    assert_eq!(
        overnight.next_allowed(utc(2026, 3, 28, 20, 0), BERLIN),
        utc(2026, 3, 29, 6, 0)
    );
    // 01:30 CET inside the window, before the change: the same end.
    assert_eq!(
        overnight.next_allowed(utc(2026, 3, 29, 0, 30), BERLIN),
        utc(2026, 3, 29, 6, 0)
    );
    // An end inside the gap (02:30 does not exist) is the moment after it.
    let into_gap: QuietHours = "01:00-02:30".parse().unwrap();
    assert_eq!(
        into_gap.next_allowed(utc(2026, 3, 29, 0, 30), BERLIN),
        utc(2026, 3, 29, 1, 0)
    );
    assert_eq!(
        into_gap.next_allowed(utc(2026, 3, 29, 1, 0), BERLIN),
        utc(2026, 3, 29, 1, 0)
    );
}

#[test]
fn quiet_hours_over_the_autumn_change_in_berlin() {
    // 25 October 2026: clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC).
    let overnight: QuietHours = "20:00-08:00".parse().unwrap();
    // 20:00 CEST on Saturday → 08:00 CET on Sunday = 07:00 UTC (not 06:00).
    assert_eq!(
        overnight.next_allowed(utc(2026, 10, 24, 18, 0), BERLIN),
        utc(2026, 10, 25, 7, 0)
    );
    // An end that occurs twice: the next one after now.
    let late: QuietHours = "22:00-02:30".parse().unwrap();
    // 02:15 CEST (first pass) → 02:30 CEST = 00:30 UTC.
    assert_eq!(
        late.next_allowed(utc(2026, 10, 25, 0, 15), BERLIN),
        utc(2026, 10, 25, 0, 30)
    );
    // 02:15 CET (second pass, quiet again on the clock) → 02:30 CET = 01:30 UTC.
    assert_eq!(
        late.next_allowed(utc(2026, 10, 25, 1, 15), BERLIN),
        utc(2026, 10, 25, 1, 30)
    );
    // In between, 02:40 CEST, it is not quiet.
    assert_eq!(
        late.next_allowed(utc(2026, 10, 25, 0, 40), BERLIN),
        utc(2026, 10, 25, 0, 40)
    );
}

#[test]
fn quiet_hours_wrap_midnight_and_year_ends() {
    let q: QuietHours = "21:30-07:15".parse().unwrap();
    let now = utc(2026, 12, 31, 22, 0); // 23:00 in Berlin on New Year's Eve
    assert_eq!(q.next_allowed(now, BERLIN), utc(2027, 1, 1, 6, 15));
    assert!(q.contains(NaiveTime::from_hms_opt(21, 30, 0).unwrap()));
    assert!(!q.contains(NaiveTime::from_hms_opt(7, 15, 0).unwrap()));
    // Far east and far west of UTC.
    let auckland = Tz::Pacific__Auckland;
    let la = Tz::America__Los_Angeles;
    let noon_utc = utc(2026, 7, 1, 12, 0); // 00:00 NZST, 05:00 PDT
    assert_eq!(q.next_allowed(noon_utc, auckland), utc(2026, 7, 1, 19, 15));
    assert_eq!(q.next_allowed(noon_utc, la), utc(2026, 7, 1, 14, 15));
}

#[test]
fn customer_zones() {
    let default = Tz::Europe__Berlin;
    let by_country = |phone: &str| customer_zone(None, phone, default);
    assert_eq!(by_country("+4915112345678").zone, Tz::Europe__Berlin);
    assert_eq!(by_country("+436641234567").zone, Tz::Europe__Vienna);
    assert_eq!(by_country("+14155552671").zone, Tz::America__New_York);
    assert_eq!(
        by_country("+14165550123").source,
        ZoneSource::Country("CA".into())
    );
    assert_eq!(by_country("+61412345678").zone, Tz::Australia__Sydney);
    assert_eq!(by_country("+79123456789").zone, Tz::Europe__Moscow);
    assert_eq!(by_country("+819012345678").zone, Tz::Asia__Tokyo);
    assert_eq!(by_country("not a phone").source, ZoneSource::Default);
    let explicit = customer_zone(Some("America/Los_Angeles"), "+14155552671", default);
    assert_eq!(
        (explicit.zone, explicit.source),
        (Tz::America__Los_Angeles, ZoneSource::Explicit)
    );
    // A bad explicit zone falls back to the country.
    assert_eq!(
        customer_zone(Some("Mars/Base"), "+4915112345678", Tz::UTC).zone,
        Tz::Europe__Berlin
    );
}

// ---------------------------------------------------------------------------
// The messaging tier
// ---------------------------------------------------------------------------

#[test]
fn a_250_tier_campaign_paces_over_days() {
    let start = utc(2026, 3, 2, 9, 0);
    let mut window = TierWindow::new("250".parse().unwrap());
    let mut now = start;
    let mut sent_at = Vec::new();
    for i in 0..600 {
        now = now.max(window.next_slot(now));
        assert!(window.record_for(&format!("+49151{i:08}"), now));
        sent_at.push(now);
        now += Duration::seconds(1);
    }
    // 250 go out at once, the next 250 a day later, the rest two days later.
    assert!(sent_at[249] < start + Duration::minutes(5));
    assert_eq!(sent_at[250], start + Duration::hours(24));
    assert_eq!(sent_at[500], sent_at[250] + Duration::hours(24));
    // Never more than 250 in any 24 hours.
    for (i, t) in sent_at.iter().enumerate().skip(250) {
        assert!(*t >= sent_at[i - 250] + Duration::hours(24));
    }
}

#[test]
fn a_restart_rebuilds_the_window_from_the_store() {
    let now = utc(2026, 3, 2, 12, 0);
    let times = (0..1000).map(|i| now - Duration::hours(30) + Duration::minutes(i * 2));
    let window = TierWindow::from_times(TierLimit::Limited(1000), times);
    // Conversations 24 h old or older no longer count: the first 181.
    assert_eq!(window.count(now), 1000 - 181);
    assert_eq!(window.next_slot(now), now);
    let full = TierWindow::from_times(
        TierLimit::Limited(800),
        (0..1000).map(|i| now - Duration::hours(30) + Duration::minutes(i * 2)),
    );
    // 819 counted, 800 allowed: the 20 oldest of them must leave first.
    assert_eq!(
        full.next_slot(now),
        now - Duration::hours(30) + Duration::minutes(200 * 2) + Duration::hours(24)
    );
}

// ---------------------------------------------------------------------------
// The quality guard
// ---------------------------------------------------------------------------

/// A whole webhook as WhatsApp sends it; the guard reads `value`.
fn webhook(value: serde_json::Value) -> serde_json::Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "time": 1764000000, "changes": [{
            "field": "phone_number_quality_update",
            "value": value
        }]}]
    })
}

#[test]
fn quality_webhooks_pause_on_flags_and_downgrades() {
    let guard = QualityGuard::default();
    let decide = |value: serde_json::Value| {
        let body = webhook(value);
        let value = &body["entry"][0]["changes"][0]["value"];
        guard.on_update(&QualityUpdate::from_value(value).unwrap())
    };
    assert!(matches!(
        decide(
            json!({"display_phone_number": "4930901820", "event": "FLAGGED", "current_limit": "TIER_1K"})
        ),
        QualityDecision::Pause { .. }
    ));
    assert!(matches!(
        decide(
            json!({"display_phone_number": "4930901820", "event": "DOWNGRADE", "old_limit": "TIER_1K", "current_limit": "TIER_250"})
        ),
        QualityDecision::Pause { .. }
    ));
    assert_eq!(
        decide(
            json!({"display_phone_number": "4930901820", "event": "UNFLAGGED", "current_limit": "TIER_1K"})
        ),
        QualityDecision::Continue
    );
    assert_eq!(
        decide(
            json!({"display_phone_number": "4930901820", "event": "UPGRADE", "old_limit": "TIER_1K", "current_limit": "TIER_10K", "max_daily_conversations_per_business": "TIER_10K"})
        ),
        QualityDecision::Continue
    );
    let relaxed = QualityGuard {
        pause_on_flagged: false,
        ..QualityGuard::default()
    };
    let flagged =
        QualityUpdate::from_value(&json!({"display_phone_number": "1", "event": "FLAGGED"}))
            .unwrap();
    assert_eq!(relaxed.on_update(&flagged), QualityDecision::Continue);
}

#[test]
fn periodic_rating_reads_pause_on_drops_only() {
    let guard = QualityGuard::default();
    let reads = [
        QualityRating::Green,
        QualityRating::Green,
        QualityRating::Yellow,
        QualityRating::Yellow,
        QualityRating::Red,
        QualityRating::Green,
    ];
    let mut last = None;
    let mut pauses = Vec::new();
    for (i, rating) in reads.into_iter().enumerate() {
        if let QualityDecision::Pause { reason } = guard.on_rating(last, rating) {
            pauses.push((i, reason));
        }
        last = Some(rating);
    }
    assert_eq!(
        pauses,
        [
            (
                2,
                "the quality rating dropped from GREEN to YELLOW (campaigns pause below GREEN)"
                    .to_string()
            ),
            (
                4,
                "the quality rating dropped from YELLOW to RED (campaigns pause below GREEN)"
                    .to_string()
            ),
        ]
    );
}
