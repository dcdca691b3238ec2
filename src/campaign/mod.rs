//! Building blocks of campaigns: mass sends of a flow to a list of customers.
//!
//! A campaign starts a flow once per row of a recipient list, paced by the
//! engine's limits and the sender's messaging tier, skipping customers who
//! opted out, waiting out quiet hours, and pausing when WhatsApp rates the
//! sender's quality down. This module holds the pure parts, free of the
//! store, the engine and the command line, each testable alone:
//!
//! | module | answers |
//! | --- | --- |
//! | [`recipients`] | which rows of a CSV file become which events, and which are skipped (with line numbers) |
//! | [`opt_out`] | whether an inbound message is a stop or start word; the opt-out list as CSV |
//! | [`quiet_hours`] | the customer's time zone, and when a marketing send may go out |
//! | [`tier`] | when the sender may open its next business-initiated conversation |
//! | [`quality`] | whether a quality rating or `phone_number_quality_update` pauses the sender's campaigns |
//! | [`settings`] | `[campaigns]`, `[opt_out]` and `[limits]` of flow.toml |
//! | [`runner`] | what starting and driving a campaign takes and answers (the runner is `crate::runtime::Engine::start_campaign`, `run_campaign`, ...) |
//!
//! # How the runner uses them
//!
//! 1. **Start.** [`recipients::validate_recipients`] reads the whole file in
//!    one streaming pass: a [`recipients::RecipientsError`] (encoding, header,
//!    missing columns, no rows, an unclosed quote anywhere) refuses the
//!    campaign before anything is recorded. Then a second pass with
//!    [`recipients::RecipientReader`] records each row (recipient, skipped or
//!    duplicate, with its line) in one store transaction, so a restart finds
//!    every recipient exactly once. `--dry-run` prints the
//!    [`recipients::Report`] and each [`recipients::Recipient::to_event`].
//!    `--test-recipient` sends the first recipient's fields with the phone
//!    field replaced.
//! 2. **Each send.** Before a marketing template goes to a recipient: skip
//!    and count if the number is in the opt-out list; defer to
//!    [`quiet_hours::QuietHours::next_allowed`] in
//!    [`quiet_hours::customer_zone`]; wait for
//!    [`tier::TierWindow::next_slot`] unless
//!    [`tier::TierWindow::is_counted`] says the customer's conversation is
//!    already open, then [`tier::TierWindow::record_for`].
//! 3. **Inbound messages.** [`opt_out::OptOutWords::classify`] on each text
//!    records an opt-out or opt-in.
//! 4. **Quality.** Each `phone_number_quality_update` value goes through
//!    [`quality::QualityUpdate::from_value`] and
//!    [`quality::QualityGuard::on_update`], each periodic rating read
//!    through [`quality::QualityGuard::on_rating`]; a
//!    [`quality::QualityDecision::Pause`] pauses the sender's campaigns with
//!    its reason for `campaign status` and `notify`. A person resumes.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use flowc::campaign::{customer_zone, OptChange, OptOutWords, QuietHours, TierLimit, TierWindow};
//!
//! let words = OptOutWords::defaults();
//! assert_eq!(words.classify("STOPP"), Some(OptChange::OptOut));
//!
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 19, 0, 0).unwrap(); // 21:00 in Berlin
//! let zone = customer_zone(None, "+4915112345678", chrono_tz::UTC).zone;
//! let quiet: QuietHours = "20:00-08:00".parse().unwrap();
//! let tier = TierWindow::new(TierLimit::DEFAULT);
//! let at = quiet.next_allowed(now, zone).max(tier.next_slot(now));
//! assert_eq!(at, Utc.with_ymd_and_hms(2026, 6, 2, 6, 0, 0).unwrap()); // 08:00 CEST
//! ```

mod csv_input;
pub mod opt_out;
pub mod quality;
pub mod quiet_hours;
pub mod recipients;
pub mod runner;
pub mod settings;
pub mod tier;

pub use csv_input::{Encoding, FileProblem, MAX_RECORD_BYTES};
pub use opt_out::{
    read_opt_outs, write_opt_outs, OptChange, OptOutConfig, OptOutConfigError, OptOutImport,
    OptOutListError, OptOutRecord, OptOutWords,
};
pub use quality::{QualityDecision, QualityEvent, QualityGuard, QualityRating, QualityUpdate};
pub use quiet_hours::{
    customer_zone, zone_for_country, zone_for_phone, CustomerZone, QuietHours, QuietHoursError,
    ZoneSource,
};
pub use recipients::{
    read_recipients, validate_recipients, Recipient, RecipientList, RecipientOptions,
    RecipientReader, RecipientsError, Report,
};
pub use tier::{TierLimit, TierWindow};
