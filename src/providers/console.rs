//! The dry-run console provider, the default of `flowc run`: it prints what
//! WOULD be sent and sends nothing, so flows can be tried without a WhatsApp
//! account, a network, or any risk of messaging a real customer.
//!
//! The output is meant for operations people. Every entry starts with a tag
//! in a fixed-width column, details follow as aligned `label: value` lines,
//! and multi-line texts keep their line breaks, indented under their first
//! line:
//!
//! ```text
//!   [dry-run]   WhatsApp template "appointment_reminder" (en) from berlin-office to +4915112345678 (Anna Schmidt)
//!               variables: "Anna Schmidt", "Dr. Weber", "03.12.2026 10:30", "Berlin Mitte"
//!               message:   Hi Anna Schmidt, a reminder of your appointment with Dr. Weber on 03.12.2026 10:30.
//!                          Location: Berlin Mitte
//!   [dry-run]   WhatsApp text from berlin-office to +4915112345678
//!               message:   Thanks for your message!
//!   [dry-run]   notify sales: The lead assistant could not answer +4917612345678.
//!   [log error] lead_qualification: assistant could not answer +4917612345678
//! ```
//!
//! Control characters in texts (terminal escape sequences, carriage returns)
//! are shown escaped, so a customer's message cannot garble the terminal.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use super::{
    Choice, Choices, InteractiveMessage, Log, MediaInfo, MediaMessage, MediaSource, MediaUpload,
    Notify, ReadReceipt, SenderRef, SenderStatus, SentMessage, TemplateButtonParameter,
    TemplateHeader, TemplateMessage, TemplateParameters, TextMessage, WhatsApp,
};
use crate::media::human_size;
use crate::runtime::ActionError;

/// Indentation of every entry.
const MARGIN: &str = "  ";
/// Width of the tag column: `[log error]`, the longest usual tag.
const TAG_WIDTH: usize = 11;
/// Width of the label column of detail lines: `variables: `.
const LABEL_WIDTH: usize = 11;
/// The tag of things that would have been sent.
const DRY_RUN_TAG: &str = "[dry-run]";

/// A provider for WhatsApp, notifications and logs that prints instead of
/// sending.
///
/// Sends always succeed with fake but well-formed message ids
/// (`wamid.dryrun.1`, `wamid.dryrun.2`, ...), and every sender is online.
/// Errors writing the output are ignored: a closed pipe (`flowc run | head`)
/// must not fail a run. Each entry is written in one piece under a lock, so
/// entries of concurrent runs never interleave.
pub struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    sent: AtomicU64,
    uploads: AtomicU64,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("sent", &self.sent.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console that writes to `out`.
    ///
    /// ```
    /// use flowc::providers::console::Console;
    /// use flowc::providers::{SenderRef, TextMessage, WhatsApp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let console = Console::new(Box::new(std::io::stdout()));
    /// let sent = console
    ///     .send_text(&TextMessage {
    ///         sender: SenderRef { name: "berlin-office".into(), phone_number_id: "106540352242922".into() },
    ///         to: "+4915112345678".into(),
    ///         body: "Thanks for your message!".into(),
    ///     })
    ///     .await?;
    /// assert_eq!(sent.message_id, "wamid.dryrun.1");
    /// # Ok::<(), flowc::runtime::ActionError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Console {
            out: Mutex::new(out),
            sent: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
        }
    }

    /// A console that writes to standard output.
    ///
    /// ```
    /// use flowc::providers::console::Console;
    /// use flowc::providers::Log;
    ///
    /// let console = Console::stdout();
    /// console.log("call_follow_up", "info", "no follow-up for outcome voicemail");
    /// ```
    pub fn stdout() -> Self {
        Console::new(Box::new(std::io::stdout()))
    }

    /// How many messages would have been sent so far (of every kind).
    pub fn message_count(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn next_message_id(&self) -> String {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        format!("wamid.dryrun.{n}")
    }

    /// Writes one entry in one piece; errors are ignored on purpose.
    fn emit(&self, entry: &Entry) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(entry.text.as_bytes());
        let _ = out.flush();
    }
}

/// One entry of output, built before it is written.
struct Entry {
    text: String,
}

impl Entry {
    /// The column where the text after the tag starts.
    const CONTENT: usize = MARGIN.len() + TAG_WIDTH + 1;

    /// A first line: the tag, then `head` (already cleaned).
    fn header(tag: &str, head: &str) -> Entry {
        Entry {
            text: format!("{MARGIN}{tag:<TAG_WIDTH$} {head}\n"),
        }
    }

    /// A first line: the tag, then `head` (already cleaned), then `body`,
    /// whose further lines are indented under its first.
    fn with_body(tag: &str, head: &str, body: &str) -> Entry {
        let mut text = format!("{MARGIN}{tag:<TAG_WIDTH$} ");
        let column = text.chars().count() + head.chars().count();
        text.push_str(head);
        push_block(&mut text, body, column);
        text.push('\n');
        Entry { text }
    }

    /// A detail line: `label: value`, aligned under the first line's text.
    fn field(&mut self, label: &str, value: &str) {
        let label = format!("{label}:");
        self.text.push_str(&" ".repeat(Self::CONTENT));
        self.text.push_str(&format!("{label:<LABEL_WIDTH$}"));
        if label.chars().count() >= LABEL_WIDTH {
            self.text.push(' ');
        }
        let column = Self::CONTENT + LABEL_WIDTH.max(label.chars().count() + 1);
        push_block(&mut self.text, value, column);
        self.text.push('\n');
    }
}

/// Appends `text`, its further lines indented to `column`, control
/// characters escaped. An empty text reads `(empty)`.
fn push_block(out: &mut String, text: &str, column: usize) {
    if text.trim().is_empty() {
        out.push_str("(empty)");
        return;
    }
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&" ".repeat(column));
            }
        }
        out.push_str(&clean(line));
    }
}

/// One line with control characters (escape sequences, `\r`, tabs) escaped.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `"a", "b"` for positional parameters, `name = "a"` for named ones.
fn format_parameters(parameters: &TemplateParameters) -> String {
    match parameters {
        TemplateParameters::Positional(values) => values
            .iter()
            .map(|value| format!("{value:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        TemplateParameters::Named(pairs) => pairs
            .iter()
            .map(|(name, value)| format!("{} = {value:?}", clean(name)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `Yes, confirm [confirm]`, with a list row's description after a colon.
fn format_choice(choice: &Choice) -> String {
    let mut line = format!("{} [{}]", clean(&choice.title), clean(&choice.id));
    if let Some(description) = &choice.description {
        line.push_str(": ");
        line.push_str(&clean(description));
    }
    line
}

/// The file of a media message or header, as the flow gave it.
fn format_source(source: &MediaSource) -> (&'static str, String) {
    match source {
        MediaSource::Link(link) => ("link", clean(link)),
        MediaSource::Id(id) => ("media id", clean(id)),
    }
}

/// ` (Anna Schmidt)` when the recipient's name is known.
fn recipient_suffix(name: Option<&str>) -> String {
    match name {
        Some(name) if !name.trim().is_empty() => format!(" ({})", clean(name)),
        _ => String::new(),
    }
}

#[async_trait]
impl WhatsApp for Console {
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        let head = format!(
            "WhatsApp template {:?} ({}) from {} to {}{}",
            message.template,
            clean(&message.language),
            clean(&message.sender.name),
            clean(&message.to),
            recipient_suffix(message.recipient_name.as_deref()),
        );
        let mut entry = Entry::header(DRY_RUN_TAG, &head);
        if !message.parameters.is_empty() {
            entry.field("variables", &format_parameters(&message.parameters));
        }
        match &message.header {
            Some(TemplateHeader::Text { text, .. }) => entry.field("header", text),
            Some(TemplateHeader::Media {
                kind,
                source,
                filename,
            }) => {
                let (label, file) = format_source(source);
                let name = filename
                    .as_deref()
                    .map(|name| format!(" as \"{}\"", clean(name)))
                    .unwrap_or_default();
                entry.field("header", &format!("{kind}, {label} {file}{name}"));
            }
            None => {}
        }
        match &message.preview() {
            Some(preview) => entry.field("message", preview),
            None => entry.field(
                "message",
                "(the template catalog has no body for this template)",
            ),
        }
        for button in &message.buttons {
            let (what, value) = match &button.parameter {
                TemplateButtonParameter::Payload(payload) => ("reply", payload),
                TemplateButtonParameter::UrlSuffix(suffix) => ("link ends", suffix),
                TemplateButtonParameter::CouponCode(code) => ("copies", code),
            };
            entry.field(
                "button",
                &format!("{} {what} {:?}", button.index + 1, clean(value)),
            );
        }
        self.emit(&entry);
        Ok(SentMessage {
            message_id: self.next_message_id(),
        })
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        let head = format!(
            "WhatsApp text from {} to {}",
            clean(&message.sender.name),
            clean(&message.to)
        );
        let mut entry = Entry::header(DRY_RUN_TAG, &head);
        entry.field("message", &message.body);
        self.emit(&entry);
        Ok(SentMessage {
            message_id: self.next_message_id(),
        })
    }

    async fn sender_status(&self, _sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        Ok(SenderStatus::online())
    }

    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        let what = match message.choices {
            Choices::Buttons(_) => "buttons",
            Choices::List { .. } => "list",
        };
        let head = format!(
            "WhatsApp {what} from {} to {}",
            clean(&message.sender.name),
            clean(&message.to)
        );
        let mut entry = Entry::header(DRY_RUN_TAG, &head);
        if let Some(header) = &message.header {
            entry.field("header", header);
        }
        entry.field("message", &message.body);
        if let Some(footer) = &message.footer {
            entry.field("footer", footer);
        }
        match &message.choices {
            Choices::Buttons(buttons) => {
                let lines: Vec<String> = buttons.iter().map(format_choice).collect();
                entry.field("buttons", &lines.join("\n"));
            }
            Choices::List { button, sections } => {
                entry.field("list", button);
                for section in sections {
                    let mut lines = vec![section
                        .title
                        .as_deref()
                        .map_or_else(|| "(untitled)".to_string(), clean)];
                    lines.extend(
                        section
                            .rows
                            .iter()
                            .map(|row| format!("  {}", format_choice(row))),
                    );
                    entry.field("section", &lines.join("\n"));
                }
            }
        }
        self.emit(&entry);
        Ok(SentMessage {
            message_id: self.next_message_id(),
        })
    }

    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        let head = format!(
            "WhatsApp {} from {} to {}",
            message.kind,
            clean(&message.sender.name),
            clean(&message.to)
        );
        let mut entry = Entry::header(DRY_RUN_TAG, &head);
        let (label, file) = format_source(&message.source);
        entry.field(label, &file);
        if let Some(filename) = &message.filename {
            entry.field("filename", filename);
        }
        if let Some(caption) = &message.caption {
            entry.field("caption", caption);
        }
        self.emit(&entry);
        Ok(SentMessage {
            message_id: self.next_message_id(),
        })
    }

    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        let n = self.uploads.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("media.dryrun.{n}");
        let head = format!(
            "WhatsApp upload for {}: {} ({}, {}) as {id}",
            clean(&upload.sender.name),
            clean(&upload.path),
            clean(&upload.mime_type),
            human_size(upload.bytes.len() as u64)
        );
        self.emit(&Entry::header(DRY_RUN_TAG, &head));
        Ok(id)
    }

    async fn media_info(
        &self,
        _sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        Ok(MediaInfo {
            id: media_id.to_string(),
            url: String::new(),
            mime_type: "text/plain".to_string(),
            sha256: None,
            file_size: None,
        })
    }

    /// A dry run reaches no account: the "download" is a short text file
    /// saying so, and the flow goes on as it would.
    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        _max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        let head = format!(
            "WhatsApp download for {} of media {}: a placeholder file (dry run)",
            clean(&sender.name),
            clean(&info.id)
        );
        self.emit(&Entry::header(DRY_RUN_TAG, &head));
        Ok(format!("dry run: the media {} was not downloaded\n", info.id).into_bytes())
    }

    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        let head = format!(
            "WhatsApp read receipt from {} for {}{}",
            clean(&receipt.sender.name),
            clean(&receipt.message_id),
            if receipt.typing { ", typing..." } else { "" }
        );
        self.emit(&Entry::header(DRY_RUN_TAG, &head));
        Ok(())
    }
}

#[async_trait]
impl Notify for Console {
    async fn notify(&self, channel: &str, message: &str) -> Result<(), ActionError> {
        let head = format!("notify {}: ", clean(channel));
        self.emit(&Entry::with_body(DRY_RUN_TAG, &head, message));
        Ok(())
    }
}

impl Log for Console {
    fn log(&self, flow: &str, level: &str, message: &str) {
        let tag = format!("[log {}]", clean(level));
        let head = format!("{}: ", clean(flow));
        self.emit(&Entry::with_body(&tag, &head, message));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A writer whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }

    fn console() -> (Console, Buffer) {
        let buffer = Buffer::default();
        (Console::new(Box::new(buffer.clone())), buffer)
    }

    fn sender() -> SenderRef {
        SenderRef {
            name: "berlin-office".into(),
            phone_number_id: "106540352242922".into(),
        }
    }

    fn reminder() -> TemplateMessage {
        TemplateMessage {
            sender: sender(),
            to: "+4915112345678".into(),
            recipient_name: Some("Anna Schmidt".into()),
            template: "appointment_reminder".into(),
            language: "en".into(),
            parameters: TemplateParameters::Positional(vec![
                "Anna Schmidt".into(),
                "Dr. Weber".into(),
                "03.12.2026 10:30".into(),
                "Berlin Mitte".into(),
            ]),
            header: None,
            buttons: Vec::new(),
            body: Some(
                "Hi {{1}}, a reminder of your appointment with {{2}} on {{3}}.\n\
                 Location: {{4}}\n\
                 Reply to this message if you need to reschedule."
                    .into(),
            ),
        }
    }

    #[tokio::test]
    async fn template_shows_variables_and_the_indented_preview() {
        let (console, buffer) = console();
        let sent = console.send_template(&reminder()).await.unwrap();
        assert_eq!(sent.message_id, "wamid.dryrun.1");
        assert_eq!(
            buffer.text(),
            concat!(
                "  [dry-run]   WhatsApp template \"appointment_reminder\" (en) from berlin-office to +4915112345678 (Anna Schmidt)\n",
                "              variables: \"Anna Schmidt\", \"Dr. Weber\", \"03.12.2026 10:30\", \"Berlin Mitte\"\n",
                "              message:   Hi Anna Schmidt, a reminder of your appointment with Dr. Weber on 03.12.2026 10:30.\n",
                "                         Location: Berlin Mitte\n",
                "                         Reply to this message if you need to reschedule.\n",
            )
        );
    }

    #[tokio::test]
    async fn template_without_variables_or_body() {
        let (console, buffer) = console();
        let message = TemplateMessage {
            recipient_name: None,
            template: "missed_you".into(),
            parameters: TemplateParameters::Positional(vec![]),
            header: None,
            buttons: Vec::new(),
            body: None,
            ..reminder()
        };
        console.send_template(&message).await.unwrap();
        assert_eq!(
            buffer.text(),
            concat!(
                "  [dry-run]   WhatsApp template \"missed_you\" (en) from berlin-office to +4915112345678\n",
                "              message:   (the template catalog has no body for this template)\n",
            )
        );
    }

    #[tokio::test]
    async fn named_parameters_are_shown_by_name() {
        let (console, buffer) = console();
        let message = TemplateMessage {
            template: "welcome".into(),
            parameters: TemplateParameters::Named(vec![("customer_name".into(), "Anna".into())]),
            header: None,
            buttons: Vec::new(),
            body: Some("Hi {{customer_name}}, welcome!".into()),
            ..reminder()
        };
        console.send_template(&message).await.unwrap();
        assert!(buffer
            .text()
            .contains("\n              variables: customer_name = \"Anna\"\n"));
    }

    #[tokio::test]
    async fn text_notify_and_log_are_aligned_and_ids_count_up() {
        let (console, buffer) = console();
        console.send_template(&reminder()).await.unwrap();
        let sent = console
            .send_text(&TextMessage {
                sender: sender(),
                to: "+4915112345678".into(),
                body: "Thanks for your message!\n\nSee you soon.".into(),
            })
            .await
            .unwrap();
        assert_eq!(sent.message_id, "wamid.dryrun.2");
        assert_eq!(console.message_count(), 2);
        console
            .notify("sales", "Please reply by hand:\nHello?")
            .await
            .unwrap();
        console.log("lead_qualification", "error", "answer not sent");
        console.log("lead_qualification", "info", "done");
        let text = buffer.text();
        let tail: String = text.lines().skip(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            tail,
            concat!(
                "  [dry-run]   WhatsApp text from berlin-office to +4915112345678\n",
                "              message:   Thanks for your message!\n",
                "\n",
                "                         See you soon.\n",
                "  [dry-run]   notify sales: Please reply by hand:\n",
                "                            Hello?\n",
                "  [log error] lead_qualification: answer not sent\n",
                "  [log info]  lead_qualification: done\n",
            )
        );
    }

    #[tokio::test]
    async fn control_characters_are_escaped_and_empty_texts_marked() {
        let (console, buffer) = console();
        console
            .notify("team", "red \u{1b}[31malert\r")
            .await
            .unwrap();
        console.log("f", "warn", "");
        assert_eq!(
            buffer.text(),
            concat!(
                "  [dry-run]   notify team: red \\u{1b}[31malert\\r\n",
                "  [log warn]  f: (empty)\n",
            )
        );
    }

    #[tokio::test]
    async fn write_errors_do_not_fail_a_run() {
        let console = Console::new(Box::new(ClosedPipe));
        assert!(console.send_template(&reminder()).await.is_ok());
        assert!(console.notify("team", "hello").await.is_ok());
        console.log("f", "info", "still fine");
        assert_eq!(
            console.sender_status(&sender()).await.unwrap(),
            SenderStatus::online()
        );
    }
}
