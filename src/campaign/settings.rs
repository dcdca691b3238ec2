//! The campaign settings of `flow.toml`: `[campaigns]` (tier, quiet hours,
//! quality guard, per-sender overrides), `[opt_out]` (the stop and start
//! words) and `[limits]` (the engine's send pacing). Each table is read with
//! serde from its TOML text, so its keys are exactly the fields below;
//! `crate::config` reports a table that does not fit as a diagnostic.
//!
//! ```
//! use flowc::campaign::settings::CampaignsConfig;
//! use flowc::campaign::TierLimit;
//!
//! let config: CampaignsConfig = toml::from_str(r#"
//! tier = 1000
//! quiet_hours = "21:00-08:00"
//! [quality]
//! pause_below = "YELLOW"
//! [senders.munich-office]
//! quiet_hours = "20:00-09:00"
//! "#).unwrap();
//! assert_eq!(config.tier_for("berlin-office"), TierLimit::Limited(1000));
//! assert_eq!(config.quiet_hours_for("munich-office").unwrap().to_string(), "20:00-09:00");
//! assert_eq!(config.quiet_hours_for("berlin-office").unwrap().to_string(), "21:00-08:00");
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{QualityGuard, QuietHours, TierLimit};

/// `[campaigns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignsConfig {
    /// Business-initiated conversations per rolling 24 hours (the messaging
    /// tier), for every sender without its own; Meta's starting tier
    /// ([`TierLimit::DEFAULT`]) when left out.
    pub tier: Option<TierLimit>,
    /// Quiet hours in each customer's time zone, for every sender without
    /// its own; none when left out.
    pub quiet_hours: Option<QuietHours>,
    /// When a quality update pauses a sender's campaigns.
    pub quality: QualityGuard,
    /// The `notify` channel told when campaigns pause for quality.
    pub notify: String,
    /// Overrides by sender name.
    pub senders: BTreeMap<String, SenderCampaignConfig>,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        CampaignsConfig {
            tier: None,
            quiet_hours: None,
            quality: QualityGuard::default(),
            notify: "team".to_string(),
            senders: BTreeMap::new(),
        }
    }
}

/// `[campaigns.senders.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderCampaignConfig {
    /// This sender's tier.
    pub tier: Option<TierLimit>,
    /// This sender's quiet hours.
    pub quiet_hours: Option<QuietHours>,
}

impl CampaignsConfig {
    /// The tier of `sender`: its own, the table's, or Meta's starting tier.
    pub fn tier_for(&self, sender: &str) -> TierLimit {
        self.senders
            .get(sender)
            .and_then(|s| s.tier)
            .or(self.tier)
            .unwrap_or(TierLimit::DEFAULT)
    }

    /// The quiet hours of `sender`: its own or the table's.
    pub fn quiet_hours_for(&self, sender: &str) -> Option<QuietHours> {
        self.senders
            .get(sender)
            .and_then(|s| s.quiet_hours)
            .or(self.quiet_hours)
    }
}

/// `[limits]`: the engine's send pacing. Left-out keys keep WhatsApp's
/// defaults (80 messages per second per sender, 6 seconds between two
/// messages to one customer).
///
/// ```
/// let limits: flowc::campaign::settings::LimitsConfig =
///     toml::from_str("sender_per_second = 500\nrecipient_interval = \"1s\"").unwrap();
/// let pacing = limits.pacing().unwrap();
/// assert_eq!(pacing.sender_per_second, 500.0);
/// assert_eq!(pacing.recipient_interval, chrono::Duration::seconds(1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Messages per second per sender.
    pub sender_per_second: Option<f64>,
    /// The least time between two messages to one customer, e.g. `6s`.
    pub recipient_interval: Option<String>,
}

impl LimitsConfig {
    /// The pacing these settings give, or what is wrong with them.
    pub fn pacing(&self) -> Result<crate::runtime::Limits, String> {
        let mut limits = crate::runtime::Limits::default();
        if let Some(rate) = self.sender_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "`sender_per_second` must be a positive number, not {rate}"
                ));
            }
            limits.sender_per_second = rate;
        }
        if let Some(text) = &self.recipient_interval {
            let ms = crate::duration::parse(text)
                .and_then(|ms| i64::try_from(ms).ok())
                .ok_or_else(|| {
                    format!("`recipient_interval`: \"{text}\" is not a duration such as 6s")
                })?;
            limits.recipient_interval = chrono::Duration::milliseconds(ms);
        }
        Ok(limits)
    }
}
