//! Quiet hours: a daily window, in the customer's time zone, in which
//! marketing sends wait. They are deferred to the window's end, never dropped.
//!
//! A window is wall-clock time: `20:00-08:00` means from 20:00 to 08:00 on the
//! customer's clock, whatever the date and daylight saving time. It may wrap
//! midnight; the start is inside it and the end is not. On the night clocks go
//! forward, an end that does not exist (02:30 in Berlin on the last Sunday of
//! March) is read as the first moment after the gap (03:00); on the night they
//! go back, an end that occurs twice is the next of its two moments after now,
//! so the repeated hour is quiet on both passes if the window covers it.
//!
//! The customer's zone is, in this order: an IANA zone known for them (a
//! field of the campaign's row), the zone of their phone number's country
//! ([`zone_for_phone`]), or a configured default.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use flowc::campaign::quiet_hours::{zone_for_phone, QuietHours};
//!
//! let quiet: QuietHours = "20:00-08:00".parse().unwrap();
//! let berlin = zone_for_phone("+4915112345678").unwrap();
//! // 21:30 in Berlin (CET, UTC+1): wait until 08:00 the next morning.
//! let now = Utc.with_ymd_and_hms(2026, 1, 15, 20, 30, 0).unwrap();
//! assert_eq!(quiet.next_allowed(now, berlin), Utc.with_ymd_and_hms(2026, 1, 16, 7, 0, 0).unwrap());
//! // 12:00 in Berlin: now.
//! let noon = Utc.with_ymd_and_hms(2026, 1, 15, 11, 0, 0).unwrap();
//! assert_eq!(quiet.next_allowed(noon, berlin), noon);
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A daily quiet window, `start` inclusive, `end` exclusive, on the
/// customer's clock. `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuietHours {
    /// When sending stops.
    pub start: NaiveTime,
    /// When it may go on.
    pub end: NaiveTime,
}

/// Why text is not a quiet window.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuietHoursError {
    /// Not of the form `START-END`.
    #[error("quiet hours \"{text}\": expected START-END in 24-hour time, e.g. \"20:00-08:00\"")]
    Syntax {
        /// The text given.
        text: String,
    },
    /// A time that is not `HH:MM`.
    #[error(
        "quiet hours \"{text}\": \"{time}\" is not a time of day such as 08:00 (00:00 to 24:00)"
    )]
    BadTime {
        /// The text given.
        text: String,
        /// The bad part.
        time: String,
    },
    /// Start and end are the same, so the window is empty (or the whole day).
    #[error("quiet hours \"{text}\": start and end are the same; to never send, pause the campaign instead")]
    Empty {
        /// The text given.
        text: String,
    },
}

impl QuietHours {
    /// A window; `start` and `end` must differ.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, QuietHoursError> {
        if start == end {
            return Err(QuietHoursError::Empty {
                text: format!("{}-{}", start.format("%H:%M"), end.format("%H:%M")),
            });
        }
        Ok(QuietHours { start, end })
    }

    /// Whether the window wraps midnight (`20:00-08:00`).
    pub fn wraps_midnight(&self) -> bool {
        self.start > self.end
    }

    /// Whether a wall-clock time is inside the window.
    ///
    /// ```
    /// use chrono::NaiveTime;
    /// use flowc::campaign::quiet_hours::QuietHours;
    ///
    /// let quiet: QuietHours = "20:00-08:00".parse().unwrap();
    /// let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    /// assert!(quiet.contains(at(20, 0)) && quiet.contains(at(3, 0)));
    /// assert!(!quiet.contains(at(8, 0)) && !quiet.contains(at(19, 59)));
    /// ```
    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.wraps_midnight() {
            local >= self.start || local < self.end
        } else {
            local >= self.start && local < self.end
        }
    }

    /// The first moment at or after `now` outside the window on the clock of
    /// `zone`: `now` itself when it is outside, else the window's end.
    pub fn next_allowed(&self, now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let local = now.with_timezone(&zone);
        let time = local.time();
        if !self.contains(time) {
            return now;
        }
        let mut date = local.date_naive();
        if self.wraps_midnight() && time >= self.start {
            date = date.succ_opt().unwrap_or(date);
        }
        resolve(zone, date.and_time(self.end), now).max(now)
    }
}

/// The first moment after `now` at which the clock of `zone` shows `local`,
/// or the end of the gap when it never does (clocks going forward).
fn resolve(zone: Tz, local: NaiveDateTime, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut wanted = local;
    // A gap is at most a day (Samoa skipped 30 December 2011).
    for _ in 0..=24 * 60 {
        match zone.from_local_datetime(&wanted) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earlier, later) => {
                let earlier = earlier.with_timezone(&Utc);
                return if earlier > now {
                    earlier
                } else {
                    later.with_timezone(&Utc)
                };
            }
            LocalResult::None => {
                // Inside the gap: the first whole minute after it.
                let minute = wanted.with_second(0).unwrap_or(wanted);
                wanted = match minute.checked_add_signed(TimeDelta::minutes(1)) {
                    Some(next) => next,
                    None => return now,
                };
            }
        }
    }
    now
}

fn parse_time(part: &str, text: &str) -> Result<NaiveTime, QuietHoursError> {
    let bad = || QuietHoursError::BadTime {
        text: text.to_string(),
        time: part.to_string(),
    };
    let (h, m) = part.split_once(':').ok_or_else(bad)?;
    let valid = |s: &str| (1..=2).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    if !valid(h) || m.len() != 2 || !valid(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (h, m) == (24, 0) {
        return Ok(NaiveTime::MIN);
    }
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

impl FromStr for QuietHours {
    type Err = QuietHoursError;

    /// `START-END` in 24-hour time: `20:00-08:00`, `22:00 - 24:00`, `21:30–7:00`
    /// (an en dash works too; `24:00` is midnight).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (start, end) = trimmed
            .split_once('-')
            .or_else(|| trimmed.split_once('–'))
            .ok_or_else(|| QuietHoursError::Syntax {
                text: text.to_string(),
            })?;
        let start = parse_time(start.trim(), text)?;
        let end = parse_time(end.trim(), text)?;
        QuietHours::new(start, end).map_err(|_| QuietHoursError::Empty {
            text: text.to_string(),
        })
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a customer's zone came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSource {
    /// Given for the customer.
    Explicit,
    /// Their phone number's country (ISO 3166 code, e.g. `DE`).
    Country(String),
    /// Nothing better was known.
    Default,
}

/// A customer's zone and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerZone {
    /// The zone.
    pub zone: Tz,
    /// Where it came from.
    pub source: ZoneSource,
}

/// The customer's zone: `explicit` when it is an IANA name, else the zone of
/// the phone number's country, else `default`.
///
/// ```
/// use chrono_tz::Tz;
/// use flowc::campaign::quiet_hours::{customer_zone, ZoneSource};
///
/// let zone = customer_zone(None, "+5511987654321", Tz::Europe__Berlin);
/// assert_eq!(zone.zone, Tz::America__Sao_Paulo);
/// assert_eq!(zone.source, ZoneSource::Country("BR".into()));
/// assert_eq!(customer_zone(Some("Asia/Tokyo"), "+5511987654321", Tz::UTC).zone, Tz::Asia__Tokyo);
/// assert_eq!(customer_zone(None, "+800", Tz::UTC).source, ZoneSource::Default);
/// ```
pub fn customer_zone(explicit: Option<&str>, phone: &str, default: Tz) -> CustomerZone {
    if let Some(zone) = explicit.and_then(|z| z.trim().parse::<Tz>().ok()) {
        return CustomerZone {
            zone,
            source: ZoneSource::Explicit,
        };
    }
    if let Some(region) = phone_region(phone) {
        if let Some(zone) = zone_for_country(&region) {
            return CustomerZone {
                zone,
                source: ZoneSource::Country(region),
            };
        }
    }
    CustomerZone {
        zone: default,
        source: ZoneSource::Default,
    }
}

/// The zone of a phone number's country, `None` when the number has no
/// country (or is not a number).
pub fn zone_for_phone(phone: &str) -> Option<Tz> {
    phone_region(phone).and_then(|region| zone_for_country(&region))
}

/// The ISO 3166 region of a number, as the phonenumber crate's metadata says
/// (for `+1` numbers it tells the US, Canada and the Caribbean apart by area
/// code).
fn phone_region(phone: &str) -> Option<String> {
    let number = phonenumber::parse(None, phone).ok()?;
    let id = number.country().id()?;
    Some(id.as_ref().to_string())
}

/// The zone of a country by its ISO 3166 code (`DE`, `us`).
///
/// Most countries have one zone. For a country with several, the zone of
/// most of its people: the first zone tzdb's `zone.tab` lists for it, which
/// it orders "most populous first" where geography allows, except Australia
/// (Sydney), Brazil (São Paulo), Canada (Toronto), Palestine (Hebron),
/// Russia (Moscow), Ukraine (Kyiv) and Uzbekistan (Tashkent), where the first
/// listed is a small or outlying zone. The US is New York, Mexico Mexico
/// City, Indonesia Jakarta, Kazakhstan Almaty, Spain Madrid, Portugal Lisbon.
/// A per-area-code table for the US and Canada is not part of this: a zone
/// known for the customer should be given explicitly.
///
/// ```
/// use chrono_tz::Tz;
/// use flowc::campaign::quiet_hours::zone_for_country;
///
/// assert_eq!(zone_for_country("DE"), Some(Tz::Europe__Berlin));
/// assert_eq!(zone_for_country("us"), Some(Tz::America__New_York));
/// assert_eq!(zone_for_country("ZZ"), None);
/// ```
pub fn zone_for_country(code: &str) -> Option<Tz> {
    let code = code.to_ascii_uppercase();
    COUNTRY_ZONES
        .binary_search_by(|(c, _)| (*c).cmp(code.as_str()))
        .ok()
        .and_then(|i| COUNTRY_ZONES[i].1.parse().ok())
}

/// Country → zone, sorted by code. From tzdb's `zone.tab` (public domain):
/// the first zone of each country, with the exceptions named on
/// [`zone_for_country`], plus Ascension and Tristan da Cunha (St Helena's
/// zone) and Kosovo (Belgrade's), which phone numbers have and `zone.tab`
/// does not.
const COUNTRY_ZONES: &[(&str, &str)] = &[
    ("AC", "Atlantic/St_Helena"),
    ("AD", "Europe/Andorra"),
    ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"),
    ("AG", "America/Antigua"),
    ("AI", "America/Anguilla"),
    ("AL", "Europe/Tirane"),
    ("AM", "Asia/Yerevan"),
    ("AO", "Africa/Luanda"),
    ("AQ", "Antarctica/McMurdo"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AS", "Pacific/Pago_Pago"),
    ("AT", "Europe/Vienna"),
    ("AU", "Australia/Sydney"),
    ("AW", "America/Aruba"),
    ("AX", "Europe/Mariehamn"),
    ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BL", "America/St_Barthelemy"),
    ("BM", "Atlantic/Bermuda"),
    ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"),
    ("BQ", "America/Kralendijk"),
    ("BR", "America/Sao_Paulo"),
    ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"),
    ("BW", "Africa/Gaborone"),
    ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"),
    ("CA", "America/Toronto"),
    ("CC", "Indian/Cocos"),
    ("CD", "Africa/Kinshasa"),
    ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CK", "Pacific/Rarotonga"),
    ("CL", "America/Santiago"),
    ("CM", "Africa/Douala"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"),
    ("CU", "America/Havana"),
    ("CV", "Atlantic/Cape_Verde"),
    ("CW", "America/Curacao"),
    ("CX", "Indian/Christmas"),
    ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"),
    ("DM", "America/Dominica"),
    ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"),
    ("EC", "America/Guayaquil"),
    ("EE", "Europe/Tallinn"),
    ("EG", "Africa/Cairo"),
    ("EH", "Africa/El_Aaiun"),
    ("ER", "Africa/Asmara"),
    ("ES", "Europe/Madrid"),
    ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"),
    ("FJ", "Pacific/Fiji"),
    ("FK", "Atlantic/Stanley"),
    ("FM", "Pacific/Chuuk"),
    ("FO", "Atlantic/Faroe"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GD", "America/Grenada"),
    ("GE", "Asia/Tbilisi"),
    ("GF", "America/Cayenne"),
    ("GG", "Europe/Guernsey"),
    ("GH", "Africa/Accra"),
    ("GI", "Europe/Gibraltar"),
    ("GL", "America/Nuuk"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GP", "America/Guadeloupe"),
    ("GQ", "Africa/Malabo"),
    ("GR", "Europe/Athens"),
    ("GS", "Atlantic/South_Georgia"),
    ("GT", "America/Guatemala"),
    ("GU", "Pacific/Guam"),
    ("GW", "Africa/Bissau"),
    ("GY", "America/Guyana"),
    ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"),
    ("HR", "Europe/Zagreb"),
    ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"),
    ("ID", "Asia/Jakarta"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"),
    ("IN", "Asia/Kolkata"),
    ("IO", "Indian/Chagos"),
    ("IQ", "Asia/Baghdad"),
    ("IR", "Asia/Tehran"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JE", "Europe/Jersey"),
    ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"),
    ("KI", "Pacific/Tarawa"),
    ("KM", "Indian/Comoro"),
    ("KN", "America/St_Kitts"),
    ("KP", "Asia/Pyongyang"),
    ("KR", "Asia/Seoul"),
    ("KW", "Asia/Kuwait"),
    ("KY", "America/Cayman"),
    ("KZ", "Asia/Almaty"),
    ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"),
    ("LC", "America/St_Lucia"),
    ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"),
    ("LU", "Europe/Luxembourg"),
    ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"),
    ("ME", "Europe/Podgorica"),
    ("MF", "America/Marigot"),
    ("MG", "Indian/Antananarivo"),
    ("MH", "Pacific/Majuro"),
    ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"),
    ("MM", "Asia/Yangon"),
    ("MN", "Asia/Ulaanbaatar"),
    ("MO", "Asia/Macau"),
    ("MP", "Pacific/Saipan"),
    ("MQ", "America/Martinique"),
    ("MR", "Africa/Nouakchott"),
    ("MS", "America/Montserrat"),
    ("MT", "Europe/Malta"),
    ("MU", "Indian/Mauritius"),
    ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"),
    ("MX", "America/Mexico_City"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NC", "Pacific/Noumea"),
    ("NE", "Africa/Niamey"),
    ("NF", "Pacific/Norfolk"),
    ("NG", "Africa/Lagos"),
    ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NP", "Asia/Kathmandu"),
    ("NR", "Pacific/Nauru"),
    ("NU", "Pacific/Niue"),
    ("NZ", "Pacific/Auckland"),
    ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"),
    ("PE", "America/Lima"),
    ("PF", "Pacific/Tahiti"),
    ("PG", "Pacific/Port_Moresby"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PM", "America/Miquelon"),
    ("PN", "Pacific/Pitcairn"),
    ("PR", "America/Puerto_Rico"),
    ("PS", "Asia/Hebron"),
    ("PT", "Europe/Lisbon"),
    ("PW", "Pacific/Palau"),
    ("PY", "America/Asuncion"),
    ("QA", "Asia/Qatar"),
    ("RE", "Indian/Reunion"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RU", "Europe/Moscow"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SB", "Pacific/Guadalcanal"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SH", "Atlantic/St_Helena"),
    ("SI", "Europe/Ljubljana"),
    ("SJ", "Arctic/Longyearbyen"),
    ("SK", "Europe/Bratislava"),
    ("SL", "Africa/Freetown"),
    ("SM", "Europe/San_Marino"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"),
    ("SS", "Africa/Juba"),
    ("ST", "Africa/Sao_Tome"),
    ("SV", "America/El_Salvador"),
    ("SX", "America/Lower_Princes"),
    ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"),
    ("TA", "Atlantic/St_Helena"),
    ("TC", "America/Grand_Turk"),
    ("TD", "Africa/Ndjamena"),
    ("TF", "Indian/Kerguelen"),
    ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"),
    ("TJ", "Asia/Dushanbe"),
    ("TK", "Pacific/Fakaofo"),
    ("TL", "Asia/Dili"),
    ("TM", "Asia/Ashgabat"),
    ("TN", "Africa/Tunis"),
    ("TO", "Pacific/Tongatapu"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TV", "Pacific/Funafuti"),
    ("TW", "Asia/Taipei"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UA", "Europe/Kyiv"),
    ("UG", "Africa/Kampala"),
    ("UM", "Pacific/Midway"),
    ("US", "America/New_York"),
    ("UY", "America/Montevideo"),
    ("UZ", "Asia/Tashkent"),
    ("VA", "Europe/Vatican"),
    ("VC", "America/St_Vincent"),
    ("VE", "America/Caracas"),
    ("VG", "America/Tortola"),
    ("VI", "America/St_Thomas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("VU", "Pacific/Efate"),
    ("WF", "Pacific/Wallis"),
    ("WS", "Pacific/Apia"),
    ("XK", "Europe/Belgrade"),
    ("YE", "Asia/Aden"),
    ("YT", "Indian/Mayotte"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn every_table_zone_exists_and_the_table_is_sorted() {
        for (code, zone) in COUNTRY_ZONES {
            assert!(zone.parse::<Tz>().is_ok(), "{code}: {zone}");
        }
        assert!(COUNTRY_ZONES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(zone_for_country("RU"), Some(Tz::Europe__Moscow));
        assert_eq!(zone_for_country("AU"), Some(Tz::Australia__Sydney));
    }

    #[test]
    fn parsing() {
        let q: QuietHours = " 20:00 - 8:00 ".parse().unwrap();
        assert_eq!(q.to_string(), "20:00-08:00");
        assert!(q.wraps_midnight());
        assert_eq!(
            "22:00–24:00".parse::<QuietHours>().unwrap().end,
            NaiveTime::MIN
        );
        assert_eq!(
            "20:00".parse::<QuietHours>().unwrap_err().to_string(),
            "quiet hours \"20:00\": expected START-END in 24-hour time, e.g. \"20:00-08:00\""
        );
        assert_eq!(
            "20:00-25:00".parse::<QuietHours>().unwrap_err(),
            QuietHoursError::BadTime {
                text: "20:00-25:00".into(),
                time: "25:00".into()
            }
        );
        assert!(matches!(
            "8pm-8am".parse::<QuietHours>(),
            Err(QuietHoursError::BadTime { .. })
        ));
        assert!(matches!(
            "08:00-08:00".parse::<QuietHours>(),
            Err(QuietHoursError::Empty { .. })
        ));
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, "\"20:00-08:00\"");
        assert_eq!(serde_json::from_str::<QuietHours>(&json).unwrap(), q);
    }

    #[test]
    fn a_window_within_a_day() {
        let q: QuietHours = "12:00-14:00".parse().unwrap();
        let z = Tz::UTC;
        assert_eq!(
            q.next_allowed(utc(2026, 5, 1, 11, 59), z),
            utc(2026, 5, 1, 11, 59)
        );
        assert_eq!(
            q.next_allowed(utc(2026, 5, 1, 12, 0), z),
            utc(2026, 5, 1, 14, 0)
        );
        assert_eq!(
            q.next_allowed(utc(2026, 5, 1, 14, 0), z),
            utc(2026, 5, 1, 14, 0)
        );
    }

    #[test]
    fn wrapping_before_and_after_midnight() {
        let q: QuietHours = "20:00-08:00".parse().unwrap();
        let z = Tz::Asia__Tokyo; // UTC+9, no DST
                                 // 23:00 Tokyo → 08:00 the next day.
        assert_eq!(
            q.next_allowed(utc(2026, 5, 1, 14, 0), z),
            utc(2026, 5, 1, 23, 0)
        );
        // 02:00 Tokyo → 08:00 the same day.
        assert_eq!(
            q.next_allowed(utc(2026, 5, 1, 17, 0), z),
            utc(2026, 5, 1, 23, 0)
        );
        // Across a month's end.
        assert_eq!(
            q.next_allowed(utc(2026, 5, 31, 12, 0), z),
            utc(2026, 5, 31, 23, 0)
        );
        assert_eq!(
            q.next_allowed(utc(2026, 5, 31, 23, 0), z)
                .with_timezone(&z)
                .hour(),
            8
        );
    }
}
