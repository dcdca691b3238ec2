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

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value as Json;

use super::interp::push_number;
use super::run::{Frame, Run, Step};
use super::value::{Record, Value};

/// The version number the text starts with.
const VERSION: u64 = 2;

/// A run's state as the store keeps it.
///
/// Written by hand rather than through serde: every run is saved before its
/// first statement, so this runs on every dispatch, and serde_json's
/// per-byte escaping of the event's texts was most of its cost. The text is
/// the same JSON serde_json would write (the tests parse it back).
pub(crate) fn encode(run: &Run) -> Json {
    // Sized for a typical state at once, not grown step by step.
    let mut out = String::with_capacity(512);
    out.push('[');
    push_number(&mut out, VERSION);
    out.push(',');
    push_number(&mut out, run.handler as u64);
    out.push(',');
    push_json_str(&mut out, &run.trigger);
    out.push(',');
    push_int(&mut out, run.started_at.timestamp());
    out.push(',');
    push_number(&mut out, u64::from(run.started_at.timestamp_subsec_nanos()));
    out.push(',');
    push_number(&mut out, run.steps);
    out.push_str(",[");
    for (i, frame) in run.frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_frame(&mut out, frame);
    }
    out.push_str("]]");
    Json::String(out)
}

/// The run from a stored state, version 2 or 1; `id` and `flow` are the
/// store's.
pub(crate) fn decode(id: &str, flow: &str, state: &Json) -> Result<Run, String> {
    match state {
        Json::String(text) => {
            let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
            decode_v2(id, flow, &json)
        }
        // Version 1: serde's derived form, written by earlier builds.
        other => <Run as serde::Deserialize>::deserialize(other).map_err(|e| e.to_string()),
    }
}

/// `[next, attempt, [step codes], ["name", value, ...]]`.
fn push_frame(out: &mut String, frame: &Frame) {
    out.push('[');
    push_number(out, frame.next as u64);
    out.push(',');
    push_number(out, u64::from(frame.attempt));
    out.push_str(",[");
    for (i, step) in frame.path.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (code, index, branch) = match *step {
            Step::Then(i, b) => (0, i, Some(b)),
            Step::Else(i) => (1, i, None),
            Step::Arm(i, a) => (2, i, Some(a)),
            Step::Catch(i, c) => (3, i, Some(c)),
        };
        push_number(out, code);
        out.push(',');
        push_number(out, u64::from(index));
        if let Some(branch) = branch {
            out.push(',');
            push_number(out, u64::from(branch));
        }
    }
    out.push_str("],[");
    for (i, (name, value)) in frame.vars.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, name);
        out.push(',');
        push_value(out, value);
    }
    out.push_str("]]");
}

fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::None => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => push_int(out, *n),
        Value::String(s) => push_json_str(out, s),
        Value::Record(fields) => push_record(out, fields),
        Value::Float(x) => {
            out.push_str("[1,");
            // JSON has no NaN or infinity: those are kept as text. Finite
            // numbers are written as serde_json writes them (shortest form
            // that reads back as the same number).
            match serde_json::Number::from_f64(*x) {
                Some(number) => {
                    use std::fmt::Write;
                    let _ = write!(out, "{number}");
                }
                None => push_json_str(out, &x.to_string()),
            }
            out.push(']');
        }
        Value::Duration(ms) => {
            out.push_str("[2,");
            push_number(out, *ms);
            out.push(']');
        }
        Value::DateTime(t) => {
            out.push_str("[3,");
            push_int(out, t.timestamp());
            out.push(',');
            push_number(out, u64::from(t.timestamp_subsec_nanos()));
            out.push(',');
            push_int(out, i64::from(t.offset().local_minus_utc()));
            out.push(']');
        }
        Value::List(items) => {
            out.push_str("[4");
            for item in items {
                out.push(',');
                push_value(out, item);
            }
            out.push(']');
        }
    }
}

fn push_record(out: &mut String, fields: &Record) {
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, key);
        out.push(':');
        push_value(out, value);
    }
    out.push('}');
}

fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_number(out, n.unsigned_abs());
}

/// Appends `text` as a JSON string. Texts with nothing to escape (nearly
/// all) are copied whole.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    if !needs_escape(text.as_bytes()) {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let byte = c as u8;
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(byte >> 4)]));
                    out.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Whether JSON needs any byte of `bytes` escaped: a quote, a backslash or
/// a control character.
fn needs_escape(bytes: &[u8]) -> bool {
    // Without an early exit the compiler tests many bytes per instruction.
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
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
                .map(|(k, v)| Ok((k, decode_value(v)?)))
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
        let state = encode(&run);
        assert!(state.as_str().unwrap().starts_with("[2,"));
        let back = decode("run-1", "reminder", &state).unwrap();
        // Infinity is not equal to itself through text: compare the rest.
        assert_eq!(format!("{back:?}"), format!("{run:?}"));
    }

    #[test]
    fn texts_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0u8..0x80)
            .map(|b| format!("abcdefg{}hijklmnopq", char::from(b)))
            .collect();
        texts.extend(
            [
                "",
                "plain text longer than eight bytes",
                "\"",
                "ä \u{1F600} \u{7f} \\ \"quoted\"\n",
                "0123456\u{1}",
                "01234567\u{1f}",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut out = String::new();
            push_json_str(&mut out, &text);
            assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for x in [0.25, 1.0, -3.5e-12, 1e300, f64::MIN_POSITIVE] {
            let mut out = String::new();
            push_value(&mut out, &Value::Float(x));
            assert_eq!(out, format!("[1,{}]", serde_json::to_string(&x).unwrap()));
        }
        for n in [0, -1, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn version_1_is_still_read() {
        let run = sample();
        let mut v1_run = run.clone();
        if let Value::Record(fields) = &mut v1_run.frames[0].vars[0].1 {
            fields.remove("weird");
        }
        let v1 = serde_json::to_value(&v1_run).unwrap();
        assert_eq!(decode("run-1", "reminder", &v1).unwrap(), v1_run);
    }

    #[test]
    fn version_2_is_at_most_half_of_version_1() {
        let mut run = sample();
        if let Value::Record(fields) = &mut run.frames[0].vars[0].1 {
            fields.remove("weird");
        }
        let v1 = serde_json::to_string(&run).unwrap().len();
        let v2 = encode(&run).as_str().unwrap().len();
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
                decode("r", "f", &Json::String(text.into())).is_err(),
                "{text}"
            );
        }
    }
}
