//! Values at run time: what variables hold and what actions take and return.
//!
//! Values are plain data (serde), because a suspended run keeps its variables
//! in the store and may be resumed by another process.
//!
//! A [`Record`] keeps its field names apart from its values: every event of
//! one trigger shares one list of names, so taking an event in costs one
//! vector of values, not a map with a copy of each name.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// A value of the flow language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// `none`.
    None,
    /// Text; phone numbers, sender, template and assistant names are text too.
    String(String),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A span of time in milliseconds.
    Duration(u64),
    /// An instant with the offset it was given in.
    DateTime(DateTime<FixedOffset>),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `{ key: value }`, and events, results and caught errors.
    Record(Record),
}

impl Value {
    /// A record from key-value pairs; a name given twice keeps its last
    /// value.
    ///
    /// ```
    /// use flowc::runtime::Value;
    ///
    /// let customer = Value::record([("name", Value::from("Ana")), ("visits", Value::Int(3))]);
    /// assert_eq!(customer.field("visits"), Some(&Value::Int(3)));
    /// assert_eq!(customer.to_string(), "{ name: Ana, visits: 3 }");
    /// ```
    pub fn record<K: AsRef<str>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Record(fields.into_iter().collect())
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A field of a record.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(record) => record.get(name),
            _ => None,
        }
    }

    /// Whether this is `none`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::String(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::String(text)
    }
}

/// The fields of a record value, in the order of their names.
///
/// Its names and values are shared: cloning a record copies neither, and
/// the records of one shape built with [`Record::with_names`] (every event
/// of a trigger) share one list of names. Changing a record
/// ([`Record::insert`], [`Record::remove`]) copies it first. Two records are
/// equal when they have the same names with equal values.
///
/// ```
/// use flowc::runtime::{Record, Value};
///
/// let mut record: Record = [("b", Value::Int(2)), ("a", Value::Int(1))].into_iter().collect();
/// record.insert("c", Value::Bool(true));
/// let names: Vec<&str> = record.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["a", "b", "c"]);
/// assert_eq!(record.get("b"), Some(&Value::Int(2)));
/// ```
#[derive(Clone)]
pub struct Record {
    /// Sorted, without repeats; shared between records of one shape.
    names: Arc<[Box<str>]>,
    /// `values[i]` belongs to `names[i]`; shared too, so that keeping a
    /// copy of a run (or passing an event on) copies no field.
    values: Arc<[Value]>,
}

impl Record {
    /// A record without fields.
    pub fn new() -> Record {
        Record {
            names: Arc::from(Vec::new()),
            values: Arc::from(Vec::new()),
        }
    }

    /// A record with these names, shared, and their values in the same
    /// order; `None` when the counts differ or the names are not sorted
    /// and distinct.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flowc::runtime::{Record, Value};
    ///
    /// let names: Arc<[Box<str>]> = Arc::from(vec!["id".into(), "phone".into()]);
    /// let record = Record::with_names(names.clone(), vec![Value::Int(7), Value::None]).unwrap();
    /// assert_eq!(record.get("id"), Some(&Value::Int(7)));
    /// assert!(Record::with_names(names, vec![]).is_none());
    /// ```
    pub fn with_names(names: Arc<[Box<str>]>, values: Vec<Value>) -> Option<Record> {
        let sorted = names.windows(2).all(|pair| pair[0] < pair[1]);
        (sorted && names.len() == values.len()).then(|| Record {
            names,
            values: values.into(),
        })
    }

    /// [`Record::with_names`] for names known to be sorted and distinct
    /// (a trigger's, shared by all its events): only the counts are
    /// compared.
    pub(crate) fn with_sorted_names(names: Arc<[Box<str>]>, values: Vec<Value>) -> Option<Record> {
        debug_assert!(names.windows(2).all(|pair| pair[0] < pair[1]));
        (names.len() == values.len()).then(|| Record {
            names,
            values: values.into(),
        })
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = self.position(name).ok()?;
        self.values.get(index)
    }

    /// Sets a field, added if the record does not have it.
    pub fn insert(&mut self, name: &str, value: Value) {
        match self.position(name) {
            Ok(index) => {
                let mut values = self.values.to_vec();
                values[index] = value;
                self.values = values.into();
            }
            Err(index) => {
                let mut names = self.names.to_vec();
                names.insert(index, name.into());
                self.names = Arc::from(names);
                let mut values = self.values.to_vec();
                values.insert(index, value);
                self.values = values.into();
            }
        }
    }

    /// Takes a field out, if the record has it.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.position(name).ok()?;
        let mut names = self.names.to_vec();
        names.remove(index);
        self.names = Arc::from(names);
        let mut values = self.values.to_vec();
        let value = values.remove(index);
        self.values = values.into();
        Some(value)
    }

    /// The fields, in the order of their names.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.names
            .iter()
            .map(|name| &**name)
            .zip(self.values.iter())
    }

    /// The field names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|name| &**name)
    }

    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it has no fields.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Where `name` is, or where it would go.
    fn position(&self, name: &str) -> Result<usize, usize> {
        // Most records are an event's dozen fields: there, comparing each
        // name's length and first byte (and the rest only when those agree)
        // is cheaper than the full comparisons of a binary search.
        if self.names.len() <= 16 {
            let (length, first) = (name.len(), name.as_bytes().first());
            let found = self.names.iter().position(|probe| {
                probe.len() == length && probe.as_bytes().first() == first && **probe == *name
            });
            if let Some(index) = found {
                return Ok(index);
            }
        }
        self.names.binary_search_by(|probe| (**probe).cmp(name))
    }
}

impl Default for Record {
    fn default() -> Record {
        Record::new()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(fields: I) -> Record {
        let mut pairs: Vec<(K, Value)> = fields.into_iter().collect();
        // Stable, so that of two equal names the last one given is last.
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut names: Vec<Box<str>> = Vec::with_capacity(pairs.len());
        let mut values: Vec<Value> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = name.as_ref();
            if names.last().is_some_and(|last| &**last == name) {
                if let Some(last) = values.last_mut() {
                    *last = value;
                }
            } else {
                names.push(name.into());
                values.push(value);
            }
        }
        Record {
            names: Arc::from(names),
            values: values.into(),
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        (Arc::ptr_eq(&self.names, &other.names) || self.names == other.names)
            && self.values == other.values
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Record, D::Error> {
        let fields = std::collections::BTreeMap::<String, Value>::deserialize(deserializer)?;
        Ok(fields.into_iter().collect())
    }
}

impl fmt::Display for Value {
    /// How a value reads inside an interpolated string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => Ok(()),
            Value::String(s) => f.write_str(s),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Duration(ms) => f.write_str(&crate::duration::format(*ms)),
            Value::DateTime(t) => f.write_str(&t.to_rfc3339()),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Record(record) => {
                f.write_str("{")?;
                for (i, (k, v)) in record.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, " {k}: {v}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_serialize_as_tagged_data() {
        let v = Value::record([("n", Value::Int(1)), ("s", Value::String("x".into()))]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
    }

    #[test]
    fn records_keep_the_last_of_repeated_names_and_compare_by_content() {
        let repeated = Value::record([
            ("a", Value::Int(1)),
            ("b", Value::Int(2)),
            ("a", Value::Int(3)),
        ]);
        assert_eq!(
            repeated,
            Value::record([("b", Value::Int(2)), ("a", Value::Int(3))])
        );
        assert_ne!(repeated, Value::record([("a", Value::Int(3))]));
        assert_eq!(repeated.field("c"), None);
    }

    #[test]
    fn inserting_into_a_shared_shape_leaves_the_other_records_alone() {
        let first: Record = [("a", Value::Int(1))].into_iter().collect();
        let mut second = first.clone();
        second.insert("b", Value::Int(2));
        second.insert("a", Value::Int(5));
        assert_eq!(first.names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(first.get("a"), Some(&Value::Int(1)));
        assert_eq!(
            second.iter().collect::<Vec<_>>(),
            [("a", &Value::Int(5)), ("b", &Value::Int(2))]
        );
    }

    #[test]
    fn records_need_sorted_distinct_names_of_their_values() {
        let names =
            |list: &[&str]| -> Arc<[Box<str>]> { list.iter().map(|n| Box::from(*n)).collect() };
        assert!(Record::with_names(names(&["b", "a"]), vec![Value::None, Value::None]).is_none());
        assert!(Record::with_names(names(&["a", "a"]), vec![Value::None, Value::None]).is_none());
        assert!(Record::with_names(names(&["a", "b"]), vec![Value::None, Value::None]).is_some());
    }
}
