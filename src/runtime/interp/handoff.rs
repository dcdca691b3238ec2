//! `whatsapp.hand_over` and `whatsapp.resume_automation`: a flow hands a
//! conversation to a person and gives it back. The pause is kept in the
//! store (see [`crate::providers::PausedConversation`]); the engine holds
//! the customer's messages while it lasts.

use super::{Args, Ctx};
use crate::providers::{PausedConversation, StoreError};
use crate::runtime::value::Value;
use crate::runtime::ActionError;

/// A store failure as the run sees it: worth retrying.
fn store_error(error: StoreError) -> ActionError {
    ActionError::Transient {
        message: error.to_string(),
    }
}

impl Ctx<'_> {
    /// The `customer` and `sender` of a handoff action: a phone number in
    /// E.164 and a sender from flow.toml.
    fn conversation(&self, args: &mut Args<'_>) -> Result<(String, String), ActionError> {
        let customer = args.take_text("customer");
        if let Err(problems) = crate::runtime::phones::check(&customer) {
            return Err(ActionError::InvalidPhone {
                reason: super::describe(&problems),
                phone: customer,
            });
        }
        let sender = args.take_text("sender");
        if !self.program.config().senders.contains_key(&sender) {
            return Err(ActionError::InvalidRequest {
                message: format!("the sender `{sender}` is not configured in flow.toml"),
            });
        }
        Ok((customer, sender))
    }

    /// `whatsapp.hand_over`.
    pub(super) async fn hand_over(&self, mut args: Args<'_>) -> Result<Value, ActionError> {
        let (customer, sender) = self.conversation(&mut args)?;
        let now = self.inner.clock.now();
        let until = match args.get("for") {
            Some(Value::Duration(ms)) => {
                let ms = i64::try_from(*ms).map_err(|_| ActionError::InvalidRequest {
                    message: "`for` is too long".into(),
                })?;
                Some(now + chrono::Duration::milliseconds(ms))
            }
            _ => None,
        };
        let pause = PausedConversation {
            customer,
            sender,
            paused_at: now,
            until,
        };
        self.inner
            .store
            .pause_conversation(pause)
            .await
            .map_err(store_error)?;
        Ok(Value::None)
    }

    /// `whatsapp.resume_automation`.
    pub(super) async fn resume_automation(&self, mut args: Args<'_>) -> Result<Value, ActionError> {
        let (customer, sender) = self.conversation(&mut args)?;
        self.inner
            .store
            .resume_conversation(&customer, &sender)
            .await
            .map_err(store_error)?;
        Ok(Value::None)
    }
}
