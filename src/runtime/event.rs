//! Events: what starts runs. An event names its trigger and carries fields;
//! before any run starts, the fields are checked against the trigger's schema
//! and turned into values, so a bad event is rejected with the field's name.

use std::cmp::Ordering;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::value::{Record, Value};
use crate::check::rules::closest;
use crate::check::schema::TriggerSchema;
use crate::check::types::{FieldTy, Ty};
use crate::check::Schemas;
use crate::phone::describe;

/// An event as it arrives: `{"trigger": "call.ended", "fields": {...}}`.
///
/// ```
/// use flowc::runtime::Event;
///
/// let event = Event::from_json(r#"{"trigger": "call.ended", "fields": {"outcome": "no_answer"}}"#).unwrap();
/// assert_eq!(event.trigger, "call.ended");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The trigger's qualified name.
    pub trigger: String,
    /// The event's fields as JSON values.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Why an event cannot start runs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// The text is not an event object.
    #[error("event is not valid JSON of the form {{\"trigger\": ..., \"fields\": {{...}}}}: {0}")]
    Json(String),
    /// No trigger has this name.
    #[error("unknown trigger `{name}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownTrigger {
        /// The name given.
        name: String,
        /// A close declared name.
        suggestion: Option<String>,
    },
    /// A required field is missing.
    #[error("event `{trigger}` is missing the field `{field}` ({ty})")]
    MissingField {
        /// The trigger.
        trigger: String,
        /// The field.
        field: String,
        /// Its declared type.
        ty: String,
    },
    /// A field the trigger does not declare.
    #[error("event `{trigger}` has no field `{field}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownField {
        /// The trigger.
        trigger: String,
        /// The field.
        field: String,
        /// A close declared name.
        suggestion: Option<String>,
    },
    /// A field's value does not fit its type.
    #[error("field `{field}` of event `{trigger}`: {problem}")]
    BadField {
        /// The trigger.
        trigger: String,
        /// The field, as a path (`customer.phone`).
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl Event {
    /// Parses an event from JSON text.
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))
    }

    /// An event from a trigger name and fields.
    pub fn new(trigger: impl Into<String>, fields: serde_json::Value) -> Event {
        Event {
            trigger: trigger.into(),
            fields: match fields {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
        }
    }

    /// Checks the fields against the trigger's schema and converts them.
    pub fn to_value(&self, schemas: &Schemas) -> Result<Value, EventError> {
        let trigger = self.declared(schemas)?;
        let fields = &self.fields;
        fill(&self.trigger, trigger, |field| {
            fields.get(&field.name).map(|json| convert(json, &field.ty))
        })
    }

    /// Like [`Event::to_value`], with the same checks and errors, but moves
    /// the fields' texts into the value instead of copying them: the event
    /// is left without fields.
    pub(crate) fn take_value(&mut self, schemas: &Schemas) -> Result<Value, EventError> {
        let trigger = self.trigger_schema(schemas)?;
        if !in_name_order(trigger) {
            let value = self.to_value(schemas);
            self.fields.clear();
            return value;
        }
        // The event's fields and the schema's are both in the order of
        // their names: one walk along both pairs them up, and a field the
        // schema passes over is not declared.
        let mut entries = std::mem::take(&mut self.fields).into_iter().peekable();
        let mut undeclared: Option<String> = None;
        let value = fill(&self.trigger, trigger, |field| {
            while let Some((key, _)) = entries.peek() {
                match key.as_str().cmp(&field.name) {
                    Ordering::Less => {
                        let (key, _) = entries.next()?;
                        undeclared.get_or_insert(key);
                    }
                    Ordering::Equal => {
                        let (_, json) = entries.next()?;
                        return Some(convert_owned(json, &field.ty));
                    }
                    Ordering::Greater => break,
                }
            }
            None
        });
        if let Some(name) = undeclared.or_else(|| entries.next().map(|(key, _)| key)) {
            return Err(unknown_field(&self.trigger, trigger, name));
        }
        value
    }

    /// The trigger's schema.
    fn trigger_schema<'s>(&self, schemas: &'s Schemas) -> Result<&'s TriggerSchema, EventError> {
        schemas
            .triggers
            .get(&self.trigger)
            .ok_or_else(|| EventError::UnknownTrigger {
                name: self.trigger.clone(),
                suggestion: closest(&self.trigger, schemas.triggers.keys().map(String::as_str))
                    .map(String::from),
            })
    }

    /// The trigger's schema, once every field of the event is declared.
    fn declared<'s>(&self, schemas: &'s Schemas) -> Result<&'s TriggerSchema, EventError> {
        let trigger = self.trigger_schema(schemas)?;
        match self
            .fields
            .keys()
            .find(|name| trigger.fields.field(name).is_none())
        {
            Some(name) => Err(unknown_field(&self.trigger, trigger, name.clone())),
            None => Ok(trigger),
        }
    }
}

/// The error for a field `trigger` does not declare.
fn unknown_field(trigger_name: &str, trigger: &TriggerSchema, field: String) -> EventError {
    let suggestion = closest(
        &field,
        trigger.fields.fields.iter().map(|f| f.name.as_str()),
    );
    EventError::UnknownField {
        trigger: trigger_name.to_string(),
        suggestion: suggestion.map(String::from),
        field,
    }
}

/// Whether the schema lists its fields in the order of their names
/// ([`TriggerSchema::by_name`] and [`TriggerSchema::names`]), as the
/// checker's schemas do; one put together by hand may not.
fn in_name_order(trigger: &TriggerSchema) -> bool {
    let count = trigger.fields.fields.len();
    trigger.by_name.len() == count && trigger.names.len() == count
}

/// The event's record: each declared field, converted by `convert` (`None`
/// when the event does not have it), in the order of the fields' names, so
/// that the record is laid out at once with the names the trigger's events
/// share. A bad event fails with the error of the first bad field in the
/// schema's order, as checking them in that order would.
fn fill(
    trigger_name: &str,
    trigger: &TriggerSchema,
    mut convert: impl FnMut(&FieldTy) -> Option<Result<Value, (String, String)>>,
) -> Result<Value, EventError> {
    let fields = &trigger.fields.fields;
    if !in_name_order(trigger) {
        return fields
            .iter()
            .map(|field| {
                Ok((
                    field.name.as_str(),
                    fill_field(trigger_name, field, convert(field))?,
                ))
            })
            .collect::<Result<Record, EventError>>()
            .map(Value::Record);
    }
    let mut values = Vec::with_capacity(fields.len());
    let mut first_error: Option<(usize, EventError)> = None;
    for &index in &trigger.by_name {
        let Some(field) = fields.get(index) else {
            continue;
        };
        match fill_field(trigger_name, field, convert(field)) {
            Ok(value) => values.push(value),
            Err(error) => {
                if first_error.as_ref().is_none_or(|(first, _)| index < *first) {
                    first_error = Some((index, error));
                }
            }
        }
    }
    if let Some((_, error)) = first_error {
        return Err(error);
    }
    Record::with_sorted_names(trigger.names.clone(), values)
        .map(Value::Record)
        .ok_or_else(|| EventError::BadField {
            trigger: trigger_name.to_string(),
            field: String::new(),
            problem: "the trigger's schema is inconsistent".to_string(),
        })
}

/// One field of [`fill`]: its value from what the event has (`found`), its
/// default or `none`.
fn fill_field(
    trigger_name: &str,
    field: &FieldTy,
    found: Option<Result<Value, (String, String)>>,
) -> Result<Value, EventError> {
    // `null` for an optional field converts to `none` too.
    match found {
        // A declared default (`kind: String = "text"`) fills the field.
        None => match &field.default {
            Some(default) => {
                convert(default, &field.ty).map_err(|(_, problem)| EventError::BadField {
                    trigger: trigger_name.to_string(),
                    field: field.name.clone(),
                    problem,
                })
            }
            None if matches!(field.ty, Ty::Optional(_)) => Ok(Value::None),
            None => Err(EventError::MissingField {
                trigger: trigger_name.to_string(),
                field: field.name.clone(),
                ty: field.ty.to_string(),
            }),
        },
        Some(converted) => converted.map_err(|(path, problem)| EventError::BadField {
            trigger: trigger_name.to_string(),
            field: if path.is_empty() {
                field.name.clone()
            } else {
                format!("{}.{path}", field.name)
            },
            problem,
        }),
    }
}

/// [`convert`] of a value the caller gives away: texts are moved, not
/// copied. Same answers and errors.
fn convert_owned(json: serde_json::Value, ty: &Ty) -> Result<Value, (String, String)> {
    use serde_json::Value as J;
    match (ty, json) {
        (Ty::Optional(inner), json) if !json.is_null() => convert_owned(json, inner),
        (Ty::Any | Ty::Unknown, json) => convert(&json, ty),
        (Ty::Phone, J::String(s)) => match super::phones::check(&s) {
            Ok(()) => Ok(Value::String(s)),
            Err(_) => convert(&J::String(s), ty),
        },
        (t, J::String(s)) if t.is_text() => Ok(Value::String(s)),
        (ty, json) => convert(&json, ty),
    }
}

/// Whether JSON fits type `ty` as an event field; on error, the path inside
/// the value and the problem. The checker uses it for the events of tests.
pub(crate) fn convert_json(json: &serde_json::Value, ty: &Ty) -> Result<(), (String, String)> {
    convert(json, ty).map(|_| ())
}

/// Converts JSON to a value of type `ty`; on error, the path inside the value
/// and the problem.
fn convert(json: &serde_json::Value, ty: &Ty) -> Result<Value, (String, String)> {
    use serde_json::Value as J;
    let wrong = |expected: &str| {
        Err((
            String::new(),
            format!("expected {expected}, found {}", describe_json(json)),
        ))
    };
    match (ty, json) {
        (Ty::Optional(_), J::Null) => Ok(Value::None),
        (Ty::Optional(inner), _) => convert(json, inner),
        (Ty::Any | Ty::Unknown, _) => Ok(from_json_any(json)),
        (Ty::Phone, J::String(s)) => match super::phones::check(s) {
            Ok(()) => Ok(Value::String(s.clone())),
            Err(problems) => Err((
                String::new(),
                format!("\"{s}\" is not an E.164 phone number: {}", describe(&problems)),
            )),
        },
        (t, J::String(s)) if t.is_text() => Ok(Value::String(s.clone())),
        (Ty::Int, J::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => wrong("a whole number"),
        },
        (Ty::Float, J::Number(n)) => match n.as_f64() {
            Some(x) => Ok(Value::Float(x)),
            None => wrong("a number"),
        },
        (Ty::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (Ty::DateTime, J::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(Value::DateTime)
            .map_err(|e| (String::new(), format!("\"{s}\" is not an RFC 3339 date and time ({e}), e.g. \"2026-12-03T10:30:00+01:00\""))),
        (Ty::Duration, J::String(s)) => crate::duration::parse(s)
            .map(Value::Duration)
            .ok_or_else(|| (String::new(), format!("\"{s}\" is not a duration such as \"4m30s\""))),
        (Ty::List(element), J::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                convert(item, element).map_err(|(path, problem)| {
                    (if path.is_empty() { format!("{i}") } else { format!("{i}.{path}") }, problem)
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        (Ty::Record(record), J::Object(map)) => {
            let mut out = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let value = match map.get(&field.name) {
                    None | Some(J::Null) if matches!(field.ty, Ty::Optional(_)) => Value::None,
                    None => return Err((field.name.clone(), format!("missing ({})", field.ty))),
                    Some(v) => convert(v, &field.ty).map_err(|(path, problem)| {
                        (if path.is_empty() { field.name.clone() } else { format!("{}.{path}", field.name) }, problem)
                    })?,
                };
                out.push((field.name.as_str(), value));
            }
            Ok(Value::Record(out.into_iter().collect()))
        }
        (Ty::Variables, J::Array(_) | J::Object(_)) => Ok(from_json_any(json)),
        (ty, _) => wrong(&format!("{ty}")),
    }
}

fn describe_json(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// JSON to a value without a schema.
pub(crate) fn from_json_any(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::List(items.iter().map(from_json_any).collect()),
        J::Object(map) => Value::Record(map.iter().map(|(k, v)| (k, from_json_any(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Compiler;

    fn schemas() -> Schemas {
        let checked = Compiler::new().check();
        checked
            .program
            .expect("std declarations check")
            .schemas()
            .clone()
    }

    #[test]
    fn a_good_event_converts() {
        let event = Event::new(
            "call.ended",
            serde_json::json!({
                "customer_phone": "+4915112345678", "agent_name": "Jonas", "outcome": "no_answer",
                "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c1", "duration": "4m30s"
            }),
        );
        let value = event.to_value(&schemas()).unwrap();
        assert_eq!(value.field("duration"), Some(&Value::Duration(270_000)));
        assert_eq!(value.field("customer_name"), Some(&Value::None));
    }

    #[test]
    fn a_field_left_out_gets_its_declared_default() {
        let fields = serde_json::json!({
            "phone": "+4915112345678", "text": "hi", "sender_id": "berlin-office",
            "timestamp": "2026-12-01T10:00:00+01:00", "conversation_id": "c1",
            "message_id": "wamid.1"
        });
        let event = Event::new("whatsapp.message_received", fields.clone());
        let value = event.to_value(&schemas()).unwrap();
        assert_eq!(value.field("kind"), Some(&Value::String("text".into())));
        let mut with_kind = fields;
        with_kind["kind"] = serde_json::json!("reply");
        let mut event = Event::new("whatsapp.message_received", with_kind);
        let value = event.take_value(&schemas()).unwrap();
        assert_eq!(value.field("kind"), Some(&Value::String("reply".into())));
    }

    #[test]
    fn of_several_bad_fields_the_first_declared_is_named() {
        // `conversation_id` sorts before `phone`, which is declared first.
        let s = schemas();
        let fields = serde_json::json!({
            "phone": "0151/12345678", "text": "hi", "sender_id": "berlin-office",
            "timestamp": "2026-12-01T10:00:00+01:00", "conversation_id": 7,
            "message_id": "wamid.1"
        });
        for mut event in [
            Event::new("whatsapp.message_received", fields.clone()),
            Event::new(
                "whatsapp.message_received",
                serde_json::json!({"text": "hi", "sender_id": "berlin-office"}),
            ),
        ] {
            let by_reference = event.to_value(&s).unwrap_err();
            let field = match &by_reference {
                EventError::BadField { field, .. } | EventError::MissingField { field, .. } => {
                    field.clone()
                }
                other => panic!("{other}"),
            };
            assert_eq!(field, "phone");
            assert_eq!(event.take_value(&s).unwrap_err(), by_reference);
        }
    }

    #[test]
    fn taking_finds_an_undeclared_field_wherever_it_sorts() {
        let s = schemas();
        let good = serde_json::json!({
            "phone": "+4915112345678", "text": "hi", "sender_id": "berlin-office",
            "timestamp": "2026-12-01T10:00:00+01:00", "conversation_id": "c1",
            "message_id": "wamid.1"
        });
        // Before every declared name, between two, after all; and one next
        // to a bad field, where the undeclared field is named, as before.
        for (extra, bad_phone) in [
            ("aaa", false),
            ("namex", false),
            ("zzz", false),
            ("phonee", true),
        ] {
            let mut fields = good.clone();
            fields[extra] = serde_json::json!("x");
            if bad_phone {
                fields["phone"] = serde_json::json!("0151/12345678");
            }
            let mut event = Event::new("whatsapp.message_received", fields);
            let by_reference = event.to_value(&s).unwrap_err();
            assert!(
                matches!(&by_reference, EventError::UnknownField { field, .. } if field == extra),
                "{by_reference}"
            );
            assert_eq!(event.take_value(&s).unwrap_err(), by_reference);
            assert!(event.fields.is_empty());
        }
        let mut event = Event::new("whatsapp.message_received", good.clone());
        assert_eq!(
            event.take_value(&s).unwrap(),
            Event::new("whatsapp.message_received", good)
                .to_value(&s)
                .unwrap()
        );
    }

    #[test]
    fn bad_events_name_the_field() {
        let s = schemas();
        let missing = Event::new("call.ended", serde_json::json!({"outcome": "x"}));
        assert!(
            matches!(missing.to_value(&s), Err(EventError::MissingField { field, .. }) if field == "customer_phone")
        );
        let bad_phone = Event::new(
            "call.ended",
            serde_json::json!({"customer_phone": "0151/12345678", "agent_name": "J", "outcome": "x", "ended_at": "2026-12-01T10:00:00Z", "call_id": "c"}),
        );
        let err = bad_phone.to_value(&s).unwrap_err().to_string();
        assert!(
            err.contains("customer_phone") && err.contains("E.164"),
            "{err}"
        );
        let unknown = Event::new("call.endd", serde_json::json!({}));
        assert_eq!(
            unknown.to_value(&s).unwrap_err().to_string(),
            "unknown trigger `call.endd`; did you mean `call.ended`?"
        );
        let extra = Event::new("call.ended", serde_json::json!({"outcom": "x"}));
        assert!(extra
            .to_value(&s)
            .unwrap_err()
            .to_string()
            .contains("did you mean `outcome`"));
    }
}
