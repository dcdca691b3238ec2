//! Events: what starts runs. An event names its trigger and carries fields;
//! before any run starts, the fields are checked against the trigger's schema
//! and turned into values, so a bad event is rejected with the field's name.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::value::Value;
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
        fill(&self.trigger, trigger, |name, ty| {
            fields.get(name).map(|json| (None, convert(json, ty)))
        })
    }

    /// Like [`Event::to_value`], with the same checks and errors, but moves
    /// the fields' names and texts into the value instead of copying them:
    /// the event is left without fields.
    pub(crate) fn take_value(&mut self, schemas: &Schemas) -> Result<Value, EventError> {
        let trigger = self.declared(schemas)?;
        // A handful of fields: searched in a list. A field taken leaves an
        // empty name behind, which no declared field has.
        let mut fields: Vec<(String, serde_json::Value)> =
            std::mem::take(&mut self.fields).into_iter().collect();
        fill(&self.trigger, trigger, |name, ty| {
            let (key, json) = fields.iter_mut().find(|(key, _)| key == name)?;
            Some((
                Some(std::mem::take(key)),
                convert_owned(std::mem::take(json), ty),
            ))
        })
    }

    /// The trigger's schema, once every field of the event is declared.
    fn declared<'s>(&self, schemas: &'s Schemas) -> Result<&'s TriggerSchema, EventError> {
        let Some(trigger) = schemas.triggers.get(&self.trigger) else {
            return Err(EventError::UnknownTrigger {
                name: self.trigger.clone(),
                suggestion: closest(&self.trigger, schemas.triggers.keys().map(String::as_str))
                    .map(String::from),
            });
        };
        for name in self.fields.keys() {
            if trigger.fields.field(name).is_none() {
                return Err(EventError::UnknownField {
                    trigger: self.trigger.clone(),
                    field: name.clone(),
                    suggestion: closest(
                        name,
                        trigger.fields.fields.iter().map(|f| f.name.as_str()),
                    )
                    .map(String::from),
                });
            }
        }
        Ok(trigger)
    }
}

/// What [`fill`] gets for one field: the field's name if the caller can
/// give it away (else the schema's is copied), and the converted value.
type Converted = (Option<String>, Result<Value, (String, String)>);

/// The event's record: each declared field converted by `convert` (`None`
/// when the event does not have it). The fields are converted in the order
/// of their names, so that the record's map is built at once from sorted
/// entries; a bad event fails with the error of the first bad field in the
/// schema's order, as checking them in that order would.
fn fill(
    trigger_name: &str,
    trigger: &TriggerSchema,
    mut convert: impl FnMut(&str, &Ty) -> Option<Converted>,
) -> Result<Value, EventError> {
    let fields = &trigger.fields.fields;
    // A schema put together without `by_name` is taken in its own order
    // (`from_iter` sorts the entries then).
    let schema_order: Vec<usize>;
    let order = if trigger.by_name.len() == fields.len() {
        &trigger.by_name
    } else {
        schema_order = (0..fields.len()).collect();
        &schema_order
    };
    let mut out = Vec::with_capacity(fields.len());
    let mut first_error: Option<(usize, EventError)> = None;
    for &index in order {
        let Some(field) = fields.get(index) else {
            continue;
        };
        match fill_field(trigger_name, field, &mut convert) {
            Ok(entry) => out.push(entry),
            Err(error) => {
                if first_error.as_ref().is_none_or(|(first, _)| index < *first) {
                    first_error = Some((index, error));
                }
            }
        }
    }
    match first_error {
        Some((_, error)) => Err(error),
        None => Ok(Value::Record(BTreeMap::from_iter(out))),
    }
}

/// One field of [`fill`]: its name and value.
fn fill_field(
    trigger_name: &str,
    field: &FieldTy,
    convert: &mut impl FnMut(&str, &Ty) -> Option<Converted>,
) -> Result<(String, Value), EventError> {
    // `null` for an optional field converts to `none` too.
    let (name, value) = match convert(&field.name, &field.ty) {
        // A declared default (`kind: String = "text"`) fills the field.
        None if field.default.is_some() => (
            None,
            field
                .default
                .as_ref()
                .map_or(Ok(Value::None), |default| self::convert(default, &field.ty))
                .map_err(|(_, problem)| EventError::BadField {
                    trigger: trigger_name.to_string(),
                    field: field.name.clone(),
                    problem,
                })?,
        ),
        None if matches!(field.ty, Ty::Optional(_)) => (None, Value::None),
        None => {
            return Err(EventError::MissingField {
                trigger: trigger_name.to_string(),
                field: field.name.clone(),
                ty: field.ty.to_string(),
            })
        }
        Some((name, converted)) => {
            let value = converted.map_err(|(path, problem)| EventError::BadField {
                trigger: trigger_name.to_string(),
                field: if path.is_empty() {
                    field.name.clone()
                } else {
                    format!("{}.{path}", field.name)
                },
                problem,
            })?;
            (name, value)
        }
    };
    Ok((name.unwrap_or_else(|| field.name.clone()), value))
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
            let mut out = BTreeMap::new();
            for field in &record.fields {
                let value = match map.get(&field.name) {
                    None | Some(J::Null) if matches!(field.ty, Ty::Optional(_)) => Value::None,
                    None => return Err((field.name.clone(), format!("missing ({})", field.ty))),
                    Some(v) => convert(v, &field.ty).map_err(|(path, problem)| {
                        (if path.is_empty() { field.name.clone() } else { format!("{}.{path}", field.name) }, problem)
                    })?,
                };
                out.insert(field.name.clone(), value);
            }
            Ok(Value::Record(out))
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
        J::Object(map) => Value::Record(
            map.iter()
                .map(|(k, v)| (k.clone(), from_json_any(v)))
                .collect(),
        ),
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
