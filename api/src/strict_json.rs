//! Reading a request body as exactly one JSON value, and its fields with errors in the API's own
//! terms. serde's derive was too lenient and too talkative for a public API: it took a JSON array
//! as a struct (`["python","print(7)"]` ran as a job), ignored nothing after the value (`{...} xyz`
//! ran), and its messages named Rust types ("expected u64", "struct SubmitRequest with 9
//! elements", "floating point `1e+20`"). Here a body is one value with nothing after it, an
//! object is only ever an object, a key may appear once, and every refusal says the field's path,
//! what was expected and what was given.

use crate::error::ApiError;
use axum::http::StatusCode;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value whose objects keep their keys in order and never hold a key twice.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            // Which of two values a client meant cannot be guessed: refuse rather than pick one.
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("the key {key:?} appears twice")));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", message)
}

/// `body` as one JSON value with nothing but whitespace after it.
pub fn parse_body(body: &[u8]) -> Result<Json, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Json::deserialize(&mut de)
        .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
    de.end().map_err(|e| {
        malformed(format!(
            "the body holds more than one JSON value: something follows the job \
             (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

/// Longest piece of a client's string quoted back in a message.
const QUOTE_CHARS: usize = 40;

/// What a client gave, in words: `the string "lots"`, `the number 1.5`, `an array`.
pub fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) if s.chars().count() > QUOTE_CHARS => {
            let head: String = s.chars().take(QUOTE_CHARS).collect();
            format!("the string {head:?}... ({} bytes)", s.len())
        }
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(items) => format!("an array of {}", plural(items.len(), "item")),
        Json::Object(_) => "an object".into(),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The 400 of a value of the wrong type at `path`.
pub fn wrong_type(path: &str, expected: &str, given: &Json) -> ApiError {
    malformed(format!(
        "{path} must be {expected}, but it is {}",
        describe(given)
    ))
    .field(path)
}

/// `prefix.key`, or `key` at the top level.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// An object's fields, taken one by one; whatever is left at the end is an unknown field.
pub struct Fields {
    path: String,
    entries: Vec<(String, Json)>,
}

impl Fields {
    /// `value` as an object, or a 400 saying what `path` should have been (`what`: "a job").
    pub fn of(value: Json, path: &str, what: &str) -> Result<Self, ApiError> {
        match value {
            Json::Object(entries) => Ok(Self {
                path: path.to_string(),
                entries,
            }),
            other if path.is_empty() => Err(malformed(format!(
                "the body must be a JSON object ({what}), but it is {}",
                describe(&other)
            ))),
            other => Err(wrong_type(path, &format!("an object ({what})"), &other)),
        }
    }

    /// The path of `key` in this object.
    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`; `null` counts as absent.
    pub fn optional(&mut self, key: &str) -> Option<Json> {
        match self.take(key) {
            None | Some(Json::Null) => None,
            some => some,
        }
    }

    /// The value of `key`, which may be absent but not `null`.
    pub fn non_null(&mut self, key: &str, expected: &str) -> Result<Option<Json>, ApiError> {
        match self.take(key) {
            Some(Json::Null) => Err(wrong_type(&self.path(key), expected, &Json::Null)),
            other => Ok(other),
        }
    }

    /// The value of a key the client must give.
    pub fn required(&mut self, key: &str, expected: &str) -> Result<Json, ApiError> {
        let path = self.path(key);
        match self.take(key) {
            None => Err(malformed(format!("{path} is required: give {expected}")).field(path)),
            Some(v) => Ok(v),
        }
    }

    fn take(&mut self, key: &str) -> Option<Json> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    /// Ok if every field was taken; else a 400 on the first unknown one, listing the known.
    pub fn finish(self, known: &[&str]) -> Result<(), ApiError> {
        let Some((key, _)) = self.entries.first() else {
            return Ok(());
        };
        let path = join(&self.path, key);
        Err(malformed(format!(
            "unknown field {path:?}; the fields here are {}",
            known.join(", ")
        ))
        .field(path))
    }
}

/// A string.
pub fn string(value: Json, path: &str, expected: &str) -> Result<String, ApiError> {
    match value {
        Json::String(s) => Ok(s),
        other => Err(wrong_type(path, expected, &other)),
    }
}

pub fn boolean(value: Json, path: &str) -> Result<bool, ApiError> {
    match value {
        Json::Bool(b) => Ok(b),
        other => Err(wrong_type(path, "true or false", &other)),
    }
}

pub fn array(value: Json, path: &str, expected: &str) -> Result<Vec<Json>, ApiError> {
    match value {
        Json::Array(items) => Ok(items),
        other => Err(wrong_type(path, expected, &other)),
    }
}

/// Any finite JSON number, as a float (`points`, tolerances).
pub fn number(value: Json, path: &str, expected: &str) -> Result<f64, ApiError> {
    match &value {
        Json::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| wrong_type(path, expected, &value)),
        _ => Err(wrong_type(path, expected, &value)),
    }
}

/// 2^64 as a float: the first float too large for a u64.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// A whole number that fits in a u64. JSON has one number type, so `89627.0` is the whole number
/// 89627 (as the OpenAPI document's `integer` means); `1.5`, `-1` and `1e20` are not.
pub fn whole_number(value: Json, path: &str) -> Result<u64, ApiError> {
    let expected = format!("a whole number from 0 to {}", u64::MAX);
    let Json::Number(n) = &value else {
        return Err(wrong_type(path, &expected, &value));
    };
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && (0.0..TWO_POW_64).contains(&f) => {
            // Exact: an integral float below 2^64 converts without rounding.
            Ok(f as u64)
        }
        _ => Err(wrong_type(path, &expected, &value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: ApiError) -> String {
        e.message
    }

    #[test]
    fn one_value_and_nothing_after_it() {
        assert!(parse_body(br#" {"a": 1} "#).is_ok());
        let e = parse_body(br#"{"a": 1} xyz"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("more than one JSON value"),
            "{}",
            e.message
        );
        assert!(e.message.contains("column 10"), "{}", e.message);
        assert!(parse_body(br#"{"a": 1}{"a": 2}"#).is_err());
        assert!(parse_body(b"").is_err());
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let e = parse_body(br#"{"language": "python", "language": "c"}"#).unwrap_err();
        assert!(
            e.message.contains("\"language\" appears twice"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_array_is_not_an_object() {
        let v = parse_body(br#"["python", "print(7)"]"#).unwrap();
        let e = Fields::of(v, "", "a job").err().unwrap();
        assert_eq!(e.field, None);
        assert_eq!(
            e.message,
            "the body must be a JSON object (a job), but it is an array of 2 items"
        );
        let e = Fields::of(Json::Array(vec![]), "files[0]", "a file")
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("files[0]"));
        assert!(e.message.starts_with("files[0] must be an object (a file)"));
    }

    #[test]
    fn integral_floats_are_whole_numbers() {
        let n = |text: &str| whole_number(parse_body(text.as_bytes()).unwrap(), "limits.x");
        assert_eq!(n("89627").unwrap(), 89627);
        assert_eq!(n("89627.0").unwrap(), 89627);
        assert_eq!(n("1e3").unwrap(), 1000);
        assert_eq!(n("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["1.5", "-1", "-0.5", "1e20", "\"5\"", "true", "[1]"] {
            let e = n(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("limits.x"), "{bad}");
            assert!(
                e.message.contains("a whole number from 0 to"),
                "{}",
                e.message
            );
            assert!(!e.message.contains("u64"), "{}", e.message);
        }
        assert_eq!(
            msg(n("1e20").unwrap_err()),
            "limits.x must be a whole number from 0 to 18446744073709551615, but it is the number 1e+20"
        );
    }

    #[test]
    fn messages_say_what_was_given() {
        assert_eq!(describe(&Json::Null), "null");
        assert_eq!(
            describe(&Json::String("lots".into())),
            "the string \"lots\""
        );
        let long = describe(&Json::String("x".repeat(1000)));
        assert!(long.len() < 80 && long.contains("1000 bytes"), "{long}");
        assert_eq!(describe(&Json::Object(vec![])), "an object");
    }

    #[test]
    fn fields_report_missing_null_and_unknown() {
        let v = parse_body(br#"{"a": null, "b": 1, "c": 2}"#).unwrap();
        let mut f = Fields::of(v, "limits", "limits").unwrap();
        assert_eq!(f.optional("a"), None);
        let e = f.required("z", "a string").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.z"));
        assert_eq!(e.message, "limits.z is required: give a string");
        assert!(f.non_null("b", "a number").unwrap().is_some());
        let e = f.finish(&["a", "b"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.c"));
        assert!(
            e.message.contains("unknown field \"limits.c\""),
            "{}",
            e.message
        );
    }
}
