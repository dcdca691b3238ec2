//! The types the checker gives values, and which values each place accepts.

use std::fmt;
use std::sync::Arc;

use super::limits::DeclaredLimits;
use crate::source::Span;

/// A value's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Accepts and is accepted by everything; declarations use it for
    /// values the checker does not constrain.
    Any,
    /// Stands in after an error, so one mistake is reported once.
    Unknown,
    /// The result of an action that returns nothing.
    Nothing,
    /// The type of the literal `none`.
    NoneValue,
    /// Text.
    String,
    /// A whole number.
    Int,
    /// A decimal number.
    Float,
    /// `true` or `false`.
    Bool,
    /// A span of time.
    Duration,
    /// An instant with a time-zone offset.
    DateTime,
    /// A phone number in E.164.
    Phone,
    /// A sender's name from flow.toml.
    Sender,
    /// A template's name from the catalog.
    Template,
    /// An assistant's name from flow.toml.
    Assistant,
    /// An IANA time zone name.
    TimeZone,
    /// A strftime-style date format.
    DateFormat,
    /// Template or AI variables: a list of values or a record of values.
    Variables,
    /// `[T]`.
    List(Box<Ty>),
    /// A record, declared (`type Sent`) or written (`{ a: 1 }`).
    Record(Arc<RecordTy>),
    /// `T?`: a value or `none`.
    Optional(Box<Ty>),
}

/// The fields of a record type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordTy {
    /// The declared name; `None` for records written inline.
    pub name: Option<String>,
    /// Fields in order.
    pub fields: Vec<FieldTy>,
}

/// One field of a record or trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTy {
    /// The field's name.
    pub name: String,
    /// Its type.
    pub ty: Ty,
    /// Its documentation.
    pub doc: Option<String>,
    /// Where it is declared.
    pub span: Span,
    /// Declared limits: `title: Text(max: 20)`, `rows: [ListRow](max: 10)`.
    pub limits: DeclaredLimits,
    /// A trigger field's default, as event JSON: the value an event that
    /// leaves the field out gets.
    pub default: Option<serde_json::Value>,
}

impl FieldTy {
    /// A field without limits or default.
    pub fn new(name: impl Into<String>, ty: Ty, doc: Option<String>, span: Span) -> FieldTy {
        FieldTy {
            name: name.into(),
            ty,
            doc,
            span,
            limits: DeclaredLimits::default(),
            default: None,
        }
    }

    /// Whether an event or a test's `given` must have it: not optional and
    /// no default.
    pub fn is_required(&self) -> bool {
        self.default.is_none() && !matches!(self.ty, Ty::Optional(_))
    }
}

impl RecordTy {
    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&FieldTy> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Ty {
    /// `T?` of this type; optional types stay as they are.
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) | Ty::Any | Ty::Unknown | Ty::NoneValue => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    /// The type without `?`.
    pub fn non_optional(&self) -> &Ty {
        match self {
            Ty::Optional(inner) => inner,
            other => other,
        }
    }

    /// Whether the checker must not report on values of this type.
    pub fn is_unconstrained(&self) -> bool {
        matches!(self, Ty::Any | Ty::Unknown)
    }

    /// Text-like types: each is a string at run time.
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Ty::String
                | Ty::Phone
                | Ty::Sender
                | Ty::Template
                | Ty::Assistant
                | Ty::TimeZone
                | Ty::DateFormat
        )
    }

    /// Int or Float.
    pub fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }

    /// A single value that can fill a template placeholder.
    fn is_scalar(&self) -> bool {
        self.is_text()
            || self.is_number()
            || matches!(self, Ty::Bool | Ty::DateTime | Ty::Duration)
            || self.is_unconstrained()
    }

    /// Whether a value of type `actual` may be used where `self` is expected.
    pub fn accepts(&self, actual: &Ty) -> bool {
        if self.is_unconstrained() || actual.is_unconstrained() {
            return true;
        }
        match (self, actual) {
            (Ty::Optional(inner), Ty::Optional(actual_inner)) => inner.accepts(actual_inner),
            (Ty::Optional(_), Ty::NoneValue) => true,
            (Ty::Optional(inner), actual) => inner.accepts(actual),
            (_, Ty::Optional(_) | Ty::NoneValue | Ty::Nothing) => false,
            (Ty::String, actual) => actual.is_text(),
            (
                Ty::Phone
                | Ty::Sender
                | Ty::Template
                | Ty::Assistant
                | Ty::TimeZone
                | Ty::DateFormat,
                actual,
            ) => actual == self || *actual == Ty::String,
            (Ty::Float, actual) => actual.is_number(),
            (Ty::Variables, Ty::Variables) => true,
            // Template parameters cannot be empty, so no optional values.
            (Ty::Variables, Ty::List(element)) => element.is_scalar(),
            (Ty::Variables, Ty::Record(record)) => record.fields.iter().all(|f| f.ty.is_scalar()),
            (Ty::List(expected), Ty::List(actual)) => expected.accepts(actual),
            (Ty::Record(expected), Ty::Record(actual)) => match (&expected.name, &actual.name) {
                (Some(a), Some(b)) => a == b,
                _ => expected.fields.iter().all(|field| {
                    actual
                        .field(&field.name)
                        .map_or(matches!(field.ty, Ty::Optional(_)), |a| {
                            field.ty.accepts(&a.ty)
                        })
                }),
            },
            (expected, actual) => expected == actual,
        }
    }

    /// Whether values of the two types can be compared with `==`.
    pub fn comparable_with(&self, other: &Ty) -> bool {
        let (a, b) = (self.non_optional(), other.non_optional());
        a.accepts(b)
            || b.accepts(a)
            || (a.is_text() && b.is_text())
            || matches!(self, Ty::NoneValue | Ty::Optional(_))
            || matches!(other, Ty::NoneValue | Ty::Optional(_))
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Any => f.write_str("Any"),
            Ty::Unknown => f.write_str("unknown"),
            Ty::Nothing => f.write_str("nothing"),
            Ty::NoneValue => f.write_str("none"),
            Ty::String => f.write_str("String"),
            Ty::Int => f.write_str("Int"),
            Ty::Float => f.write_str("Float"),
            Ty::Bool => f.write_str("Bool"),
            Ty::Duration => f.write_str("Duration"),
            Ty::DateTime => f.write_str("DateTime"),
            Ty::Phone => f.write_str("Phone"),
            Ty::Sender => f.write_str("Sender"),
            Ty::Template => f.write_str("Template"),
            Ty::Assistant => f.write_str("Assistant"),
            Ty::TimeZone => f.write_str("TimeZone"),
            Ty::DateFormat => f.write_str("DateFormat"),
            Ty::Variables => f.write_str("Variables"),
            // The element type of `[]` is not known: it reads as written.
            Ty::List(inner) if **inner == Ty::Unknown => f.write_str("[]"),
            Ty::List(inner) => write!(f, "[{inner}]"),
            Ty::Record(record) => match &record.name {
                Some(name) => f.write_str(name),
                None if record.fields.is_empty() => f.write_str("{}"),
                None => {
                    f.write_str("{ ")?;
                    for (i, field) in record.fields.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{}: {}", field.name, field.ty)?;
                    }
                    f.write_str(" }")
                }
            },
            Ty::Optional(inner) => write!(f, "{inner}?"),
        }
    }
}

/// The built-in named types, as written in declarations.
pub fn builtin(name: &str) -> Option<Ty> {
    Some(match name {
        "Any" => Ty::Any,
        "String" | "Text" => Ty::String,
        "Int" => Ty::Int,
        "Float" => Ty::Float,
        "Bool" => Ty::Bool,
        "Duration" => Ty::Duration,
        "DateTime" => Ty::DateTime,
        "Phone" => Ty::Phone,
        "Sender" => Ty::Sender,
        "Template" => Ty::Template,
        "Assistant" => Ty::Assistant,
        "TimeZone" => Ty::TimeZone,
        "DateFormat" => Ty::DateFormat,
        "Variables" => Ty::Variables,
        _ => return None,
    })
}

/// Names of the built-in types, for "did you mean".
pub const BUILTIN_NAMES: &[&str] = &[
    "Any",
    "String",
    "Text",
    "Int",
    "Float",
    "Bool",
    "Duration",
    "DateTime",
    "Phone",
    "Sender",
    "Template",
    "Assistant",
    "TimeZone",
    "DateFormat",
    "Variables",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_like_values_flow_into_strings_and_back() {
        assert!(Ty::String.accepts(&Ty::Phone));
        assert!(Ty::Phone.accepts(&Ty::String));
        assert!(!Ty::Phone.accepts(&Ty::Sender));
        assert!(!Ty::String.accepts(&Ty::Int));
    }

    #[test]
    fn optionals_need_a_default() {
        let maybe = Ty::String.optional();
        assert!(!Ty::String.accepts(&maybe));
        assert!(maybe.accepts(&Ty::String));
        assert!(maybe.accepts(&Ty::NoneValue));
    }

    #[test]
    fn variables_take_lists_and_records_of_scalars() {
        assert!(Ty::Variables.accepts(&Ty::List(Box::new(Ty::String))));
        assert!(!Ty::Variables.accepts(&Ty::List(Box::new(Ty::List(Box::new(Ty::Int))))));
        assert!(!Ty::Variables.accepts(&Ty::Int));
    }
}
