//! The stored form of a suspended run: compact JSON text, version 2.
//!
//! A waiting run is kept in the store for days, a million at a time, so its
//! size matters more than its readability. Version 1 was serde's derived
//! JSON of [`Run`] (field names, `{"type": ..., "value": ...}` around every
//! value): about 750 bytes for a run waiting on a `call.ended` event.
//! Version 2 is positional and about half that:
//!
//! ```text
//! [2, handler, "trigger", started_secs, started_nanos, steps, [frame, ...]]
//! frame: [next, attempt, [step codes], ["name", value, "name", value, ...]]
//! step codes: 0,i,b = Then(i, b); 1,i = Else(i); 2,i,a = Arm(i, a); 3,i,c = Catch(i, c)
//! ```
//!
//! Values use JSON's own types where they are unambiguous: `null`, `true`,
//! integers, `"text"`, `{record}`. The others are tagged arrays: `[1, x]` a
//! Float, `[2, ms]` a Duration, `[3, secs, nanos, offset_secs]` a DateTime,
//! `[4, items...]` a List. The run's id and flow are not repeated: the
//! store keeps them next to the state.
//!
//! In [`StoredRun::state`](crate::providers::StoredRun) the text is a JSON
//! *string*; a state that is a JSON object is version 1 and is still read.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value as Json;

use super::run::{Frame, Run, Step};
use super::value::Value;

/// The version number the text starts with.
const VERSION: u64 = 2;

/// A run's state as the store keeps it.
pub(crate) fn encode(run: &Run) -> Result<Json, serde_json::Error> {
    // Sized for a typical state at once, not grown from serde_json's 128
    // bytes.
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, &CompactRun(run))?;
    // serde_json writes UTF-8 only.
    Ok(Json::String(
        String::from_utf8(out).map_err(serde::ser::Error::custom)?,
    ))
}

/// The run from a stored state, version 2 or 1; `id` and `flow` are the
/// store's.
pub(crate) fn decode(id: &str, flow: &str, state: Json) -> Result<Run, String> {
    match state {
        Json::String(text) => {
            let json: Json = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            decode_v2(id, flow, &json)
        }
        // Version 1: serde's derived form, written by earlier builds.
        other => serde_json::from_value(other).map_err(|e| e.to_string()),
    }
}

struct CompactRun<'a>(&'a Run);
struct CompactFrames<'a>(&'a [Frame]);
struct CompactFrame<'a>(&'a Frame);
struct CompactPath<'a>(&'a [Step]);
struct CompactVars<'a>(&'a [(String, Value)]);
struct CompactValue<'a>(&'a Value);
struct CompactRecord<'a>(&'a BTreeMap<String, Value>);

impl Serialize for CompactRun<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let run = self.0;
        let mut seq = serializer.serialize_seq(Some(7))?;
        seq.serialize_element(&VERSION)?;
        seq.serialize_element(&run.handler)?;
        seq.serialize_element(&run.trigger)?;
        seq.serialize_element(&run.started_at.timestamp())?;
        seq.serialize_element(&run.started_at.timestamp_subsec_nanos())?;
        seq.serialize_element(&run.steps)?;
        seq.serialize_element(&CompactFrames(&run.frames))?;
        seq.end()
    }
}

impl Serialize for CompactFrames<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(CompactFrame))
    }
}

impl Serialize for CompactFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let frame = self.0;
        let mut seq = serializer.serialize_seq(Some(4))?;
        seq.serialize_element(&frame.next)?;
        seq.serialize_element(&frame.attempt)?;
        seq.serialize_element(&CompactPath(&frame.path))?;
        seq.serialize_element(&CompactVars(&frame.vars))?;
        seq.end()
    }
}

impl Serialize for CompactPath<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for step in self.0 {
            let codes: &[u32] = &match *step {
                Step::Then(i, b) => [0, i, b],
                Step::Else(i) => [1, i, u32::MAX],
                Step::Arm(i, a) => [2, i, a],
                Step::Catch(i, c) => [3, i, c],
            };
            let used = if matches!(step, Step::Else(_)) { 2 } else { 3 };
            for code in &codes[..used] {
                seq.serialize_element(code)?;
            }
        }
        seq.end()
    }
}

impl Serialize for CompactVars<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len() * 2))?;
        for (name, value) in self.0 {
            seq.serialize_element(name)?;
            seq.serialize_element(&CompactValue(value))?;
        }
        seq.end()
    }
}

impl Serialize for CompactRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, CompactValue(v))))
    }
}

impl Serialize for CompactValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::None => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) => serializer.serialize_i64(*n),
            Value::String(s) => serializer.serialize_str(s),
            Value::Record(fields) => CompactRecord(fields).serialize(serializer),
            Value::Float(x) => {
                let mut seq = serializer.serialize_seq(Some(2))?;
                seq.serialize_element(&1u8)?;
                // JSON has no NaN or infinity: those are kept as text.
                if x.is_finite() {
                    seq.serialize_element(x)?;
                } else {
                    seq.serialize_element(&x.to_string())?;
                }
                seq.end()
            }
            Value::Duration(ms) => {
                let mut seq = serializer.serialize_seq(Some(2))?;
                seq.serialize_element(&2u8)?;
                seq.serialize_element(ms)?;
                seq.end()
            }
            Value::DateTime(t) => {
                let mut seq = serializer.serialize_seq(Some(4))?;
                seq.serialize_element(&3u8)?;
                seq.serialize_element(&t.timestamp())?;
                seq.serialize_element(&t.timestamp_subsec_nanos())?;
                seq.serialize_element(&t.offset().local_minus_utc())?;
                seq.end()
            }
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len() + 1))?;
                seq.serialize_element(&4u8)?;
                for item in items {
                    seq.serialize_element(&CompactValue(item))?;
                }
                seq.end()
            }
        }
    }
}

fn array<'j>(json: &'j Json, what: &str) -> Result<&'j [Json], String> {
    json.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{what} is not an array"))
}

fn uint(json: Option<&Json>, what: &str) -> Result<u64, String> {
    json.and_then(Json::as_u64)
        .ok_or_else(|| format!("{what} is not a whole number"))
}

fn int(json: Option<&Json>, what: &str) -> Result<i64, String> {
    json.and_then(Json::as_i64)
        .ok_or_else(|| format!("{what} is not a whole number"))
}

fn small(json: Option<&Json>, what: &str) -> Result<u32, String> {
    u32::try_from(uint(json, what)?).map_err(|_| format!("{what} is out of range"))
}

fn decode_v2(id: &str, flow: &str, json: &Json) -> Result<Run, String> {
    let items = array(json, "the state")?;
    let version = uint(items.first(), "the version")?;
    if version != VERSION {
        return Err(format!(
            "state version {version} is not one this flowc reads (1 or {VERSION})"
        ));
    }
    let handler = usize::try_from(uint(items.get(1), "the handler")?)
        .map_err(|_| "the handler is out of range".to_string())?;
    let trigger = items
        .get(2)
        .and_then(Json::as_str)
        .ok_or("the trigger is not text")?
        .to_string();
    let secs = int(items.get(3), "the start time")?;
    let nanos = small(items.get(4), "the start time's nanoseconds")?;
    let started_at: DateTime<Utc> =
        DateTime::from_timestamp(secs, nanos).ok_or("the start time is out of range")?;
    let steps = uint(items.get(5), "the step count")?;
    let frames = array(items.get(6).unwrap_or(&Json::Null), "the frames")?
        .iter()
        .map(decode_frame)
        .collect::<Result<Vec<Frame>, String>>()?;
    Ok(Run {
        id: id.to_string(),
        flow: flow.to_string(),
        handler,
        trigger,
        started_at,
        frames,
        steps,
    })
}

fn decode_frame(json: &Json) -> Result<Frame, String> {
    let items = array(json, "a frame")?;
    let next = usize::try_from(uint(items.first(), "a frame's next statement")?)
        .map_err(|_| "a frame's next statement is out of range".to_string())?;
    let attempt = small(items.get(1), "a frame's attempt")?;
    let codes = array(items.get(2).unwrap_or(&Json::Null), "a frame's path")?;
    let mut path = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let code = |k: usize| small(codes.get(i + k), "a path step");
        let (step, used) = match code(0)? {
            0 => (Step::Then(code(1)?, code(2)?), 3),
            1 => (Step::Else(code(1)?), 2),
            2 => (Step::Arm(code(1)?, code(2)?), 3),
            3 => (Step::Catch(code(1)?, code(2)?), 3),
            other => return Err(format!("unknown path step {other}")),
        };
        path.push(step);
        i += used;
    }
    let flat = array(items.get(3).unwrap_or(&Json::Null), "a frame's variables")?;
    if flat.len() % 2 != 0 {
        return Err("a frame's variables are not name-value pairs".to_string());
    }
    let vars = flat
        .chunks(2)
        .map(|pair| {
            let name = pair[0].as_str().ok_or("a variable's name is not text")?;
            Ok((name.to_string(), decode_value(&pair[1])?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Frame {
        path,
        next,
        vars,
        attempt,
    })
}

fn decode_value(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Int(n.as_i64().ok_or("an Int is out of range")?),
        Json::String(s) => Value::String(s.clone()),
        Json::Object(fields) => Value::Record(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), decode_value(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Json::Array(items) => match uint(items.first(), "a value's tag")? {
            1 => Value::Float(match items.get(1) {
                Some(Json::String(text)) => text.parse().map_err(|_| "a bad Float")?,
                other => other.and_then(Json::as_f64).ok_or("a bad Float")?,
            }),
            2 => Value::Duration(uint(items.get(1), "a Duration")?),
            3 => {
                let secs = int(items.get(1), "a DateTime")?;
                let nanos = small(items.get(2), "a DateTime's nanoseconds")?;
                let offset = i32::try_from(int(items.get(3), "a DateTime's offset")?)
                    .ok()
                    .and_then(FixedOffset::east_opt)
                    .ok_or("a DateTime's offset is out of range")?;
                Value::DateTime(
                    DateTime::from_timestamp(secs, nanos)
                        .ok_or("a DateTime is out of range")?
                        .with_timezone(&offset),
                )
            }
            4 => Value::List(
                items[1..]
                    .iter()
                    .map(decode_value)
                    .collect::<Result<_, String>>()?,
            ),
            other => return Err(format!("unknown value tag {other}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> Run {
        let offset = FixedOffset::east_opt(3600).unwrap();
        let at = offset
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .unwrap()
            .checked_add_signed(chrono::Duration::nanoseconds(123_456_789))
            .unwrap();
        let event = Value::record([
            ("phone", Value::String("+4915112345678".into())),
            ("name", Value::None),
            ("count", Value::Int(-3)),
            ("ratio", Value::Float(0.25)),
            ("weird", Value::Float(f64::INFINITY)),
            ("ok", Value::Bool(true)),
            ("wait", Value::Duration(600_000)),
            ("at", Value::DateTime(at)),
            (
                "tags",
                Value::List(vec![
                    Value::String("a \"quoted\" tag".into()),
                    Value::Int(1),
                ]),
            ),
            ("nested", Value::record([("x", Value::List(vec![]))])),
        ]);
        Run {
            id: "run-1".into(),
            flow: "reminder".into(),
            handler: 1,
            trigger: "call.ended".into(),
            started_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
                + chrono::Duration::nanoseconds(7),
            frames: vec![
                Frame {
                    path: vec![],
                    next: 2,
                    vars: vec![("call".into(), event)],
                    attempt: 0,
                },
                Frame {
                    path: vec![
                        Step::Then(1, 0),
                        Step::Else(3),
                        Step::Arm(4, 2),
                        Step::Catch(5, 1),
                    ],
                    next: 1,
                    vars: vec![("e".into(), Value::String("x".into()))],
                    attempt: 2,
                },
            ],
            steps: 12,
        }
    }

    #[test]
    fn version_2_round_trips() {
        let run = sample();
        let state = encode(&run).unwrap();
        assert!(state.as_str().unwrap().starts_with("[2,"));
        let back = decode("run-1", "reminder", state).unwrap();
        // Infinity is not equal to itself through text: compare the rest.
        assert_eq!(format!("{back:?}"), format!("{run:?}"));
    }

    #[test]
    fn version_1_is_still_read() {
        let run = sample();
        let mut v1_run = run.clone();
        if let Value::Record(fields) = &mut v1_run.frames[0].vars[0].1 {
            fields.remove("weird");
        }
        let v1 = serde_json::to_value(&v1_run).unwrap();
        assert_eq!(decode("run-1", "reminder", v1).unwrap(), v1_run);
    }

    #[test]
    fn version_2_is_at_most_half_of_version_1() {
        let mut run = sample();
        if let Value::Record(fields) = &mut run.frames[0].vars[0].1 {
            fields.remove("weird");
        }
        let v1 = serde_json::to_string(&run).unwrap().len();
        let v2 = encode(&run).unwrap().as_str().unwrap().len();
        assert!(v2 * 2 <= v1, "v1 {v1} bytes, v2 {v2} bytes");
    }

    #[test]
    fn bad_states_are_errors() {
        for text in [
            "",
            "[]",
            "[3]",
            "[2,0,\"t\",0,0,0,[[0,0,[9],[]]]]",
            "[2,0,\"t\",0,0,0,[[0,0,[],[\"x\"]]]]",
        ] {
            assert!(
                decode("r", "f", Json::String(text.into())).is_err(),
                "{text}"
            );
        }
    }
}
