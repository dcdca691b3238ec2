//! The template catalog sync: merges the templates approved at Meta into
//! `flow.toml`, so `flowc check` validates against what is really approved.
//!
//! The file is edited in place with toml_edit: comments, order and every
//! other table stay as they were; only `[templates.NAME]` entries are added
//! or updated. Nothing is deleted: a template that is no longer approved is
//! reported, and the person decides.

use std::collections::BTreeMap;

use thiserror::Error;
use toml_edit::{value, DocumentMut, Item, Table};

use crate::config::Config;
use crate::providers::cloud_api::ApprovedTemplate;
use crate::source::FileId;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Templates new in flow.toml.
    pub added: Vec<String>,
    /// Templates whose language, category or body changed.
    pub updated: Vec<String>,
    /// Templates already up to date.
    pub unchanged: Vec<String>,
    /// Templates in flow.toml that Meta reports with another status, e.g.
    /// `("spring_sale", "PAUSED")`; `MISSING` when Meta does not list them.
    pub not_approved: Vec<(String, String)>,
    /// Approved templates left out, with the reason (another language of a
    /// template already in flow.toml, no body, an unknown category).
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
///     parameter_format: Some("POSITIONAL".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn template(name: &str, language: &str, status: &str, body: &str) -> ApprovedTemplate {
        ApprovedTemplate {
            name: name.into(),
            language: language.into(),
            status: status.into(),
            category: "utility".into(),
            body: Some(body.into()),
            parameter_format: None,
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
