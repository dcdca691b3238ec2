//! Declared limits: how long a text may be and how many items a list may
//! have, as declarations write them (`Text(max: 20)`,
//! `[Button](min: 1, max: 3, unique: id)`, `@across(sections.rows, max: 10)`).
//!
//! The conditions and their wording live here once. The checker applies them
//! to the literal parts of arguments ([`Inspect`] for expressions), the
//! runtime to the values a run computes (`runtime/limits.rs`), so both stages
//! refuse the same things with the same words.

use std::borrow::Cow;
use std::fmt;

use super::schema::ActionSchema;
use super::types::Ty;
use crate::syntax::ast::{Expr, ExprKind, StrPart};

/// The limits declared for one place: a parameter, a record field, or the
/// items of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredLimits {
    /// `Text(max: N)`: the most characters a text may have.
    pub max_chars: Option<usize>,
    /// `[T](min: N)`: the fewest items a list may have.
    pub min_items: Option<usize>,
    /// `[T](max: N)`: the most items a list may have.
    pub max_items: Option<usize>,
    /// `[T](unique: FIELD)`: no two items may have the same FIELD.
    pub unique: Option<String>,
    /// The limits of each item of a list: `[Text(max: 20)]`.
    pub items: Option<Box<DeclaredLimits>>,
}

/// `@across(sections.rows, max: 10, unique: id)`: limits on the items of
/// nested lists taken together (all rows of all sections).
#[derive(Debug, Clone, PartialEq)]
pub struct AcrossLimits {
    /// The path from a parameter through record fields to the lists, e.g.
    /// `["sections", "rows"]`.
    pub path: Vec<String>,
    /// The limits of the items taken together (`min`, `max`, `unique`).
    pub limits: DeclaredLimits,
    /// The type of one item, for the wording ("list rows").
    pub item_ty: Ty,
}

/// One broken limit, in the words both the checker and the runtime use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breach {
    /// A text with more characters than allowed. `exact` is false when only
    /// the literal parts of an interpolated string were counted.
    TooLong {
        /// The characters counted.
        chars: usize,
        /// The most allowed.
        max: usize,
        /// Whether `chars` counts the whole text.
        exact: bool,
    },
    /// A list with fewer items than needed.
    TooFew {
        /// The items it has.
        items: usize,
        /// The fewest allowed.
        min: usize,
        /// What one item is called, e.g. "button".
        noun: String,
    },
    /// A list with more items than allowed.
    TooMany {
        /// The items it has.
        items: usize,
        /// The most allowed.
        max: usize,
        /// What one item is called, e.g. "button".
        noun: String,
    },
    /// Two items with the same value of a field that must be unique.
    Duplicate {
        /// The field, e.g. `id`.
        field: String,
        /// The repeated value.
        value: String,
    },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::TooLong { chars, max, exact } => {
                let counted = if *exact { "" } else { " before interpolation" };
                write!(
                    f,
                    "{} characters{counted}, more than the {max} allowed",
                    chars
                )
            }
            Breach::TooFew { items, min, noun } => {
                write!(
                    f,
                    "{}, at least {} needed",
                    counted(*items, noun),
                    counted(*min, noun)
                )
            }
            Breach::TooMany { items, max, noun } => {
                write!(f, "{}, more than the {max} allowed", counted(*items, noun))
            }
            Breach::Duplicate { field, value } => {
                write!(
                    f,
                    "`{field}` \"{value}\" appears twice; each `{field}` must be unique"
                )
            }
        }
    }
}

/// `no buttons`, `1 button`, `4 buttons`.
pub(crate) fn counted(n: usize, noun: &str) -> String {
    match n {
        0 => format!("no {noun}s"),
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// What one value of a type is called in messages: `ListRow` is a "list
/// row", a text an "item".
pub(crate) fn noun(ty: &Ty) -> String {
    match ty.non_optional() {
        Ty::Record(record) => match &record.name {
            Some(name) => {
                let mut words = String::new();
                for (i, c) in name.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        words.push(' ');
                    }
                    words.extend(c.to_lowercase());
                }
                words
            }
            None => "record".to_string(),
        },
        Ty::List(_) => "list".to_string(),
        _ => "item".to_string(),
    }
}

impl DeclaredLimits {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        *self == DeclaredLimits::default()
    }

    /// The breach of a text of `chars` characters (`exact`: counted in full).
    pub fn check_chars(&self, chars: usize, exact: bool) -> Option<Breach> {
        let max = self.max_chars?;
        (chars > max).then_some(Breach::TooLong { chars, max, exact })
    }

    /// The breach of the item count of a list of `items` items; `complete`
    /// says whether every item is known (a lower bound is only checked
    /// against the maximum).
    pub fn check_count(&self, items: usize, complete: bool, noun: &str) -> Option<Breach> {
        if let Some(max) = self.max_items.filter(|max| items > *max) {
            return Some(Breach::TooMany {
                items,
                max,
                noun: noun.to_string(),
            });
        }
        let min = self.min_items.filter(|min| complete && items < *min)?;
        Some(Breach::TooFew {
            items,
            min,
            noun: noun.to_string(),
        })
    }

    /// The declaration's arguments as written: `max: 3, unique: id`.
    pub fn args_text(&self) -> String {
        let mut args = Vec::new();
        if let Some(min) = self.min_items {
            args.push(format!("min: {min}"));
        }
        if let Some(max) = self.max_items.or(self.max_chars) {
            args.push(format!("max: {max}"));
        }
        if let Some(field) = &self.unique {
            args.push(format!("unique: {field}"));
        }
        args.join(", ")
    }
}

/// A type as declarations write it, with its limits:
/// `[Button](min: 1, max: 3, unique: id)?`, `Text(max: 20)`.
pub fn type_text(ty: &Ty, limits: &DeclaredLimits) -> String {
    let optional = matches!(ty, Ty::Optional(_));
    let base = match ty.non_optional() {
        Ty::List(element) => {
            let items = limits.items.as_deref().cloned().unwrap_or_default();
            format!("[{}]", type_text(element, &items))
        }
        other if limits.max_chars.is_some() && other.is_text() => "Text".to_string(),
        other => other.to_string(),
    };
    let args = limits.args_text();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({args})")
    };
    format!("{base}{args}{}", if optional { "?" } else { "" })
}

/// How many characters a text has, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLength {
    /// The characters counted.
    pub chars: usize,
    /// Whether the whole text was counted (not only the literal parts of an
    /// interpolated string).
    pub exact: bool,
}

/// A value the limits can be checked on: a run-time value, or the literal
/// parts of an expression. Each method answers `None` where the value is
/// not of that shape or not known.
pub(crate) trait Inspect {
    /// The length of a text.
    fn text_length(&self) -> Option<TextLength>;
    /// The text, when known in full.
    fn text(&self) -> Option<Cow<'_, str>>;
    /// The items of a list, when the list is known.
    fn items(&self) -> Option<&[Self]>
    where
        Self: Sized;
    /// A field of a record, when the record is known.
    fn field(&self, name: &str) -> Option<&Self>;
}

impl Inspect for Expr {
    fn text_length(&self) -> Option<TextLength> {
        let ExprKind::Str(parts) = &self.kind else {
            return None;
        };
        let mut length = TextLength {
            chars: 0,
            exact: true,
        };
        for part in parts {
            match part {
                StrPart::Text(text) => length.chars += text.chars().count(),
                StrPart::Expr(_) => length.exact = false,
            }
        }
        Some(length)
    }

    fn text(&self) -> Option<Cow<'_, str>> {
        self.kind.as_plain_str().map(Cow::Owned)
    }

    fn items(&self) -> Option<&[Expr]> {
        match &self.kind {
            ExprKind::List(items) => Some(items),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<&Expr> {
        match &self.kind {
            ExprKind::Record(fields) => fields
                .iter()
                .find(|(key, _)| key.name == name)
                .map(|(_, value)| value),
            _ => None,
        }
    }
}

/// A broken limit at one place of an argument.
#[derive(Debug)]
pub(crate) struct Violation<'v, V> {
    /// Where, from the parameter: `buttons[3].title` (indices from 0).
    pub path: String,
    /// The offending value: the text, the first item past the maximum, the
    /// list with too few items, or the second of two duplicates.
    pub at: &'v V,
    /// For a duplicate: the first value and its path.
    pub first: Option<(&'v V, String)>,
    /// What is broken.
    pub breach: Breach,
    /// Whether the place is a parameter itself (not inside one).
    pub top_level: bool,
}

/// Every limit of `action` that its arguments break; `arg` gives the value
/// of a parameter by name, if the call has it.
pub(crate) fn action_violations<'v, V: Inspect>(
    action: &ActionSchema,
    arg: impl Fn(&str) -> Option<&'v V>,
) -> Vec<Violation<'v, V>> {
    let mut out = Vec::new();
    for param in action.params.iter().filter(|param| param.limited) {
        if let Some(value) = arg(&param.name) {
            value_violations(&param.ty, &param.limits, value, &param.name, &mut out);
        }
    }
    for across in &action.across {
        let Some((first, rest)) = across.path.split_first() else {
            continue;
        };
        let Some(value) = arg(first) else {
            continue;
        };
        // Each step goes into the items of the lists so far and takes the
        // field of each: sections -> each section's rows.
        let mut lists = vec![(value, first.clone())];
        let mut complete = true;
        for step in rest {
            let mut next = Vec::new();
            for (list, path) in lists {
                let Some(items) = list.items() else {
                    complete = false;
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    match item.field(step) {
                        Some(inner) => next.push((inner, format!("{path}[{i}].{step}"))),
                        None => complete = false,
                    }
                }
            }
            lists = next;
        }
        let mut items: Vec<(&V, String)> = Vec::new();
        for (list, path) in lists {
            match list.items() {
                Some(list_items) => items.extend(
                    list_items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (item, format!("{path}[{i}]"))),
                ),
                None => complete = false,
            }
        }
        let noun = noun(&across.item_ty);
        list_violations(
            &across.limits,
            &items,
            (value, first),
            complete,
            &noun,
            &mut out,
        );
    }
    out
}

/// Whether a value of type `ty` with `limits` has any limit to break:
/// [`value_violations`] finds nothing in a value when this is false.
pub(crate) fn declares_limits(ty: &Ty, limits: &DeclaredLimits) -> bool {
    !limits.is_empty()
        || match ty.non_optional() {
            Ty::List(element) => declares_limits(element, &DeclaredLimits::default()),
            Ty::Record(record) => record
                .fields
                .iter()
                .any(|field| declares_limits(&field.ty, &field.limits)),
            _ => false,
        }
}

/// The limits a value of type `ty` with `limits` breaks, at `path`.
fn value_violations<'v, V: Inspect>(
    ty: &Ty,
    limits: &DeclaredLimits,
    value: &'v V,
    path: &str,
    out: &mut Vec<Violation<'v, V>>,
) {
    let top_level = !path.contains(['.', '[']);
    match ty.non_optional() {
        Ty::List(element) => {
            let Some(items) = value.items() else {
                return;
            };
            let indexed: Vec<(&V, String)> = items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("{path}[{i}]")))
                .collect();
            list_violations(limits, &indexed, (value, path), true, &noun(element), out);
            let item_limits = limits.items.as_deref().cloned().unwrap_or_default();
            for (item, item_path) in &indexed {
                value_violations(element, &item_limits, *item, item_path, out);
            }
        }
        Ty::Record(record) => {
            for field in &record.fields {
                if let Some(inner) = value.field(&field.name) {
                    let field_path = format!("{path}.{}", field.name);
                    value_violations(&field.ty, &field.limits, inner, &field_path, out);
                }
            }
        }
        _ => {
            if let Some(breach) = value
                .text_length()
                .and_then(|length| limits.check_chars(length.chars, length.exact))
            {
                out.push(Violation {
                    path: path.to_string(),
                    at: value,
                    first: None,
                    breach,
                    top_level,
                });
            }
        }
    }
}

/// The count and uniqueness limits of a list's `items`.
fn list_violations<'v, V: Inspect>(
    limits: &DeclaredLimits,
    items: &[(&'v V, String)],
    (list, list_path): (&'v V, &str),
    complete: bool,
    noun: &str,
    out: &mut Vec<Violation<'v, V>>,
) {
    let top_level = !list_path.contains(['.', '[']);
    if let Some(breach) = limits.check_count(items.len(), complete, noun) {
        // Too many: the first item past the maximum; too few: the list.
        let (at, path) = match &breach {
            Breach::TooMany { max, .. } => items
                .get(*max)
                .map_or((list, list_path.to_string()), |(item, path)| {
                    (*item, path.clone())
                }),
            _ => (list, list_path.to_string()),
        };
        out.push(Violation {
            path,
            at,
            first: None,
            breach,
            top_level,
        });
    }
    if let Some(field) = &limits.unique {
        let mut seen: Vec<(Cow<'_, str>, &V, String)> = Vec::new();
        for (item, path) in items {
            let Some(value) = item.field(field) else {
                continue;
            };
            let Some(text) = value.text() else {
                continue;
            };
            let field_path = format!("{path}.{field}");
            if let Some((_, first, first_path)) = seen.iter().find(|(t, _, _)| *t == text) {
                out.push(Violation {
                    path: field_path,
                    at: value,
                    first: Some((*first, first_path.clone())),
                    breach: Breach::Duplicate {
                        field: field.clone(),
                        value: text.into_owned(),
                    },
                    top_level: false,
                });
            } else {
                seen.push((text, value, field_path));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaches_read_as_sentences() {
        let limits = DeclaredLimits {
            max_chars: Some(20),
            min_items: Some(1),
            max_items: Some(3),
            ..DeclaredLimits::default()
        };
        assert_eq!(
            limits.check_chars(23, true).map(|b| b.to_string()),
            Some("23 characters, more than the 20 allowed".into())
        );
        assert_eq!(limits.check_chars(20, true), None);
        assert_eq!(
            limits.check_count(4, true, "button").map(|b| b.to_string()),
            Some("4 buttons, more than the 3 allowed".into())
        );
        assert_eq!(
            limits.check_count(0, true, "button").map(|b| b.to_string()),
            Some("no buttons, at least 1 button needed".into())
        );
        assert_eq!(limits.check_count(0, false, "button"), None);
    }

    #[test]
    fn nouns_come_from_type_names() {
        let record = |name: &str| {
            Ty::Record(std::sync::Arc::new(super::super::types::RecordTy {
                name: Some(name.into()),
                fields: Vec::new(),
            }))
        };
        assert_eq!(noun(&record("ListRow")), "list row");
        assert_eq!(noun(&record("Button")), "button");
        assert_eq!(noun(&Ty::String), "item");
    }
}
