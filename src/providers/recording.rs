//! Recording fakes of the providers, for tests (and for `flowc test`).
//!
//! A [`Recorder`] keeps ONE ordered log of everything the fakes did, shared by
//! all of them, so a test can assert the order of effects across providers
//! ("logged, then notified, then sent"). Each effect carries the time of a
//! [`Clock`]; with a [`VirtualClock`](super::VirtualClock) in a paused runtime
//! the times are the virtual instants, so "the reminder went out 24 hours
//! before the appointment" is an exact assertion.
//!
//! - Only calls that succeed are effects ([`Recorder::effects`]); every call,
//!   with its result, is an attempt ([`Recorder::attempts`]), so a test can
//!   assert "tried twice, sent once".
//! - The fakes can be scripted: fail the n-th call, take a sender offline,
//!   choose the AI's answers.
//! - All fakes made by one recorder share its state, so a handle kept by the
//!   test scripts the one given to the engine.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::scripted_ai::fill_placeholders;
use super::{
    Ai, AiAnswer, AiRequest, Choices, Clock, InteractiveMessage, Log, MediaInfo, MediaMessage,
    MediaSource, MediaUpload, Notify, ReadReceipt, SenderRef, SenderStatus, SentMessage,
    SystemClock, TemplateMessage, TemplateParameters, TextMessage, WhatsApp,
};
use crate::runtime::ActionError;

/// The AI fake's answer until [`RecordingAi::answer`] sets another.
pub const DEFAULT_AI_ANSWER: &str = "test answer to {customer}: {message}";

/// Something a provider did, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// The recorder's clock when the call was made.
    pub at: DateTime<Utc>,
    /// What was done.
    pub kind: EffectKind,
}

/// What a provider did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum EffectKind {
    /// A WhatsApp template was sent.
    Template(TemplateMessage),
    /// A WhatsApp free-text message was sent.
    Text(TextMessage),
    /// WhatsApp reply buttons or a list were sent.
    Interactive(InteractiveMessage),
    /// A WhatsApp image, document, audio, video or sticker was sent.
    Media(MediaMessage),
    /// A file was uploaded to WhatsApp's media store.
    Upload {
        /// The sender it was uploaded for.
        sender: String,
        /// The local path the flow named.
        path: String,
        /// The file's name.
        file_name: String,
        /// Its mime type.
        mime_type: String,
        /// Its size in bytes.
        bytes: usize,
        /// The media id it got.
        media_id: String,
    },
    /// A customer's media file was downloaded.
    Download {
        /// The sender that received it.
        sender: String,
        /// WhatsApp's media id.
        media_id: String,
        /// Its size in bytes.
        bytes: usize,
    },
    /// A customer's message was marked as read.
    Read(ReadReceipt),
    /// The AI assistant was asked.
    Ai(AiRequest),
    /// The team was notified.
    Notify {
        /// The channel, e.g. `sales`.
        channel: String,
        /// The notification.
        message: String,
    },
    /// A line was logged.
    Log {
        /// The flow whose run logged it.
        flow: String,
        /// `info`, `warn`, `error`, ...
        level: String,
        /// The line.
        message: String,
    },
}

/// What a successful call returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// A WhatsApp send's message id.
    Sent(SentMessage),
    /// The AI's answer.
    Answered(AiAnswer),
    /// A notification or log line that went through.
    Done,
}

/// One call to a fake, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The recorder's clock when the call was made.
    pub at: DateTime<Utc>,
    /// What was asked for.
    pub kind: EffectKind,
    /// What the fake answered.
    pub result: Result<Reply, ActionError>,
}

/// Who said something in an AI conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The customer's message.
    Customer,
    /// The assistant's answer.
    Assistant,
}

/// One message of an AI conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Who said it.
    pub speaker: Speaker,
    /// What.
    pub text: String,
}

#[derive(Default)]
struct WhatsAppScript {
    /// Sends so far, failed ones included.
    calls: usize,
    /// Successful sends so far: the number in `wamid.test.<n>`.
    sent: u64,
    failures: HashMap<usize, ActionError>,
    statuses: HashMap<String, SenderStatus>,
    /// Uploads so far: the number in `media.test.<n>`.
    uploads: u64,
    /// Calls that are not sends (uploads, lookups, downloads, read
    /// receipts), counted per action, and the ones scripted to fail.
    other_calls: HashMap<&'static str, usize>,
    other_failures: HashMap<(String, usize), ActionError>,
    /// Media customers "sent", by id: mime type and contents.
    media: HashMap<String, (String, Vec<u8>)>,
}

struct AiScript {
    calls: usize,
    failures: HashMap<usize, ActionError>,
    default_answer: String,
    /// (customer or message part, answer), first match wins.
    rules: Vec<(String, String)>,
}

impl Default for AiScript {
    fn default() -> Self {
        AiScript {
            calls: 0,
            failures: HashMap::new(),
            default_answer: DEFAULT_AI_ANSWER.to_string(),
            rules: Vec::new(),
        }
    }
}

#[derive(Default)]
struct NotifyScript {
    calls: usize,
    failures: HashMap<usize, ActionError>,
}

#[derive(Default)]
struct State {
    effects: Vec<Effect>,
    attempts: Vec<Attempt>,
    conversations: BTreeMap<String, Vec<Turn>>,
    whatsapp: WhatsAppScript,
    ai: AiScript,
    notify: NotifyScript,
}

impl State {
    /// Records a call: always an attempt, an effect when it succeeded.
    fn record(&mut self, at: DateTime<Utc>, kind: EffectKind, result: Result<Reply, ActionError>) {
        if result.is_ok() {
            self.effects.push(Effect {
                at,
                kind: kind.clone(),
            });
        }
        self.attempts.push(Attempt { at, kind, result });
    }
}

/// The shared log of the recording fakes; cheap to clone (clones share it).
///
/// ```
/// use std::sync::Arc;
/// use chrono::{TimeZone, Utc};
/// use flowc::providers::recording::Recorder;
/// use flowc::providers::{Log, Notify, VirtualClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
/// let recorder = Recorder::with_clock(Arc::new(VirtualClock::starting_at(start)));
/// let (notify, log) = (recorder.notify(), recorder.log());
///
/// log.log("reminder", "error", "send failed");
/// notify.notify("team", "Reminder to +4915112345678 failed").await.unwrap();
///
/// assert_eq!(recorder.logs(), [("reminder".to_string(), "error".to_string(), "send failed".to_string())]);
/// assert_eq!(recorder.notifications(), [("team".to_string(), "Reminder to +4915112345678 failed".to_string())]);
/// assert_eq!(recorder.effects()[1].at, start);
/// # });
/// ```
#[derive(Clone)]
pub struct Recorder {
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Recorder")
            .field("effects", &state.effects.len())
            .field("attempts", &state.attempts.len())
            .finish_non_exhaustive()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder that timestamps with the system clock.
    ///
    /// ```
    /// use flowc::providers::recording::Recorder;
    ///
    /// let recorder = Recorder::new();
    /// assert!(recorder.effects().is_empty());
    /// ```
    pub fn new() -> Self {
        Recorder::with_clock(Arc::new(SystemClock))
    }

    /// A recorder that timestamps with `clock`: give it the engine's clock
    /// (a [`VirtualClock`](super::VirtualClock) in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Recorder {
            clock,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// A WhatsApp fake writing to this recorder.
    pub fn whatsapp(&self) -> RecordingWhatsApp {
        RecordingWhatsApp {
            recorder: self.clone(),
        }
    }

    /// An AI fake writing to this recorder.
    pub fn ai(&self) -> RecordingAi {
        RecordingAi {
            recorder: self.clone(),
        }
    }

    /// A notification fake writing to this recorder.
    pub fn notify(&self) -> RecordingNotify {
        RecordingNotify {
            recorder: self.clone(),
        }
    }

    /// A log fake writing to this recorder.
    pub fn log(&self) -> RecordingLog {
        RecordingLog {
            recorder: self.clone(),
        }
    }

    /// Everything that succeeded, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().effects.clone()
    }

    /// Every call to any fake with its result, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    /// The templates sent, in order.
    pub fn templates(&self) -> Vec<TemplateMessage> {
        self.collect(|kind| match kind {
            EffectKind::Template(message) => Some(message.clone()),
            _ => None,
        })
    }

    /// The free-text messages sent, in order.
    pub fn texts(&self) -> Vec<TextMessage> {
        self.collect(|kind| match kind {
            EffectKind::Text(message) => Some(message.clone()),
            _ => None,
        })
    }

    /// The reply-button and list messages sent, in order.
    pub fn interactive(&self) -> Vec<InteractiveMessage> {
        self.collect(|kind| match kind {
            EffectKind::Interactive(message) => Some(message.clone()),
            _ => None,
        })
    }

    /// The media messages sent, in order.
    pub fn media(&self) -> Vec<MediaMessage> {
        self.collect(|kind| match kind {
            EffectKind::Media(message) => Some(message.clone()),
            _ => None,
        })
    }

    /// The AI requests answered, in order.
    pub fn ai_requests(&self) -> Vec<AiRequest> {
        self.collect(|kind| match kind {
            EffectKind::Ai(request) => Some(request.clone()),
            _ => None,
        })
    }

    /// The notifications delivered, in order, as `(channel, message)`.
    pub fn notifications(&self) -> Vec<(String, String)> {
        self.collect(|kind| match kind {
            EffectKind::Notify { channel, message } => Some((channel.clone(), message.clone())),
            _ => None,
        })
    }

    /// The log lines, in order, as `(flow, level, message)`.
    pub fn logs(&self) -> Vec<(String, String, String)> {
        self.collect(|kind| match kind {
            EffectKind::Log {
                flow,
                level,
                message,
            } => Some((flow.clone(), level.clone(), message.clone())),
            _ => None,
        })
    }

    /// One customer's AI conversation: their messages and the answers, in
    /// order (answered requests only). Empty for an unknown customer.
    pub fn conversation(&self, customer: &str) -> Vec<Turn> {
        self.lock()
            .conversations
            .get(customer)
            .cloned()
            .unwrap_or_default()
    }

    /// Every customer's AI conversation, by customer identifier.
    pub fn conversations(&self) -> BTreeMap<String, Vec<Turn>> {
        self.lock().conversations.clone()
    }

    /// The effects, one line each (see [`Effect`]'s `Display`), for
    /// readable assertion failures and snapshots.
    pub fn transcript(&self) -> String {
        self.lock()
            .effects
            .iter()
            .map(|effect| format!("{effect}\n"))
            .collect()
    }

    fn collect<T>(&self, pick: impl Fn(&EffectKind) -> Option<T>) -> Vec<T> {
        self.lock()
            .effects
            .iter()
            .filter_map(|effect| pick(&effect.kind))
            .collect()
    }

    fn attempts_where(&self, pick: impl Fn(&EffectKind) -> bool) -> Vec<Attempt> {
        self.lock()
            .attempts
            .iter()
            .filter(|attempt| pick(&attempt.kind))
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves usable data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`WhatsApp`] fake: records sends, answers `wamid.test.<n>` (n counting
/// successful sends from 1), and every sender is online unless scripted
/// otherwise. Sends from a sender scripted offline fail with
/// [`ActionError::SenderOffline`].
#[derive(Debug, Clone)]
pub struct RecordingWhatsApp {
    recorder: Recorder,
}

impl RecordingWhatsApp {
    /// Makes the `n`-th send (1-based, sends of every kind counted
    /// together, failed ones included) fail with `error`.
    pub fn fail_call(&self, n: usize, error: ActionError) -> &Self {
        self.recorder.lock().whatsapp.failures.insert(n, error);
        self
    }

    /// Sets what [`WhatsApp::sender_status`] reports for the sender named
    /// `name`; sends from it fail while it is not online.
    pub fn set_sender_status(&self, name: &str, status: SenderStatus) -> &Self {
        self.recorder
            .lock()
            .whatsapp
            .statuses
            .insert(name.to_string(), status);
        self
    }

    /// Makes the `n`-th call (1-based) of `action`, one of
    /// `whatsapp.upload_media`, `whatsapp.download_media` and
    /// `whatsapp.mark_read`, fail with `error`. Sends fail with
    /// [`RecordingWhatsApp::fail_call`].
    pub fn fail_action_call(&self, action: &str, n: usize, error: ActionError) -> &Self {
        self.recorder
            .lock()
            .whatsapp
            .other_failures
            .insert((action.to_string(), n), error);
        self
    }

    /// Counts a call of `action` that is not a send; its scripted failure,
    /// if any.
    fn other_call(&self, action: &'static str) -> Result<(), ActionError> {
        let mut state = self.recorder.lock();
        let script = &mut state.whatsapp;
        let n = script.other_calls.entry(action).or_insert(0);
        *n += 1;
        let n = *n;
        match script.other_failures.remove(&(action.to_string(), n)) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Makes the media `id` available to [`WhatsApp::media_info`] and
    /// [`WhatsApp::download_media`], as if a customer had sent it. Ids not
    /// given this way download as a small text file naming the id.
    pub fn set_media(&self, id: &str, mime_type: &str, bytes: Vec<u8>) -> &Self {
        self.recorder
            .lock()
            .whatsapp
            .media
            .insert(id.to_string(), (mime_type.to_string(), bytes));
        self
    }

    /// Every send, with its result, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.recorder.attempts_where(|kind| {
            matches!(
                kind,
                EffectKind::Template(_)
                    | EffectKind::Text(_)
                    | EffectKind::Interactive(_)
                    | EffectKind::Media(_)
            )
        })
    }

    /// The media a customer "sent" under `id`.
    fn stored_media(&self, id: &str) -> (String, Vec<u8>) {
        self.recorder
            .lock()
            .whatsapp
            .media
            .get(id)
            .cloned()
            .unwrap_or_else(|| ("text/plain".to_string(), format!("media {id}").into_bytes()))
    }

    /// Records a call that is not a send: it always succeeds.
    fn record_done(&self, kind: EffectKind) {
        let at = self.recorder.clock.now();
        self.recorder.lock().record(at, kind, Ok(Reply::Done));
    }

    fn send(&self, sender: &SenderRef, kind: EffectKind) -> Result<SentMessage, ActionError> {
        let at = self.recorder.clock.now();
        let mut state = self.recorder.lock();
        let script = &mut state.whatsapp;
        script.calls += 1;
        let result = if let Some(error) = script.failures.remove(&script.calls) {
            Err(error)
        } else {
            match script.statuses.get(&sender.name) {
                Some(status) if !status.online => Err(ActionError::SenderOffline {
                    sender: sender.name.clone(),
                    reason: status.detail.clone(),
                }),
                _ => {
                    script.sent += 1;
                    Ok(SentMessage {
                        message_id: format!("wamid.test.{}", script.sent),
                    })
                }
            }
        };
        state.record(at, kind, result.clone().map(Reply::Sent));
        result
    }
}

#[async_trait]
impl WhatsApp for RecordingWhatsApp {
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        self.send(&message.sender, EffectKind::Template(message.clone()))
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        self.send(&message.sender, EffectKind::Text(message.clone()))
    }

    async fn sender_status(&self, sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        Ok(self
            .recorder
            .lock()
            .whatsapp
            .statuses
            .get(&sender.name)
            .cloned()
            .unwrap_or_else(SenderStatus::online))
    }

    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        self.send(&message.sender, EffectKind::Interactive(message.clone()))
    }

    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        self.send(&message.sender, EffectKind::Media(message.clone()))
    }

    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        self.other_call("whatsapp.upload_media")?;
        let media_id = {
            let mut state = self.recorder.lock();
            state.whatsapp.uploads += 1;
            format!("media.test.{}", state.whatsapp.uploads)
        };
        self.record_done(EffectKind::Upload {
            sender: upload.sender.name.clone(),
            path: upload.path.clone(),
            file_name: upload.file_name.clone(),
            mime_type: upload.mime_type.clone(),
            bytes: upload.bytes.len(),
            media_id: media_id.clone(),
        });
        Ok(media_id)
    }

    async fn media_info(
        &self,
        _sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        // A lookup and its download are one `whatsapp.download_media`.
        self.other_call("whatsapp.download_media")?;
        let (mime_type, bytes) = self.stored_media(media_id);
        Ok(MediaInfo {
            id: media_id.to_string(),
            url: format!("https://media.test/{media_id}"),
            mime_type,
            sha256: None,
            file_size: Some(bytes.len() as u64),
        })
    }

    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        let (_, bytes) = self.stored_media(&info.id);
        if bytes.len() as u64 > max_bytes {
            return Err(ActionError::Media {
                message: format!(
                    "the media {} has more than the {max_bytes} bytes this download accepts",
                    info.id
                ),
            });
        }
        self.record_done(EffectKind::Download {
            sender: sender.name.clone(),
            media_id: info.id.clone(),
            bytes: bytes.len(),
        });
        Ok(bytes)
    }

    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        self.other_call("whatsapp.mark_read")?;
        self.record_done(EffectKind::Read(receipt.clone()));
        Ok(())
    }
}

/// An [`Ai`] fake: records requests and answers from a script.
///
/// Answers may use `{customer}`, `{message}`, `{assistant}` and the request's
/// `{variables}`; the default answer is [`DEFAULT_AI_ANSWER`]. Conversation ids
/// are `conv-<customer>`, and the recorder keeps each customer's conversation
/// ([`Recorder::conversation`]).
#[derive(Debug, Clone)]
pub struct RecordingAi {
    recorder: Recorder,
}

impl RecordingAi {
    /// Sets the answer for requests no [`RecordingAi::answer_for`] rule
    /// matches.
    pub fn answer(&self, text: &str) -> &Self {
        self.recorder.lock().ai.default_answer = text.to_string();
        self
    }

    /// Answers `text` when the customer identifier is `pattern`, or the
    /// message contains `pattern` (ignoring case). Rules are tried in the
    /// order they were added; the first match wins.
    pub fn answer_for(&self, pattern: &str, text: &str) -> &Self {
        self.recorder
            .lock()
            .ai
            .rules
            .push((pattern.to_string(), text.to_string()));
        self
    }

    /// Makes the `n`-th request (1-based, failed ones included) fail with
    /// `error`.
    pub fn fail_call(&self, n: usize, error: ActionError) -> &Self {
        self.recorder.lock().ai.failures.insert(n, error);
        self
    }

    /// Every request, with its result, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.recorder
            .attempts_where(|kind| matches!(kind, EffectKind::Ai(_)))
    }
}

#[async_trait]
impl Ai for RecordingAi {
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError> {
        let at = self.recorder.clock.now();
        let mut state = self.recorder.lock();
        let script = &mut state.ai;
        script.calls += 1;
        let result = match script.failures.remove(&script.calls) {
            Some(error) => Err(error),
            None => {
                let message = request.message.to_lowercase();
                let template = script
                    .rules
                    .iter()
                    .find(|(pattern, _)| {
                        *pattern == request.customer || message.contains(&pattern.to_lowercase())
                    })
                    .map_or(script.default_answer.as_str(), |(_, answer)| {
                        answer.as_str()
                    });
                Ok(AiAnswer {
                    text: fill_placeholders(template, request),
                    conversation_id: format!("conv-{}", request.customer),
                })
            }
        };
        if let Ok(answer) = &result {
            let turns = state
                .conversations
                .entry(request.customer.clone())
                .or_default();
            turns.push(Turn {
                speaker: Speaker::Customer,
                text: request.message.clone(),
            });
            turns.push(Turn {
                speaker: Speaker::Assistant,
                text: answer.text.clone(),
            });
        }
        state.record(
            at,
            EffectKind::Ai(request.clone()),
            result.clone().map(Reply::Answered),
        );
        result
    }
}

/// A [`Notify`] fake: records notifications.
#[derive(Debug, Clone)]
pub struct RecordingNotify {
    recorder: Recorder,
}

impl RecordingNotify {
    /// Makes the `n`-th notification (1-based, failed ones included) fail
    /// with `error`.
    pub fn fail_call(&self, n: usize, error: ActionError) -> &Self {
        self.recorder.lock().notify.failures.insert(n, error);
        self
    }

    /// Every notification, with its result, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.recorder
            .attempts_where(|kind| matches!(kind, EffectKind::Notify { .. }))
    }
}

#[async_trait]
impl Notify for RecordingNotify {
    async fn notify(&self, channel: &str, message: &str) -> Result<(), ActionError> {
        let at = self.recorder.clock.now();
        let mut state = self.recorder.lock();
        state.notify.calls += 1;
        let calls = state.notify.calls;
        let result = match state.notify.failures.remove(&calls) {
            Some(error) => Err(error),
            None => Ok(()),
        };
        let kind = EffectKind::Notify {
            channel: channel.to_string(),
            message: message.to_string(),
        };
        state.record(at, kind, result.clone().map(|()| Reply::Done));
        result
    }
}

/// A [`Log`] fake: records log lines.
#[derive(Debug, Clone)]
pub struct RecordingLog {
    recorder: Recorder,
}

impl Log for RecordingLog {
    fn log(&self, flow: &str, level: &str, message: &str) {
        let at = self.recorder.clock.now();
        let kind = EffectKind::Log {
            flow: flow.to_string(),
            level: level.to_string(),
            message: message.to_string(),
        };
        self.recorder.lock().record(at, kind, Ok(Reply::Done));
    }
}

impl fmt::Display for Effect {
    /// One line: the time, then the effect, e.g.
    /// `2026-12-01T09:00:00Z notify sales: "call me"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.kind
        )
    }
}

impl fmt::Display for EffectKind {
    /// One line, texts quoted so that line breaks stay visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EffectKind::Template(message) => {
                write!(
                    f,
                    "whatsapp.send_template {} ({}) from {} to {}",
                    message.template, message.language, message.sender.name, message.to
                )?;
                match &message.parameters {
                    TemplateParameters::Positional(values) if !values.is_empty() => {
                        write!(f, ": {values:?}")
                    }
                    TemplateParameters::Named(pairs) if !pairs.is_empty() => {
                        let pairs: Vec<String> =
                            pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                        write!(f, ": {{{}}}", pairs.join(", "))
                    }
                    _ => Ok(()),
                }
            }
            EffectKind::Text(message) => write!(
                f,
                "whatsapp.send_text from {} to {}: {:?}",
                message.sender.name, message.to, message.body
            ),
            EffectKind::Interactive(message) => {
                let (action, choices) = match &message.choices {
                    Choices::Buttons(_) => ("whatsapp.send_buttons", String::new()),
                    Choices::List { button, .. } => ("whatsapp.send_list", format!(" [{button:?}]")),
                };
                let ids: Vec<&str> = message
                    .choices
                    .all()
                    .into_iter()
                    .map(|c| c.id.as_str())
                    .collect();
                write!(
                    f,
                    "{action} from {} to {}: {:?}{choices} {ids:?}",
                    message.sender.name, message.to, message.body
                )
            }
            EffectKind::Media(message) => {
                write!(
                    f,
                    "whatsapp.send_{} from {} to {}: {}",
                    message.kind,
                    message.sender.name,
                    message.to,
                    match &message.source {
                        MediaSource::Link(link) => link.clone(),
                        MediaSource::Id(id) => format!("media {id}"),
                    }
                )?;
                if let Some(filename) = &message.filename {
                    write!(f, " as {filename:?}")?;
                }
                if let Some(caption) = &message.caption {
                    write!(f, " {caption:?}")?;
                }
                Ok(())
            }
            EffectKind::Upload {
                sender,
                path,
                mime_type,
                bytes,
                media_id,
                ..
            } => write!(
                f,
                "whatsapp.upload_media for {sender}: {path:?} ({mime_type}, {bytes} bytes) as {media_id}"
            ),
            EffectKind::Download {
                sender,
                media_id,
                bytes,
            } => write!(f, "whatsapp.download_media for {sender}: {media_id} ({bytes} bytes)"),
            EffectKind::Read(receipt) => write!(
                f,
                "whatsapp.mark_read for {}: {}{}",
                receipt.sender.name,
                receipt.message_id,
                if receipt.typing { " (typing)" } else { "" }
            ),
            EffectKind::Ai(request) => write!(
                f,
                "ai.generate_response {} for {}: {:?}",
                request.assistant, request.customer, request.message
            ),
            EffectKind::Notify { channel, message } => write!(f, "notify {channel}: {message:?}"),
            EffectKind::Log {
                flow,
                level,
                message,
            } => write!(f, "log {level} {flow}: {message:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::providers::VirtualClock;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn recorder() -> Recorder {
        Recorder::with_clock(Arc::new(VirtualClock::starting_at(start())))
    }

    fn sender(name: &str) -> SenderRef {
        SenderRef {
            name: name.into(),
            phone_number_id: "106540352242922".into(),
        }
    }

    fn template() -> TemplateMessage {
        TemplateMessage {
            sender: sender("berlin-office"),
            to: "+4915112345678".into(),
            recipient_name: Some("Anna Schmidt".into()),
            template: "appointment_reminder".into(),
            language: "en".into(),
            parameters: TemplateParameters::Positional(vec!["Anna".into(), "Dr. Weber".into()]),
            header: None,
            buttons: Vec::new(),
            body: None,
        }
    }

    fn text(body: &str) -> TextMessage {
        TextMessage {
            sender: sender("berlin-office"),
            to: "+4915112345678".into(),
            body: body.into(),
        }
    }

    fn request(customer: &str, message: &str) -> AiRequest {
        AiRequest {
            assistant: "lead-qualifier".into(),
            model: None,
            instructions: None,
            customer: customer.into(),
            message: message.into(),
            variables: BTreeMap::from([("office".to_string(), "berlin-office".to_string())]),
        }
    }

    fn transient() -> ActionError {
        ActionError::Transient {
            message: "503 from the API".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn effects_of_all_fakes_share_one_log_with_virtual_times() {
        let recorder = recorder();
        let clock = VirtualClock::starting_at(start());
        let (whatsapp, ai, notify, log) = (
            recorder.whatsapp(),
            recorder.ai(),
            recorder.notify(),
            recorder.log(),
        );

        log.log("reminder", "info", "waiting");
        clock
            .sleep_until(start() + chrono::Duration::hours(24))
            .await;
        let sent = whatsapp.send_template(&template()).await.unwrap();
        ai.generate_response(&request("+4915112345678", "hi"))
            .await
            .unwrap();
        notify.notify("team", "sent").await.unwrap();
        whatsapp.send_text(&text("bye")).await.unwrap();

        assert_eq!(sent.message_id, "wamid.test.1");
        let later = start() + chrono::Duration::hours(24);
        let times: Vec<_> = recorder.effects().iter().map(|e| e.at).collect();
        assert_eq!(times, [start(), later, later, later, later]);
        assert_eq!(
            recorder.transcript(),
            concat!(
                "2026-12-01T09:00:00Z log info reminder: \"waiting\"\n",
                "2026-12-02T09:00:00Z whatsapp.send_template appointment_reminder (en) from berlin-office to +4915112345678: [\"Anna\", \"Dr. Weber\"]\n",
                "2026-12-02T09:00:00Z ai.generate_response lead-qualifier for +4915112345678: \"hi\"\n",
                "2026-12-02T09:00:00Z notify team: \"sent\"\n",
                "2026-12-02T09:00:00Z whatsapp.send_text from berlin-office to +4915112345678: \"bye\"\n",
            )
        );
        assert_eq!(recorder.templates(), [template()]);
        assert_eq!(recorder.texts(), [text("bye")]);
        assert_eq!(recorder.ai_requests().len(), 1);
        assert_eq!(
            recorder.notifications(),
            [("team".to_string(), "sent".to_string())]
        );
        assert_eq!(
            recorder.logs(),
            [(
                "reminder".to_string(),
                "info".to_string(),
                "waiting".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn failed_sends_are_attempts_not_effects() {
        let recorder = recorder();
        let whatsapp = recorder.whatsapp();
        // Scripted through a second handle: the handles share the script.
        recorder
            .whatsapp()
            .fail_call(1, transient())
            .fail_call(3, transient());

        assert_eq!(whatsapp.send_template(&template()).await, Err(transient()));
        assert_eq!(
            whatsapp
                .send_template(&template())
                .await
                .unwrap()
                .message_id,
            "wamid.test.1"
        );
        assert!(whatsapp.send_text(&text("x")).await.is_err());
        assert_eq!(
            whatsapp.send_text(&text("y")).await.unwrap().message_id,
            "wamid.test.2"
        );

        let attempts = whatsapp.attempts();
        assert_eq!(attempts.len(), 4);
        assert_eq!(attempts.iter().filter(|a| a.result.is_ok()).count(), 2);
        assert_eq!(attempts[0].result, Err(transient()));
        assert_eq!(
            attempts[1].result,
            Ok(Reply::Sent(SentMessage {
                message_id: "wamid.test.1".into()
            }))
        );
        assert_eq!(recorder.templates().len(), 1);
        assert_eq!(recorder.texts(), [text("y")]);
    }

    #[tokio::test]
    async fn offline_senders_report_and_refuse() {
        let recorder = recorder();
        let whatsapp = recorder.whatsapp();
        assert_eq!(
            whatsapp
                .sender_status(&sender("munich-office"))
                .await
                .unwrap(),
            SenderStatus::online()
        );
        let offline = SenderStatus {
            online: false,
            quality: "UNKNOWN".into(),
            detail: "DISCONNECTED".into(),
        };
        whatsapp.set_sender_status("berlin-office", offline.clone());
        assert_eq!(
            whatsapp
                .sender_status(&sender("berlin-office"))
                .await
                .unwrap(),
            offline
        );
        assert_eq!(
            whatsapp.send_text(&text("hi")).await,
            Err(ActionError::SenderOffline {
                sender: "berlin-office".into(),
                reason: "DISCONNECTED".into()
            })
        );
        assert!(recorder.effects().is_empty());
        assert_eq!(recorder.attempts().len(), 1);
    }

    #[tokio::test]
    async fn ai_answers_by_rule_and_keeps_conversations_apart() {
        let recorder = recorder();
        let ai = recorder.ai();
        ai.answer("default for {customer} ({office})")
            .answer_for("+4917612345678", "hello Lukas")
            .answer_for("PRICE", "19 EUR");

        let lukas = ai
            .generate_response(&request("+4917612345678", "what is the price?"))
            .await
            .unwrap();
        assert_eq!(lukas.text, "hello Lukas");
        assert_eq!(lukas.conversation_id, "conv-+4917612345678");
        let anna = ai
            .generate_response(&request("+4915112345678", "The price?"))
            .await
            .unwrap();
        assert_eq!(anna.text, "19 EUR");
        let again = ai
            .generate_response(&request("+4915112345678", "ok"))
            .await
            .unwrap();
        assert_eq!(again.text, "default for +4915112345678 (berlin-office)");
        assert_eq!(again.conversation_id, anna.conversation_id);

        let turn = |speaker, text: &str| Turn {
            speaker,
            text: text.into(),
        };
        assert_eq!(
            recorder.conversation("+4915112345678"),
            [
                turn(Speaker::Customer, "The price?"),
                turn(Speaker::Assistant, "19 EUR"),
                turn(Speaker::Customer, "ok"),
                turn(
                    Speaker::Assistant,
                    "default for +4915112345678 (berlin-office)"
                ),
            ]
        );
        assert_eq!(
            recorder.conversation("+4917612345678"),
            [
                turn(Speaker::Customer, "what is the price?"),
                turn(Speaker::Assistant, "hello Lukas")
            ]
        );
        assert_eq!(recorder.conversations().len(), 2);
        assert!(recorder.conversation("nobody").is_empty());
    }

    #[tokio::test]
    async fn ai_default_answer_and_scripted_failures() {
        let recorder = recorder();
        let ai = recorder.ai();
        ai.fail_call(
            1,
            ActionError::Ai {
                message: "busy".into(),
            },
        );
        assert!(ai.generate_response(&request("c1", "hi")).await.is_err());
        let answer = ai.generate_response(&request("c1", "hi")).await.unwrap();
        assert_eq!(answer.text, "test answer to c1: hi");
        assert_eq!(ai.attempts().len(), 2);
        assert_eq!(recorder.ai_requests().len(), 1);
        // The failed request is not part of the conversation.
        assert_eq!(recorder.conversation("c1").len(), 2);
    }

    #[tokio::test]
    async fn notify_failures_are_scripted() {
        let recorder = recorder();
        let notify = recorder.notify();
        let failed = ActionError::NotifyFailed {
            message: "chat is down".into(),
        };
        notify.fail_call(2, failed.clone());
        notify.notify("team", "one").await.unwrap();
        assert_eq!(notify.notify("team", "two").await, Err(failed));
        notify.notify("team", "three").await.unwrap();
        assert_eq!(
            recorder.notifications(),
            [
                ("team".to_string(), "one".to_string()),
                ("team".to_string(), "three".to_string())
            ]
        );
        assert_eq!(notify.attempts().len(), 3);
    }

    #[test]
    fn effects_serialize_as_tagged_data() {
        let effect = Effect {
            at: start(),
            kind: EffectKind::Notify {
                channel: "team".into(),
                message: "hi".into(),
            },
        };
        let json = serde_json::to_value(&effect).unwrap();
        assert_eq!(json["kind"]["effect"], "notify");
        assert_eq!(serde_json::from_value::<Effect>(json).unwrap(), effect);
    }
}
