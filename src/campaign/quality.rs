//! The quality guard: when WhatsApp rates a sender's messages worse, its
//! campaigns pause until a person resumes them.
//!
//! Two sources tell about quality:
//!
//! - the sender's `quality_rating` (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`), read
//!   with `GET /{phone-number-id}?fields=quality_rating`; compare each read
//!   with the one before through [`QualityGuard::on_rating`];
//! - the `phone_number_quality_update` webhook (a change of the WhatsApp
//!   Business Account, `field: "phone_number_quality_update"`), whose `value`
//!   [`QualityUpdate::from_value`] reads: an `event` (`FLAGGED`,
//!   `UNFLAGGED`, `DOWNGRADE`, `UPGRADE`, `ONBOARDING`, `THROUGHPUT_UPGRADE`)
//!   with the messaging limits; judge it with [`QualityGuard::on_update`].
//!
//! `FLAGGED` means the quality has fallen low and the limit will drop if it
//! does not recover within 7 days; `DOWNGRADE` means it dropped. Both pause
//! by default, as does a rating below `GREEN`. Resuming is a person's
//! decision: the guard never answers "resume".
//!
//! ```
//! use flowc::campaign::quality::{QualityDecision, QualityGuard, QualityRating, QualityUpdate};
//!
//! let guard = QualityGuard::default();
//! let decision = guard.on_rating(Some(QualityRating::Green), QualityRating::Yellow);
//! assert!(matches!(decision, QualityDecision::Pause { .. }));
//! assert_eq!(guard.on_rating(Some(QualityRating::Yellow), QualityRating::Green), QualityDecision::Continue);
//!
//! let value = serde_json::json!({
//!     "display_phone_number": "15550783881",
//!     "event": "FLAGGED",
//!     "current_limit": "TIER_10K"
//! });
//! let update = QualityUpdate::from_value(&value).unwrap();
//! let QualityDecision::Pause { reason } = guard.on_update(&update) else { panic!() };
//! assert_eq!(reason, "WhatsApp flagged the number 15550783881: its message quality is low, \
//!     and its messaging limit (10K) drops if it does not recover within 7 days");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::tier::TierLimit;

/// A sender's quality rating, as WhatsApp reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityRating {
    /// High quality.
    Green,
    /// Medium quality.
    Yellow,
    /// Low quality.
    Red,
    /// Not rated yet (`UNKNOWN`, `NA`) or a value this version does not know.
    Unknown,
}

impl QualityRating {
    /// `GREEN` → 2, `YELLOW` → 1, `RED` → 0; `None` for unknown.
    fn rank(self) -> Option<u8> {
        match self {
            QualityRating::Green => Some(2),
            QualityRating::Yellow => Some(1),
            QualityRating::Red => Some(0),
            QualityRating::Unknown => None,
        }
    }

    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            QualityRating::Green => "GREEN",
            QualityRating::Yellow => "YELLOW",
            QualityRating::Red => "RED",
            QualityRating::Unknown => "UNKNOWN",
        }
    }

    /// Reads what the API writes; anything but green, yellow and red (any
    /// case) is [`QualityRating::Unknown`].
    pub fn from_api(text: &str) -> QualityRating {
        text.parse().unwrap_or(QualityRating::Unknown)
    }
}

impl FromStr for QualityRating {
    type Err = String;

    /// `green`, `yellow`, `red`, `unknown`, in any case; also `HIGH`,
    /// `MEDIUM`, `LOW` as WhatsApp Manager words them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "GREEN" | "HIGH" => Ok(QualityRating::Green),
            "YELLOW" | "MEDIUM" => Ok(QualityRating::Yellow),
            "RED" | "LOW" => Ok(QualityRating::Red),
            "UNKNOWN" | "NA" => Ok(QualityRating::Unknown),
            _ => Err(format!(
                "\"{text}\" is not a quality rating; use green, yellow or red"
            )),
        }
    }
}

impl fmt::Display for QualityRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for QualityRating {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str().to_ascii_lowercase())
    }
}

impl<'de> Deserialize<'de> for QualityRating {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `event` of a `phone_number_quality_update` webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QualityEvent {
    /// The quality is low; the messaging limit drops if it does not recover.
    Flagged,
    /// The quality recovered.
    Unflagged,
    /// The messaging limit dropped.
    Downgrade,
    /// The messaging limit rose.
    Upgrade,
    /// The number is still being registered.
    Onboarding,
    /// The throughput rose.
    ThroughputUpgrade,
    /// A value this version does not know, as written.
    Other(String),
}

impl QualityEvent {
    /// Reads the webhook's text.
    pub fn from_api(text: &str) -> QualityEvent {
        match text {
            "FLAGGED" => QualityEvent::Flagged,
            "UNFLAGGED" => QualityEvent::Unflagged,
            "DOWNGRADE" => QualityEvent::Downgrade,
            "UPGRADE" => QualityEvent::Upgrade,
            "ONBOARDING" => QualityEvent::Onboarding,
            "THROUGHPUT_UPGRADE" => QualityEvent::ThroughputUpgrade,
            other => QualityEvent::Other(other.to_string()),
        }
    }

    /// The webhook's text.
    pub fn as_str(&self) -> &str {
        match self {
            QualityEvent::Flagged => "FLAGGED",
            QualityEvent::Unflagged => "UNFLAGGED",
            QualityEvent::Downgrade => "DOWNGRADE",
            QualityEvent::Upgrade => "UPGRADE",
            QualityEvent::Onboarding => "ONBOARDING",
            QualityEvent::ThroughputUpgrade => "THROUGHPUT_UPGRADE",
            QualityEvent::Other(text) => text,
        }
    }
}

/// The `value` of a `phone_number_quality_update` change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityUpdate {
    /// The sender's number as WhatsApp shows it, digits without `+`
    /// (`15550783881`).
    pub display_phone_number: String,
    /// What happened.
    pub event: QualityEvent,
    /// The number's messaging limit before (only on limit changes).
    pub old_limit: Option<TierLimit>,
    /// The number's messaging limit now (`current_limit`, which WhatsApp
    /// replaces by `max_daily_conversations_per_business`).
    pub current_limit: Option<TierLimit>,
    /// The business portfolio's limit, shared by its numbers.
    pub max_daily_conversations_per_business: Option<TierLimit>,
    /// A quality rating, when the payload carries one (some providers add
    /// `quality_rating`).
    pub quality_rating: Option<QualityRating>,
}

/// Why a webhook's value is no quality update.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QualityUpdateError {
    /// Not a JSON object.
    #[error("a phone_number_quality_update value must be a JSON object")]
    NotAnObject,
    /// A required key is missing or not text.
    #[error("a phone_number_quality_update value has no text `{0}`")]
    Missing(&'static str),
}

impl QualityUpdate {
    /// Reads the `value` object of a `phone_number_quality_update` change.
    /// `display_phone_number` and `event` are required; limits that are
    /// missing, empty, `TIER_NOT_SET` or unknown are `None`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, QualityUpdateError> {
        let object = value.as_object().ok_or(QualityUpdateError::NotAnObject)?;
        let text = |key: &str| object.get(key).and_then(|v| v.as_str());
        let limit = |key: &str| text(key).and_then(TierLimit::from_api);
        Ok(QualityUpdate {
            display_phone_number: text("display_phone_number")
                .ok_or(QualityUpdateError::Missing("display_phone_number"))?
                .to_string(),
            event: QualityEvent::from_api(
                text("event").ok_or(QualityUpdateError::Missing("event"))?,
            ),
            old_limit: limit("old_limit"),
            current_limit: limit("current_limit"),
            max_daily_conversations_per_business: limit("max_daily_conversations_per_business"),
            quality_rating: text("quality_rating").map(QualityRating::from_api),
        })
    }

    /// The number's limit now: `current_limit`, else the business's.
    pub fn limit(&self) -> Option<TierLimit> {
        self.current_limit
            .or(self.max_daily_conversations_per_business)
    }
}

/// When campaigns pause. The defaults: below GREEN, when flagged, when the
/// limit is lowered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityGuard {
    /// Pause when the rating falls below this; never on ratings when `None`.
    pub pause_below: Option<QualityRating>,
    /// Pause on `FLAGGED`.
    pub pause_on_flagged: bool,
    /// Pause on `DOWNGRADE`.
    pub pause_on_downgrade: bool,
}

impl Default for QualityGuard {
    fn default() -> Self {
        QualityGuard {
            pause_below: Some(QualityRating::Green),
            pause_on_flagged: true,
            pause_on_downgrade: true,
        }
    }
}

/// What the guard says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QualityDecision {
    /// Nothing to do.
    Continue,
    /// Pause the sender's campaigns; `reason` is for `campaign status` and
    /// the team's notification.
    Pause {
        /// Why, in a sentence.
        reason: String,
    },
}

impl QualityGuard {
    /// Judges a rating read: pause when `new` is below the threshold and
    /// lower than `old` (or `old` is not known). A rating that stays as low
    /// as before does not pause again, so a person's resume holds until the
    /// next drop; an unknown rating never pauses.
    pub fn on_rating(&self, old: Option<QualityRating>, new: QualityRating) -> QualityDecision {
        let (Some(threshold), Some(new_rank)) = (self.pause_below, new.rank()) else {
            return QualityDecision::Continue;
        };
        let Some(threshold_rank) = threshold.rank() else {
            return QualityDecision::Continue;
        };
        if new_rank >= threshold_rank {
            return QualityDecision::Continue;
        }
        match old.and_then(QualityRating::rank) {
            Some(old_rank) if old_rank <= new_rank => QualityDecision::Continue,
            Some(_) => QualityDecision::Pause {
                reason: format!(
                    "the quality rating dropped from {} to {new} (campaigns pause below {threshold})",
                    old.map_or("?", QualityRating::as_str)
                ),
            },
            None => QualityDecision::Pause {
                reason: format!("the quality rating is {new} (campaigns pause below {threshold})"),
            },
        }
    }

    /// Judges a `phone_number_quality_update`: `FLAGGED` and `DOWNGRADE`
    /// pause (as configured), and so does a rating the payload carries by
    /// [`QualityGuard::on_rating`] without a previous one; other events
    /// continue.
    pub fn on_update(&self, update: &QualityUpdate) -> QualityDecision {
        let number = &update.display_phone_number;
        let limit = update
            .limit()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        match update.event {
            QualityEvent::Flagged if self.pause_on_flagged => {
                return QualityDecision::Pause {
                    reason: format!(
                        "WhatsApp flagged the number {number}: its message quality is low, and its \
                         messaging limit{limit} drops if it does not recover within 7 days"
                    ),
                }
            }
            QualityEvent::Downgrade if self.pause_on_downgrade => {
                let change = match (update.old_limit, update.limit()) {
                    (Some(old), Some(new)) => format!(" from {old} to {new}"),
                    (None, Some(new)) => format!(" to {new}"),
                    _ => String::new(),
                };
                return QualityDecision::Pause {
                    reason: format!(
                        "WhatsApp lowered the messaging limit of the number {number}{change} \
                         because of its message quality"
                    ),
                };
            }
            _ => {}
        }
        match update.quality_rating {
            Some(rating) => match self.on_rating(None, rating) {
                QualityDecision::Pause { reason } => QualityDecision::Pause {
                    reason: format!("number {number}: {reason}"),
                },
                QualityDecision::Continue => QualityDecision::Continue,
            },
            None => QualityDecision::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use QualityRating::*;

    fn pauses(d: &QualityDecision) -> bool {
        matches!(d, QualityDecision::Pause { .. })
    }

    #[test]
    fn ratings_parse() {
        assert_eq!("green".parse(), Ok(Green));
        assert_eq!(" RED ".parse(), Ok(Red));
        assert_eq!("Medium".parse(), Ok(Yellow));
        assert!("purple".parse::<QualityRating>().is_err());
        assert_eq!(QualityRating::from_api("purple"), Unknown);
        assert_eq!(
            serde_json::from_str::<QualityRating>("\"yellow\"").unwrap(),
            Yellow
        );
    }

    #[test]
    fn rating_drops_pause_once() {
        let g = QualityGuard::default();
        assert!(pauses(&g.on_rating(Some(Green), Yellow)));
        assert!(pauses(&g.on_rating(Some(Green), Red)));
        assert!(pauses(&g.on_rating(Some(Yellow), Red)));
        assert!(pauses(&g.on_rating(None, Yellow)));
        assert!(pauses(&g.on_rating(Some(Unknown), Red)));
        assert_eq!(g.on_rating(Some(Yellow), Yellow), QualityDecision::Continue);
        assert_eq!(g.on_rating(Some(Red), Yellow), QualityDecision::Continue);
        assert_eq!(g.on_rating(Some(Green), Green), QualityDecision::Continue);
        assert_eq!(g.on_rating(Some(Green), Unknown), QualityDecision::Continue);
        let QualityDecision::Pause { reason } = g.on_rating(Some(Green), Yellow) else {
            unreachable!()
        };
        assert_eq!(
            reason,
            "the quality rating dropped from GREEN to YELLOW (campaigns pause below GREEN)"
        );
    }

    #[test]
    fn thresholds_are_configurable() {
        let g = QualityGuard {
            pause_below: Some(Yellow),
            ..QualityGuard::default()
        };
        assert_eq!(g.on_rating(Some(Green), Yellow), QualityDecision::Continue);
        assert!(pauses(&g.on_rating(Some(Yellow), Red)));
        let never = QualityGuard {
            pause_below: None,
            pause_on_flagged: false,
            pause_on_downgrade: false,
        };
        assert_eq!(never.on_rating(Some(Green), Red), QualityDecision::Continue);
        let g: QualityGuard =
            toml::from_str("pause_below = \"yellow\"\npause_on_flagged = false").unwrap();
        assert_eq!(g.pause_below, Some(Yellow));
        assert!(!g.pause_on_flagged && g.pause_on_downgrade);
        assert!(toml::from_str::<QualityGuard>("pause_belo = \"red\"").is_err());
    }

    #[test]
    fn webhook_values() {
        let g = QualityGuard::default();
        let downgrade = QualityUpdate::from_value(&json!({
            "display_phone_number": "4930901820",
            "event": "DOWNGRADE",
            "old_limit": "TIER_10K",
            "current_limit": "TIER_1K",
            "max_daily_conversations_per_business": "TIER_1K"
        }))
        .unwrap();
        assert_eq!(downgrade.old_limit, Some(TierLimit::Limited(10_000)));
        let QualityDecision::Pause { reason } = g.on_update(&downgrade) else {
            unreachable!()
        };
        assert_eq!(
            reason,
            "WhatsApp lowered the messaging limit of the number 4930901820 from 10K to 1K because of its message quality"
        );
        for event in [
            "UPGRADE",
            "UNFLAGGED",
            "ONBOARDING",
            "THROUGHPUT_UPGRADE",
            "SOMETHING_NEW",
        ] {
            let update = QualityUpdate::from_value(&json!({
                "display_phone_number": "4930901820", "event": event,
                "current_limit": "TIER_UNLIMITED", "old_limit": ""
            }))
            .unwrap();
            assert_eq!(g.on_update(&update), QualityDecision::Continue, "{event}");
            assert_eq!(update.event.as_str(), event);
            assert_eq!(update.old_limit, None);
        }
        let only_business = QualityUpdate::from_value(&json!({
            "display_phone_number": "15550783881", "event": "UPGRADE",
            "max_daily_conversations_per_business": "TIER_2K"
        }))
        .unwrap();
        assert_eq!(only_business.limit(), Some(TierLimit::Limited(2000)));
        let rated = QualityUpdate::from_value(&json!({
            "display_phone_number": "15550783881", "event": "UPGRADE", "quality_rating": "YELLOW"
        }))
        .unwrap();
        assert!(pauses(&g.on_update(&rated)));
        assert_eq!(
            QualityUpdate::from_value(&json!({"event": "FLAGGED"})).unwrap_err(),
            QualityUpdateError::Missing("display_phone_number")
        );
        assert_eq!(
            QualityUpdate::from_value(&json!([])).unwrap_err(),
            QualityUpdateError::NotAnObject
        );
    }
}
