//! Routing by name: each sender can use its own WhatsApp provider (the Cloud
//! API for live numbers, the dry-run console for a test number) and each
//! assistant its own AI endpoint, behind the single provider the engine
//! holds.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Ai, AiAnswer, AiRequest, InteractiveMessage, MediaInfo, MediaMessage, MediaUpload, ReadReceipt,
    SenderRef, SenderStatus, SentMessage, TemplateMessage, TextMessage, WhatsApp,
};
use crate::runtime::ActionError;

/// Sends each message through the provider of its sender.
///
/// ```
/// use std::sync::Arc;
/// use flowc::providers::console::Console;
/// use flowc::providers::routing::SenderRouter;
///
/// let dry_run = Arc::new(Console::new(Box::new(std::io::sink())));
/// let router = SenderRouter::new(dry_run.clone()).route("test-number", dry_run);
/// assert_eq!(router.routes(), ["test-number"]);
/// ```
#[derive(Clone)]
pub struct SenderRouter {
    routes: HashMap<String, Arc<dyn WhatsApp>>,
    fallback: Arc<dyn WhatsApp>,
}

impl SenderRouter {
    /// Senders without a route of their own use `fallback`.
    pub fn new(fallback: Arc<dyn WhatsApp>) -> Self {
        SenderRouter {
            routes: HashMap::new(),
            fallback,
        }
    }

    /// Sends `sender`'s messages through `provider`.
    pub fn route(mut self, sender: impl Into<String>, provider: Arc<dyn WhatsApp>) -> Self {
        self.routes.insert(sender.into(), provider);
        self
    }

    /// The senders with a route of their own, sorted.
    pub fn routes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn provider(&self, sender: &SenderRef) -> &Arc<dyn WhatsApp> {
        self.routes.get(&sender.name).unwrap_or(&self.fallback)
    }
}

#[async_trait]
impl WhatsApp for SenderRouter {
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        self.provider(&message.sender).send_template(message).await
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        self.provider(&message.sender).send_text(message).await
    }

    async fn sender_status(&self, sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        self.provider(sender).sender_status(sender).await
    }

    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        self.provider(&message.sender)
            .send_interactive(message)
            .await
    }

    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        self.provider(&message.sender).send_media(message).await
    }

    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        self.provider(&upload.sender).upload_media(upload).await
    }

    async fn media_info(
        &self,
        sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        self.provider(sender).media_info(sender, media_id).await
    }

    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        self.provider(sender)
            .download_media(sender, info, max_bytes)
            .await
    }

    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        self.provider(&receipt.sender).mark_read(receipt).await
    }
}

/// Answers each request with the provider of its assistant.
#[derive(Clone)]
pub struct AssistantRouter {
    routes: HashMap<String, Arc<dyn Ai>>,
    fallback: Arc<dyn Ai>,
}

impl AssistantRouter {
    /// Assistants without a route of their own use `fallback`.
    pub fn new(fallback: Arc<dyn Ai>) -> Self {
        AssistantRouter {
            routes: HashMap::new(),
            fallback,
        }
    }

    /// Answers `assistant`'s requests with `provider`.
    pub fn route(mut self, assistant: impl Into<String>, provider: Arc<dyn Ai>) -> Self {
        self.routes.insert(assistant.into(), provider);
        self
    }

    /// The assistants with a route of their own, sorted.
    pub fn routes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[async_trait]
impl Ai for AssistantRouter {
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError> {
        self.routes
            .get(&request.assistant)
            .unwrap_or(&self.fallback)
            .generate_response(request)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::recording::Recorder;
    use crate::providers::TemplateParameters;

    fn message(sender: &str) -> TextMessage {
        TextMessage {
            sender: SenderRef {
                name: sender.into(),
                phone_number_id: "1".into(),
            },
            to: "+4915112345678".into(),
            body: "hi".into(),
        }
    }

    #[tokio::test]
    async fn messages_go_to_their_senders_provider() {
        let live = Recorder::new();
        let test = Recorder::new();
        let router =
            SenderRouter::new(Arc::new(test.whatsapp())).route("live", Arc::new(live.whatsapp()));
        router.send_text(&message("live")).await.unwrap();
        router.send_text(&message("other")).await.unwrap();
        let template = TemplateMessage {
            sender: message("live").sender,
            to: "+4915112345678".into(),
            recipient_name: None,
            template: "t".into(),
            language: "en".into(),
            parameters: TemplateParameters::Positional(Vec::new()),
            header: None,
            buttons: Vec::new(),
            body: None,
        };
        router.send_template(&template).await.unwrap();
        assert_eq!(live.effects().len(), 2);
        assert_eq!(test.effects().len(), 1);
    }
}
