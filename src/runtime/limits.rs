//! The declared limits of an action (`Text(max: 20)`,
//! `[Button](min: 1, max: 3, unique: id)`, `@across(sections.rows, max: 10)`)
//! checked on the values a run computes, before the action runs.
//!
//! The checker refuses the literal values that break a limit; values computed
//! at run time (a title from a variable, buttons built from a list) are
//! checked here, with the same conditions and words (`check::limits`), so a
//! provider never sends WhatsApp a message it would reject.
//!
//! The interpreter calls [`violations`] with the bound arguments and fails
//! the action with the first one ([`LimitViolation::into_error`]).

use std::borrow::Cow;
use std::fmt;

use super::value::Value;
use super::ActionError;
use crate::check::limits::{action_violations, Breach, Inspect, TextLength};
use crate::check::schema::ActionSchema;

/// One broken limit of an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitViolation {
    /// Where, from the parameter: `buttons[3]`, `sections[0].rows[2].title`
    /// (indices from 0).
    pub path: String,
    /// What is wrong: `23 characters, more than the 20 allowed`.
    pub message: String,
    /// The limit broken.
    pub breach: Breach,
    /// Whether the place is a parameter itself (not inside one).
    pub top_level: bool,
}

impl LimitViolation {
    /// The action's error: a parameter's own text that is too long is
    /// `MessageTooLong` (as for `whatsapp.send_text`'s message), everything
    /// else an `InvalidRequest` naming the place.
    pub(crate) fn into_error(self) -> ActionError {
        match self.breach {
            Breach::TooLong { chars, max, .. } if self.top_level => {
                ActionError::MessageTooLong { chars, max }
            }
            _ => ActionError::InvalidRequest {
                message: self.to_string(),
            },
        }
    }
}

impl fmt::Display for LimitViolation {
    /// `buttons[1].title: 23 characters, more than the 20 allowed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every declared limit of `action` that the arguments break, in parameter
/// order; `arg` gives an argument's value by parameter name (`None` when
/// the call leaves it out).
pub(crate) fn violations<'v>(
    action: &ActionSchema,
    arg: impl Fn(&str) -> Option<&'v Value>,
) -> Vec<LimitViolation> {
    action_violations(action, arg)
        .into_iter()
        .map(|violation| {
            let mut message = violation.breach.to_string();
            if let Some((_, first_path)) = &violation.first {
                message.push_str(&format!(" (first at {first_path})"));
            }
            LimitViolation {
                path: violation.path,
                message,
                breach: violation.breach,
                top_level: violation.top_level,
            }
        })
        .collect()
}

impl Inspect for Value {
    fn text_length(&self) -> Option<TextLength> {
        self.as_str().map(|text| TextLength {
            chars: text.chars().count(),
            exact: true,
        })
    }

    fn text(&self) -> Option<Cow<'_, str>> {
        self.as_str().map(Cow::Borrowed)
    }

    fn items(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<&Value> {
        Value::field(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Compiler;

    fn action(name: &str) -> ActionSchema {
        let checked = Compiler::new().check();
        let schemas = checked
            .into_result()
            .map(|program| program.schemas().clone());
        match schemas {
            Ok(schemas) => schemas.actions[name].clone(),
            Err(e) => panic!("{e}"),
        }
    }

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    fn button(id: &str, title: &str) -> Value {
        Value::record([("id", text(id)), ("title", text(title))])
    }

    fn messages(action: &ActionSchema, args: &[(&str, Value)]) -> Vec<String> {
        violations(action, |name| {
            args.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
        })
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn buttons_are_counted_measured_and_told_apart() {
        let send_buttons = action("whatsapp.send_buttons");
        let buttons = Value::List(vec![
            button("yes", "Yes"),
            button("no", "A title of twenty-three"),
            button("yes", "Again"),
            button("later", "Later"),
        ]);
        assert_eq!(
            messages(
                &send_buttons,
                &[("body", text("Shall we?")), ("buttons", buttons)]
            ),
            [
                "buttons[3]: 4 buttons, more than the 3 allowed",
                "buttons[2].id: `id` \"yes\" appears twice; each `id` must be unique (first at buttons[0].id)",
                "buttons[1].title: 23 characters, more than the 20 allowed",
            ]
        );
        assert_eq!(
            messages(&send_buttons, &[("buttons", Value::List(Vec::new()))]),
            ["buttons: no buttons, at least 1 button needed"]
        );
        let fine = Value::List(vec![button("yes", "Yes"), button("no", "No")]);
        assert!(messages(&send_buttons, &[("buttons", fine)]).is_empty());
    }

    #[test]
    fn list_rows_are_counted_across_sections() {
        let send_list = action("whatsapp.send_list");
        let rows = |from: usize, to: usize| {
            Value::List(
                (from..to)
                    .map(|i| button(&format!("r{i}"), "Row"))
                    .collect(),
            )
        };
        let section = |rows: Value| Value::record([("title", text("Plans")), ("rows", rows)]);
        let sections = Value::List(vec![section(rows(0, 6)), section(rows(5, 10))]);
        assert_eq!(
            messages(&send_list, &[("sections", sections)]),
            [
                "sections[1].rows[4]: 11 list rows, more than the 10 allowed",
                "sections[1].rows[0].id: `id` \"r5\" appears twice; each `id` must be unique (first at sections[0].rows[5].id)",
            ]
        );
    }

    #[test]
    fn texts_of_parameters_are_measured() {
        let send_text = action("whatsapp.send_text");
        assert_eq!(
            messages(&send_text, &[("message", text(&"x".repeat(4097)))]),
            ["message: 4097 characters, more than the 4096 allowed"]
        );
        assert!(messages(&send_text, &[("message", Value::None)]).is_empty());
    }
}
