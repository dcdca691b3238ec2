//! The rich WhatsApp actions: reply buttons and lists, media by link, id or
//! local file, uploads, downloads, and read receipts.
//!
//! Every value a flow computed is checked here before a provider sees it,
//! with the same limits the checker applies to literals: a message the Cloud
//! API would refuse fails with a clear error and is never sent. Sends go
//! through [`Ctx::deliver`] like text and templates: paced, claimed in the
//! store and made at most once.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{recipient, text, Args, Ctx};
use crate::config::{
    Placeholders, TemplateButtonKind, TemplateCategory, TemplateConfig, TemplateHeaderConfig,
    MAX_COPY_CODE_CHARS,
};
use crate::media::{human_size, MediaKind};
use crate::providers::{
    Choice, Choices, InteractiveMessage, ListSection, MediaMessage, MediaSource, MediaUpload,
    ReadReceipt, SenderRef, TemplateButton, TemplateButtonParameter, TemplateHeader,
};
use crate::runtime::value::Value;
use crate::runtime::ActionError;

/// The most bytes of a local file the runtime reads to upload: the largest
/// media WhatsApp takes.
const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

fn invalid(message: String) -> ActionError {
    ActionError::InvalidRequest { message }
}

fn media_error(message: String) -> ActionError {
    ActionError::Media { message }
}

/// An optional text argument, `None` when left out or empty.
fn optional_text(args: &Args<'_>, name: &str) -> Option<String> {
    text(args, name).filter(|t| !t.is_empty()).map(String::from)
}

/// A required text of a record: `what` names it in errors.
fn field_text(value: &Value, field: &str, what: &str) -> Result<String, ActionError> {
    match value.field(field).and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        _ => Err(invalid(format!("{what} has no `{field}`"))),
    }
}

/// The choices of `buttons: [Button]`.
fn buttons(value: Option<&Value>) -> Result<Vec<Choice>, ActionError> {
    let Some(Value::List(items)) = value else {
        return Err(invalid("`buttons` is not a list of buttons".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("button {}", i + 1);
            Ok(Choice {
                id: field_text(item, "id", &what)?,
                title: field_text(item, "title", &what)?,
                description: None,
            })
        })
        .collect()
}

/// The sections of `sections: [ListSection]`.
fn sections(value: Option<&Value>) -> Result<Vec<ListSection>, ActionError> {
    let Some(Value::List(items)) = value else {
        return Err(invalid("`sections` is not a list of sections".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(s, section)| {
            let Some(Value::List(rows)) = section.field("rows") else {
                return Err(invalid(format!("section {} has no `rows`", s + 1)));
            };
            let rows = rows
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    let what = format!("row {} of section {}", r + 1, s + 1);
                    Ok(Choice {
                        id: field_text(row, "id", &what)?,
                        title: field_text(row, "title", &what)?,
                        description: row
                            .field("description")
                            .and_then(Value::as_str)
                            .filter(|d| !d.is_empty())
                            .map(String::from),
                    })
                })
                .collect::<Result<Vec<_>, ActionError>>()?;
            Ok(ListSection {
                title: section
                    .field("title")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(String::from),
                rows,
            })
        })
        .collect()
}

/// The Cloud API's rule for choices that the declared limits (counts,
/// lengths, unique ids: checked before the action runs) cannot say: a list
/// with several sections needs a title for each.
fn check_choices(choices: &Choices) -> Result<(), ActionError> {
    if let Choices::List { sections, .. } = choices {
        if sections.len() > 1 && sections.iter().any(|s| s.title.is_none()) {
            return Err(invalid(
                "a list with several sections needs a title for each section".into(),
            ));
        }
    }
    Ok(())
}

/// Where a media send's file comes from: exactly one of `link`, `media_id`
/// and `file`.
enum Source {
    Ready(MediaSource),
    LocalFile(String),
}

fn media_source(args: &Args<'_>) -> Result<Source, ActionError> {
    let given: Vec<(&str, String)> = ["link", "media_id", "file"]
        .into_iter()
        .filter_map(|name| optional_text(args, name).map(|value| (name, value)))
        .collect();
    match given.as_slice() {
        [("link", link)] => {
            if !(link.starts_with("https://") || link.starts_with("http://")) {
                return Err(invalid(format!(
                    "the link \"{link}\" is not an http(s) address WhatsApp can download from"
                )));
            }
            Ok(Source::Ready(MediaSource::Link(link.clone())))
        }
        [("media_id", id)] => Ok(Source::Ready(MediaSource::Id(id.clone()))),
        [(_, file)] => Ok(Source::LocalFile(file.clone())),
        [] => Err(invalid(
            "give the file as one of `link`, `media_id` or `file`; none was given".into(),
        )),
        several => Err(invalid(format!(
            "give the file as only one of `link`, `media_id` or `file`; this send gave {}",
            several
                .iter()
                .map(|(name, _)| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// Reads a local file for upload, with its mime type (given, or from the
/// extension) checked against `kind` when the file will be sent as one.
async fn read_local_file(
    sender: &SenderRef,
    path: &str,
    mime_type: Option<String>,
    kind: Option<MediaKind>,
) -> Result<MediaUpload, ActionError> {
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|e| media_error(format!("cannot read the file \"{path}\": {e}")))?;
    if !metadata.is_file() {
        return Err(media_error(format!("\"{path}\" is not a file")));
    }
    let limit = kind.map_or(MAX_UPLOAD_BYTES, MediaKind::max_bytes);
    let from_extension = MediaKind::from_extension(path);
    let mime_type = match (mime_type, from_extension, kind) {
        (Some(mime), _, _) => mime,
        (None, Some((mime, _)), _) => mime.to_string(),
        (None, None, Some(MediaKind::Document) | None) => "application/octet-stream".to_string(),
        (None, None, Some(kind)) => {
            return Err(media_error(format!(
                "cannot tell the type of \"{path}\" from its name: send {kind}s as {}",
                kind.describe()
            )))
        }
    };
    if let Some(kind) = kind {
        kind.check(Some(&mime_type), Some(metadata.len()))
            .map_err(|problem| media_error(format!("\"{path}\": {problem}")))?;
    } else if metadata.len() > limit {
        return Err(media_error(format!(
            "\"{path}\" has {}; WhatsApp takes at most {}",
            human_size(metadata.len()),
            human_size(limit)
        )));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| media_error(format!("cannot read the file \"{path}\": {e}")))?;
    let file_name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_string();
    Ok(MediaUpload {
        sender: sender.clone(),
        path: path.to_string(),
        file_name,
        mime_type,
        bytes,
    })
}

/// A file name safe to join to the media directory: no separators, no
/// leading dots, at most 120 characters.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "media".to_string()
    } else {
        cleaned.to_string()
    }
}

/// The extension a downloaded file gets from its mime type.
fn extension_for(mime: &str) -> &'static str {
    let essence = mime.split(';').next().unwrap_or("").trim();
    match essence {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/ogg" => "ogg",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// A template's header and button parameters from the send's `header` and
/// `buttons`, checked against the catalog entry.
pub(super) fn template_extras(
    name: &str,
    template: &TemplateConfig,
    header: Option<&Value>,
    header_filename: Option<&Value>,
    buttons: Option<&Value>,
) -> Result<(Option<TemplateHeader>, Vec<TemplateButton>), ActionError> {
    let mismatch = |reason: String| ActionError::TemplateParams {
        template: name.to_string(),
        reason,
    };
    let header_value = header.and_then(Value::as_str).filter(|h| !h.is_empty());
    let header = match (&template.header, header_value) {
        (Some(TemplateHeaderConfig::Text { placeholders, .. }), Some(text))
            if placeholders.count() == 1 =>
        {
            let name = match placeholders {
                Placeholders::Named(names) => names.first().cloned(),
                Placeholders::Positional(_) => None,
            };
            Some(TemplateHeader::Text {
                name,
                text: text.to_string(),
            })
        }
        (Some(TemplateHeaderConfig::Media(kind)), Some(file)) => {
            let source = if file.starts_with("https://") || file.starts_with("http://") {
                if let Some((mime, _)) = MediaKind::from_extension(file) {
                    kind.check(Some(mime), None)
                        .map_err(|problem| mismatch(format!("header {file}: {problem}")))?;
                }
                MediaSource::Link(file.to_string())
            } else {
                MediaSource::Id(file.to_string())
            };
            Some(TemplateHeader::Media {
                kind: *kind,
                source,
                filename: header_filename
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty() && kind.takes_filename())
                    .map(String::from),
            })
        }
        (Some(TemplateHeaderConfig::Text { placeholders, .. }), None)
            if placeholders.count() == 1 =>
        {
            return Err(mismatch(
                "its header has a placeholder: pass its value as `header`".into(),
            ))
        }
        (Some(TemplateHeaderConfig::Media(kind)), None) => {
            return Err(mismatch(format!(
                "its header is {} {kind}: pass the file as `header` (an https link or a media id)",
                if *kind == MediaKind::Image { "an" } else { "a" }
            )))
        }
        (_, Some(_)) => {
            return Err(mismatch(
                "`header` was given, but the template's header takes no parameter".into(),
            ))
        }
        (_, None) => None,
    };
    let takes: Vec<(usize, TemplateButtonKind, &str)> = template
        .buttons
        .iter()
        .enumerate()
        .filter(|(_, b)| b.takes_parameter())
        .map(|(i, b)| (i, b.kind, b.text.as_str()))
        .collect();
    let given: Vec<String> = match buttons {
        None | Some(Value::None) => Vec::new(),
        Some(Value::List(items)) => items.iter().map(ToString::to_string).collect(),
        Some(_) => return Err(mismatch("`buttons` is not a list of texts".into())),
    };
    let buttons = if given.is_empty() {
        // Quick replies without a payload send their text; a URL with a
        // placeholder cannot go out without its end, nor a copy-code button
        // without its code.
        match takes
            .iter()
            .find(|(_, kind, _)| *kind != TemplateButtonKind::QuickReply)
        {
            Some((_, TemplateButtonKind::CopyCode, text)) => {
                return Err(mismatch(format!(
                    "its button \"{text}\" copies a code: pass the code in `buttons`"
                )))
            }
            Some((_, _, text)) => {
                return Err(mismatch(format!(
                    "its button \"{text}\" links to an address with a placeholder: pass its end in `buttons`"
                )))
            }
            None => {}
        }
        Vec::new()
    } else if given.len() != takes.len() {
        return Err(mismatch(format!(
            "`buttons` has {} value(s), the template has {} button(s) that take one",
            given.len(),
            takes.len()
        )));
    } else {
        let authentication = template.category == TemplateCategory::Authentication;
        takes
            .iter()
            .zip(given)
            .map(|(&(index, kind, _), value)| {
                let chars = value.chars().count();
                if kind == TemplateButtonKind::CopyCode && chars > MAX_COPY_CODE_CHARS {
                    return Err(mismatch(format!(
                        "the code \"{value}\" has {chars} characters; a copy-code button copies at most {MAX_COPY_CODE_CHARS}"
                    )));
                }
                let parameter = match kind {
                    TemplateButtonKind::Url => TemplateButtonParameter::UrlSuffix(value),
                    // To Meta, an authentication template's copy-code
                    // button is a URL button that carries the code.
                    TemplateButtonKind::CopyCode if authentication => {
                        TemplateButtonParameter::UrlSuffix(value)
                    }
                    TemplateButtonKind::CopyCode => TemplateButtonParameter::CouponCode(value),
                    TemplateButtonKind::QuickReply | TemplateButtonKind::PhoneNumber => {
                        TemplateButtonParameter::Payload(value)
                    }
                };
                Ok(TemplateButton { index, parameter })
            })
            .collect::<Result<Vec<_>, ActionError>>()?
    };
    Ok((header, buttons))
}

impl Ctx<'_> {
    /// `whatsapp.send_buttons` and `whatsapp.send_list`.
    pub(super) async fn send_choices(
        &self,
        mut args: Args<'_>,
        list: bool,
        wanted: bool,
    ) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let to = recipient(&mut args)?;
        let args = &args;
        let choices = if list {
            Choices::List {
                button: text(args, "button").unwrap_or("").to_string(),
                sections: sections(args.get("sections"))?,
            }
        } else {
            Choices::Buttons(buttons(args.get("buttons"))?)
        };
        check_choices(&choices)?;
        self.ensure_window(&sender, &to).await?;
        self.ensure_online(&sender).await?;
        let message = InteractiveMessage {
            sender,
            to,
            header: optional_text(args, "header"),
            body: text(args, "body").unwrap_or("").to_string(),
            footer: optional_text(args, "footer"),
            choices,
        };
        let whatsapp = &self.inner.whatsapp;
        self.deliver(
            &message.sender,
            &message.to,
            None,
            whatsapp.send_interactive(&message),
            wanted,
        )
        .await
    }

    /// `whatsapp.send_image`, `send_document`, `send_audio`, `send_video`
    /// and `send_sticker`. A local `file` is uploaded inside the send, so a
    /// send that was already made (a resumed run) uploads nothing.
    pub(super) async fn send_media(
        &self,
        mut args: Args<'_>,
        kind: MediaKind,
        wanted: bool,
    ) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let to = recipient(&mut args)?;
        let args = &args;
        let source = media_source(args)?;
        if let Source::Ready(MediaSource::Link(link)) = &source {
            if let Some((mime, _)) = MediaKind::from_extension(link) {
                kind.check(Some(mime), None)
                    .map_err(|problem| media_error(format!("{link}: {problem}")))?;
            }
        }
        let caption = optional_text(args, "caption").filter(|_| kind.takes_caption());
        let filename = optional_text(args, "filename").filter(|_| kind.takes_filename());
        self.ensure_window(&sender, &to).await?;
        self.ensure_online(&sender).await?;
        let whatsapp = &self.inner.whatsapp;
        let send = async {
            let source = match source {
                Source::Ready(source) => source,
                Source::LocalFile(path) => {
                    let upload = read_local_file(&sender, &path, None, Some(kind)).await?;
                    MediaSource::Id(whatsapp.upload_media(&upload).await?)
                }
            };
            let message = MediaMessage {
                sender: sender.clone(),
                to: to.clone(),
                kind,
                source,
                caption,
                filename,
            };
            whatsapp.send_media(&message).await
        };
        self.deliver(&sender, &to, None, send, wanted).await
    }

    /// `whatsapp.upload_media`: the media id of an uploaded local file.
    pub(super) async fn upload_media(&self, mut args: Args<'_>) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let args = &args;
        let path = text(args, "file").unwrap_or("");
        let upload = read_local_file(&sender, path, optional_text(args, "mime_type"), None).await?;
        let whatsapp = &self.inner.whatsapp;
        let id = self
            .guarded("WhatsApp", whatsapp.upload_media(&upload))
            .await?;
        Ok(Value::String(id))
    }

    /// `whatsapp.download_media`: looks the media up, downloads it (at most
    /// `max_bytes`) and saves it in the media directory, with its SHA-256.
    pub(super) async fn download_media(&self, mut args: Args<'_>) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let args = &args;
        let media_id = text(args, "media_id").unwrap_or("");
        if media_id.is_empty() {
            return Err(invalid(
                "`media_id` is empty: only messages with media have one".into(),
            ));
        }
        let max_bytes = match args.get("max_bytes") {
            Some(Value::Int(n)) if *n > 0 => u64::try_from(*n).unwrap_or(MAX_UPLOAD_BYTES),
            Some(Value::Int(n)) => {
                return Err(invalid(format!("`max_bytes` must be positive, not {n}")))
            }
            _ => MAX_UPLOAD_BYTES,
        };
        let whatsapp = &self.inner.whatsapp;
        let info = self
            .guarded("WhatsApp", whatsapp.media_info(&sender, media_id))
            .await?;
        if let Some(size) = info.file_size.filter(|size| *size > max_bytes) {
            return Err(media_error(format!(
                "the media {media_id} has {}, more than the {} this download accepts",
                human_size(size),
                human_size(max_bytes)
            )));
        }
        let bytes = self
            .guarded(
                "WhatsApp",
                whatsapp.download_media(&sender, &info, max_bytes),
            )
            .await?;
        if bytes.len() as u64 > max_bytes {
            return Err(media_error(format!(
                "the media {media_id} has more than the {} this download accepts",
                human_size(max_bytes)
            )));
        }
        // The provider checked the bytes against the checksum WhatsApp
        // reported (hex or base64); the flow gets it as hex.
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let name = format!(
            "{}.{}",
            safe_file_name(media_id),
            extension_for(&info.mime_type)
        );
        let path = self.save_media(&name, &bytes).await?;
        Ok(Value::record([
            ("path", Value::String(path.display().to_string())),
            ("mime_type", Value::String(info.mime_type)),
            (
                "bytes",
                Value::Int(i64::try_from(bytes.len()).unwrap_or(i64::MAX)),
            ),
            ("sha256", Value::String(sha256)),
        ]))
    }

    /// Writes a downloaded file into the media directory, whole or not at
    /// all (a temporary file renamed into place).
    async fn save_media(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ActionError> {
        let dir = &self.inner.media_dir;
        let failed = |e: std::io::Error| {
            media_error(format!(
                "cannot save the media in \"{}\": {e}",
                dir.display()
            ))
        };
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        let path = dir.join(name);
        let partial = dir.join(format!(".{name}.partial"));
        tokio::fs::write(&partial, bytes).await.map_err(failed)?;
        if let Err(e) = tokio::fs::rename(&partial, &path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(failed(e));
        }
        Ok(path)
    }

    /// `whatsapp.mark_read`.
    pub(super) async fn mark_read(&self, mut args: Args<'_>) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let args = &args;
        let message_id = text(args, "message_id").unwrap_or("");
        if message_id.is_empty() {
            return Err(invalid("`message_id` is empty".into()));
        }
        let receipt = ReadReceipt {
            sender,
            message_id: message_id.to_string(),
            typing: matches!(args.get("typing"), Some(Value::Bool(true))),
        };
        let whatsapp = &self.inner.whatsapp;
        self.guarded("WhatsApp", whatsapp.mark_read(&receipt))
            .await?;
        Ok(Value::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(id: &str) -> Choice {
        Choice {
            id: id.into(),
            title: id.into(),
            description: None,
        }
    }

    #[test]
    fn several_sections_need_titles() {
        let section = |title: Option<&str>, id: &str| ListSection {
            title: title.map(String::from),
            rows: vec![choice(id)],
        };
        let untitled = Choices::List {
            button: "Pick".into(),
            sections: vec![section(Some("A"), "a"), section(None, "b")],
        };
        assert!(check_choices(&untitled)
            .unwrap_err()
            .to_string()
            .contains("needs a title for each section"));
        let one = Choices::List {
            button: "Pick".into(),
            sections: vec![section(None, "a")],
        };
        assert!(check_choices(&one).is_ok());
    }

    #[test]
    fn file_names_cannot_leave_the_media_directory() {
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_file_name("..."), "media");
        assert_eq!(safe_file_name("wamid.HBgN=="), "wamid.HBgN__");
        assert_eq!(extension_for("audio/ogg; codecs=opus"), "ogg");
    }
}
