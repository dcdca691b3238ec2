//! The template catalog sync: merges the templates approved at Meta into
//! `flow.toml`, so `flowc check` validates against what is really approved.
//!
//! The file is edited in place with toml_edit: comments, order and every
//! other table stay as they were; only `[templates.NAME]` entries are added
//! or updated. Nothing is deleted: a template that is no longer approved is
//! reported, and the person decides.
//!
//! Each entry gets Meta's `language`, `category` and `body`, its `header`
//! (`{ format = "text", text = "..." }` or `{ format = "image" }`,
//! `document`, `video`) and its `buttons` (`[{ type = "quick_reply", text =
//! "..." }, { type = "url", text = "...", url = "..." }, ...]`), written as
//! `flow.toml` reads them ([`crate::config`]); a `header` or `buttons` the
//! template no longer has is removed from its entry. An authentication
//! template's one-time-password button is written as `copy_code`.
//! Templates with parts `flow.toml` cannot describe (a location header,
//! flow or catalog buttons) are skipped with the reason.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};
use thiserror::Error;
use toml_edit::{value, Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::config::{Config, TemplateButtonKind};
use crate::providers::cloud_api::{ApprovedButton, ApprovedHeader, ApprovedTemplate};
use crate::source::FileId;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Templates new in flow.toml.
    pub added: Vec<String>,
    /// Templates whose language, category, body, header or buttons changed.
    pub updated: Vec<String>,
    /// Templates already up to date.
    pub unchanged: Vec<String>,
    /// Templates in flow.toml that Meta reports with another status, e.g.
    /// `("spring_sale", "PAUSED")`; `MISSING` when Meta does not list them.
    pub not_approved: Vec<(String, String)>,
    /// Approved templates left out, with the reason (another language of a
    /// template already in flow.toml, no body, an unknown category, a
    /// header or button flow.toml cannot describe).
    pub skipped: Vec<(String, String)>,
}

/// The merge could not be done.
#[derive(Debug, Error)]
pub enum MergeError {
    /// flow.toml is not valid TOML.
    #[error("flow.toml is not valid TOML: {0}")]
    Toml(String),
    /// `templates` exists but is not a table.
    #[error("flow.toml has `templates`, but it is not a table of [templates.NAME] entries")]
    NotATable,
    /// The merged file would not pass the configuration checks.
    #[error("the merged flow.toml would be invalid: {0}")]
    Invalid(String),
}

/// Merges `templates` (as read from Meta, every status) into the text of
/// flow.toml and returns the new text with a report.
///
/// ```
/// use flowc::catalog::merge_templates;
/// use flowc::providers::cloud_api::ApprovedTemplate;
///
/// let toml = "# our catalog\n[senders.office]\nphone_number_id = \"1\"\n";
/// let approved = ApprovedTemplate {
///     name: "missed_you".into(), language: "en".into(), status: "APPROVED".into(),
///     category: "utility".into(), body: Some("Hello {{1}}, we tried to call you.".into()),
///     parameter_format: Some("POSITIONAL".into()), header: None, buttons: vec![],
/// };
/// let (text, report) = merge_templates(toml, &[approved]).unwrap();
/// assert!(text.starts_with("# our catalog\n"));
/// assert!(text.contains("[templates.missed_you]"));
/// assert_eq!(report.added, ["missed_you"]);
/// ```
pub fn merge_templates(
    toml: &str,
    templates: &[ApprovedTemplate],
) -> Result<(String, MergeReport), MergeError> {
    let mut document: DocumentMut = toml
        .parse()
        .map_err(|e: toml_edit::TomlError| MergeError::Toml(e.to_string()))?;
    let mut report = MergeReport::default();

    let mut by_name: BTreeMap<&str, Vec<&ApprovedTemplate>> = BTreeMap::new();
    for template in templates {
        by_name
            .entry(template.name.as_str())
            .or_default()
            .push(template);
    }

    if !document.contains_key("templates") {
        let mut table = Table::new();
        table.set_implicit(true);
        document.insert("templates", Item::Table(table));
    }
    let catalog = document
        .get_mut("templates")
        .and_then(Item::as_table_mut)
        .ok_or(MergeError::NotATable)?;

    for (name, versions) in &by_name {
        let approved: Vec<&&ApprovedTemplate> =
            versions.iter().filter(|t| t.is_approved()).collect();
        let existing_language = catalog
            .get(name)
            .and_then(|entry| entry.get("language"))
            .and_then(Item::as_str)
            .map(String::from);
        if approved.is_empty() {
            if catalog.contains_key(name) {
                let status = versions.first().map_or("UNKNOWN", |t| t.status.as_str());
                report
                    .not_approved
                    .push((name.to_string(), status.to_string()));
            }
            continue;
        }
        // flow.toml holds one language per template name: keep the one it
        // has, else take Meta's first.
        let chosen = existing_language
            .as_deref()
            .and_then(|language| approved.iter().find(|t| t.language == language))
            .unwrap_or(&approved[0]);
        for other in approved.iter().filter(|t| t.language != chosen.language) {
            report.skipped.push((
                name.to_string(),
                format!(
                    "language {}: flow.toml keeps one language per template ({})",
                    other.language, chosen.language
                ),
            ));
        }
        let Some(body) = chosen.body.as_deref().filter(|b| !b.trim().is_empty()) else {
            report
                .skipped
                .push((name.to_string(), "it has no body text".to_string()));
            continue;
        };
        if chosen.template_category().is_none() {
            report.skipped.push((
                name.to_string(),
                format!("unknown category `{}`", chosen.category),
            ));
            continue;
        }
        let header = match chosen.header.as_ref().map(header_json).transpose() {
            Ok(header) => header,
            Err(reason) => {
                report.skipped.push((name.to_string(), reason));
                continue;
            }
        };
        let buttons = match buttons_json(&chosen.buttons) {
            Ok(buttons) => buttons,
            Err(reason) => {
                report.skipped.push((name.to_string(), reason));
                continue;
            }
        };
        let entry = catalog
            .entry(name)
            .or_insert_with(|| Item::Table(Table::new()));
        let Some(table) = entry.as_table_like_mut() else {
            report.skipped.push((
                name.to_string(),
                "its flow.toml entry is not a table".to_string(),
            ));
            continue;
        };
        let was_new = table.is_empty();
        let mut changed = false;
        for (key, new_value) in [
            ("language", chosen.language.as_str()),
            ("category", chosen.category.as_str()),
            ("body", body),
        ] {
            if table.get(key).and_then(Item::as_str) != Some(new_value) {
                table.insert(key, value(new_value));
                changed = true;
            }
        }
        for (key, new_value) in [("header", header), ("buttons", buttons)] {
            let old_value = table.get(key).and_then(item_json);
            if old_value == new_value {
                continue;
            }
            match new_value {
                Some(new_value) => {
                    table.insert(key, Item::Value(toml_value(&new_value)));
                }
                None => {
                    table.remove(key);
                }
            }
            changed = true;
        }
        if was_new {
            report.added.push(name.to_string());
        } else if changed {
            report.updated.push(name.to_string());
        } else {
            report.unchanged.push(name.to_string());
        }
    }

    let listed: Vec<String> = catalog.iter().map(|(name, _)| name.to_string()).collect();
    for name in listed {
        if !by_name.contains_key(name.as_str()) {
            report.not_approved.push((name, "MISSING".to_string()));
        }
    }

    let text = document.to_string();
    let (_, diagnostics) = Config::parse(&text, FileId(0));
    if let Some(problem) = diagnostics.iter().find(|d| d.is_error()) {
        return Err(MergeError::Invalid(problem.message.clone()));
    }
    Ok((text, report))
}

/// A header as flow.toml writes it: `{format, text?}`; an error for a
/// format flow.toml does not know.
fn header_json(header: &ApprovedHeader) -> Result<Json, String> {
    match (header.format.as_str(), &header.text) {
        ("text", Some(text)) => Ok(json!({"format": "text", "text": text})),
        ("text", None) => Err("its text header has no text".to_string()),
        (format @ ("image" | "document" | "video"), _) => Ok(json!({ "format": format })),
        (format, _) => Err(format!(
            "its {format} header cannot be described in flow.toml"
        )),
    }
}

/// The buttons as flow.toml writes them: `[{type, text, url?}, ...]`, or
/// `None` for none; an error for a button type flow.toml does not know.
fn buttons_json(buttons: &[ApprovedButton]) -> Result<Option<Json>, String> {
    if buttons.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for button in buttons {
        let (kind, text) = match button.kind.parse::<TemplateButtonKind>() {
            Ok(kind) => (kind, button.text.clone()),
            // An authentication template's one-time password: shown as a
            // copy-code button ("Copy code" unless Meta names it).
            Err(()) if button.kind == "otp" => {
                let text = Some(button.text.trim())
                    .filter(|t| !t.is_empty())
                    .unwrap_or("Copy code");
                (TemplateButtonKind::CopyCode, text.to_string())
            }
            Err(()) => {
                return Err(format!(
                    "its {} button cannot be described in flow.toml",
                    button.kind
                ))
            }
        };
        let mut entry = Map::new();
        entry.insert("type".into(), json!(kind.as_str()));
        entry.insert("text".into(), json!(text));
        if kind == TemplateButtonKind::Url {
            if let Some(url) = &button.url {
                entry.insert("url".into(), json!(url));
            }
        }
        out.push(Json::Object(entry));
    }
    Ok(Some(Json::Array(out)))
}

/// An item of flow.toml as plain JSON, for comparing what is there with
/// what Meta has, whatever the TOML form (inline or not) and formatting;
/// `None` for what these values never are (dates).
fn item_json(item: &Item) -> Option<Json> {
    match item {
        Item::Value(value) => value_json(value),
        Item::Table(table) => {
            let mut out = Map::new();
            for (key, item) in table.iter() {
                out.insert(key.to_string(), item_json(item)?);
            }
            Some(Json::Object(out))
        }
        Item::ArrayOfTables(array) => array
            .iter()
            .map(|table| item_json(&Item::Table(table.clone())))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array),
        Item::None => None,
    }
}

fn value_json(value: &Value) -> Option<Json> {
    Some(match value {
        Value::String(s) => json!(s.value()),
        Value::Integer(i) => json!(i.value()),
        Value::Float(f) => json!(f.value()),
        Value::Boolean(b) => json!(b.value()),
        Value::Datetime(_) => return None,
        Value::Array(array) => Json::Array(array.iter().map(value_json).collect::<Option<_>>()?),
        Value::InlineTable(table) => {
            let mut out = Map::new();
            for (key, value) in table.iter() {
                out.insert(key.to_string(), value_json(value)?);
            }
            Json::Object(out)
        }
    })
}

/// The TOML value of [`header_json`] or [`buttons_json`]: inline tables,
/// keys in the order flow.toml documents them; a list of buttons one per
/// line.
fn toml_value(json: &Json) -> Value {
    match json {
        Json::Array(items) => {
            let mut array = Array::new();
            for item in items {
                let mut item = toml_value(item);
                item.decor_mut().set_prefix("\n    ");
                array.push_formatted(item);
            }
            array.set_trailing_comma(true);
            array.set_trailing("\n");
            Value::Array(array)
        }
        Json::Object(map) => {
            let mut table = InlineTable::new();
            for key in ["format", "type", "text", "url"] {
                if let Some(value) = map.get(key) {
                    table.insert(key, toml_value(value));
                }
            }
            Value::InlineTable(table)
        }
        Json::String(s) => Value::from(s.as_str()),
        other => Value::from(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TemplateHeaderConfig;

    fn template(name: &str, language: &str, status: &str, body: &str) -> ApprovedTemplate {
        ApprovedTemplate {
            name: name.into(),
            language: language.into(),
            status: status.into(),
            category: "utility".into(),
            body: Some(body.into()),
            parameter_format: None,
            header: None,
            buttons: Vec::new(),
        }
    }

    const TOML: &str = "# Catalog kept by hand, then synced.\n\n[senders.office]\nphone_number_id = \"1\"\n\n[templates.reminder]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"Old {{1}}\"\nopt_out = false # kept\n\n[templates.gone]\nlanguage = \"en\"\ncategory = \"utility\"\nbody = \"Bye\"\n";

    #[test]
    fn merges_and_keeps_everything_else() {
        let templates = [
            template("reminder", "en", "APPROVED", "Hi {{1}}"),
            template("reminder", "de", "APPROVED", "Hallo {{1}}, bis morgen."),
            template("welcome", "en", "APPROVED", "Welcome {{customer_name}}!"),
            template("paused", "en", "PAUSED", "x"),
        ];
        let (text, report) = merge_templates(TOML, &templates).unwrap();
        assert!(text.starts_with("# Catalog kept by hand, then synced.\n"));
        assert!(text.contains("body = \"Hallo {{1}}, bis morgen.\""));
        assert!(text.contains("opt_out = false # kept"));
        assert_eq!(report.updated, ["reminder"]);
        assert_eq!(report.added, ["welcome"]);
        assert_eq!(
            report.not_approved,
            [("gone".to_string(), "MISSING".to_string())]
        );
        assert_eq!(report.skipped.len(), 1);
        let (config, diagnostics) = Config::parse(&text, FileId(0));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(config.templates["reminder"].language, "de");
    }

    #[test]
    fn a_second_merge_changes_nothing() {
        let templates = [template("welcome", "en", "APPROVED", "Welcome {{1}}")];
        let (once, _) = merge_templates(TOML, &templates).unwrap();
        let (twice, report) = merge_templates(&once, &templates).unwrap();
        assert_eq!(once, twice);
        assert_eq!(report.unchanged, ["welcome"]);
    }

    #[test]
    fn paused_templates_in_the_catalog_are_reported() {
        let (_, report) =
            merge_templates(TOML, &[template("reminder", "de", "PAUSED", "x")]).unwrap();
        assert!(report
            .not_approved
            .contains(&("reminder".to_string(), "PAUSED".to_string())));
    }

    fn button(kind: &str, text: &str, url: Option<&str>) -> ApprovedButton {
        ApprovedButton {
            kind: kind.into(),
            text: text.into(),
            url: url.map(str::to_string),
        }
    }

    fn order_shipped() -> ApprovedTemplate {
        ApprovedTemplate {
            header: Some(ApprovedHeader {
                format: "text".into(),
                text: Some("Order {{1}}".into()),
            }),
            buttons: vec![
                button("quick_reply", "Stop updates", None),
                button("url", "Track", Some("https://example.com/track/{{1}}")),
                button("phone_number", "Call us", None),
            ],
            ..template(
                "order_shipped",
                "en",
                "APPROVED",
                "Hi {{1}}, your order has shipped.",
            )
        }
    }

    #[test]
    fn headers_and_buttons_are_written() {
        let (text, report) = merge_templates(TOML, &[order_shipped()]).unwrap();
        assert_eq!(report.added, ["order_shipped"]);
        assert!(
            text.ends_with(
                "[templates.order_shipped]\nlanguage = \"en\"\ncategory = \"utility\"\n\
                 body = \"Hi {{1}}, your order has shipped.\"\n\
                 header = { format = \"text\", text = \"Order {{1}}\" }\n\
                 buttons = [\n    { type = \"quick_reply\", text = \"Stop updates\" },\n    \
                 { type = \"url\", text = \"Track\", url = \"https://example.com/track/{{1}}\" },\n    \
                 { type = \"phone_number\", text = \"Call us\" },\n]\n"
            ),
            "{text}"
        );
        let (config, diagnostics) = Config::parse(&text, FileId(0));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let entry = &config.templates["order_shipped"];
        assert!(matches!(
            &entry.header,
            Some(TemplateHeaderConfig::Text { text, .. }) if text == "Order {{1}}"
        ));
        let kinds: Vec<TemplateButtonKind> = entry.buttons.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                TemplateButtonKind::QuickReply,
                TemplateButtonKind::Url,
                TemplateButtonKind::PhoneNumber
            ]
        );

        // Again: nothing changes.
        let (twice, report) = merge_templates(&text, &[order_shipped()]).unwrap();
        assert_eq!(twice, text);
        assert_eq!(report.unchanged, ["order_shipped"]);
    }

    #[test]
    fn headers_and_buttons_are_compared_by_content_and_updated() {
        // The same header and buttons written by hand in other TOML forms.
        let by_hand = "[templates.order_shipped]\nlanguage = \"en\"\ncategory = \"utility\"\n\
                       body = \"Hi {{1}}, your order has shipped.\"\n\n\
                       [templates.order_shipped.header]\nformat = \"text\"\ntext = \"Order {{1}}\"\n\n\
                       [[templates.order_shipped.buttons]]\ntype = \"quick_reply\"\ntext = \"Stop updates\"\n\n\
                       [[templates.order_shipped.buttons]]\ntype = \"url\"\ntext = \"Track\"\n\
                       url = \"https://example.com/track/{{1}}\"\n\n\
                       [[templates.order_shipped.buttons]]\ntype = \"phone_number\"\ntext = \"Call us\"\n";
        let (text, report) = merge_templates(by_hand, &[order_shipped()]).unwrap();
        assert_eq!(report.unchanged, ["order_shipped"]);
        assert_eq!(text, by_hand);

        // Meta changed the header to an image and dropped the buttons.
        let changed = ApprovedTemplate {
            header: Some(ApprovedHeader {
                format: "image".into(),
                text: None,
            }),
            buttons: vec![],
            ..order_shipped()
        };
        let (text, report) = merge_templates(by_hand, &[changed]).unwrap();
        assert_eq!(report.updated, ["order_shipped"]);
        assert!(text.contains("header = { format = \"image\" }"), "{text}");
        assert!(!text.contains("buttons"), "{text}");
        let (config, diagnostics) = Config::parse(&text, FileId(0));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            config.templates["order_shipped"].header,
            Some(TemplateHeaderConfig::Media(crate::media::MediaKind::Image))
        );
    }

    #[test]
    fn one_time_passwords_are_copy_code_buttons() {
        let login = ApprovedTemplate {
            category: "authentication".into(),
            buttons: vec![button("otp", "", None)],
            ..template("login_code", "en", "APPROVED", "{{1}} is your code.")
        };
        let (text, _) = merge_templates("", &[login]).unwrap();
        assert!(
            text.contains("{ type = \"copy_code\", text = \"Copy code\" }"),
            "{text}"
        );
    }

    #[test]
    fn templates_flow_toml_cannot_describe_are_skipped() {
        let location = ApprovedTemplate {
            header: Some(ApprovedHeader {
                format: "location".into(),
                text: None,
            }),
            ..template("store_visit", "en", "APPROVED", "See you at {{1}}.")
        };
        let flow = ApprovedTemplate {
            buttons: vec![button("flow", "Book now", None)],
            ..template("booking", "en", "APPROVED", "Book a slot.")
        };
        let (text, report) = merge_templates(TOML, &[location, flow]).unwrap();
        assert!(report.added.is_empty());
        assert_eq!(
            report.skipped,
            [
                (
                    "booking".to_string(),
                    "its flow button cannot be described in flow.toml".to_string()
                ),
                (
                    "store_visit".to_string(),
                    "its location header cannot be described in flow.toml".to_string()
                ),
            ]
        );
        assert!(!text.contains("store_visit") && !text.contains("booking"));
    }

    #[test]
    fn bad_toml_is_an_error() {
        assert!(matches!(
            merge_templates("[templates", &[]),
            Err(MergeError::Toml(_))
        ));
        assert!(matches!(
            merge_templates("templates = 1", &[]),
            Err(MergeError::NotATable)
        ));
    }
}
