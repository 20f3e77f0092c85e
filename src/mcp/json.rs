//! JSON read as a JSON-RPC message must be read: one value, every key of an object
//! once.
//!
//! `serde_json::Value` keeps the last of two equal keys without a word, while rmcp's
//! typed structs refuse a repeated field: so `{"id":8,"id":9}` would be judged by one
//! id and refused by rmcp, which then cannot say to which request. Reading here finds
//! the repeat instead. Nesting is bounded by serde_json's own depth limit (128), as
//! for any `from_slice`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A key found twice in one object.
#[derive(Debug, PartialEq)]
pub struct Repeated {
    pub key: String,
    /// In the message object itself, not nested in a member.
    pub top_level: bool,
}

/// `bytes` as one JSON value, and the first key repeated in one of its objects, if any.
pub fn parse(bytes: &[u8]) -> serde_json::Result<(Value, Option<Repeated>)> {
    let repeated = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed {
        repeated: &repeated,
        depth: 0,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, repeated.into_inner()))
}

/// Builds a `Value` as serde_json's own visitor does, noting the first repeated key.
#[derive(Clone, Copy)]
struct Seed<'a> {
    repeated: &'a RefCell<Option<Repeated>>,
    depth: usize,
}

impl Seed<'_> {
    fn nested(self) -> Self {
        Seed {
            depth: self.depth + 1,
            ..self
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity; serde_json's visitor maps them to null too.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.nested())?;
            if object.contains_key(&key) {
                let mut repeated = self.repeated.borrow_mut();
                if repeated.is_none() {
                    *repeated = Some(Repeated {
                        key,
                        top_level: self.depth == 0,
                    });
                }
                continue;
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_serde_json_reads_them() {
        for text in [
            r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":18446744073709551615}"#,
            r#""\u00e9\n""#,
            "  [ ]  ",
            "-0",
            "1e400",
        ] {
            let ours = parse(text.as_bytes()).map(|(v, _)| v).ok();
            let theirs = serde_json::from_str::<Value>(text).ok();
            assert_eq!(ours, theirs, "{text}");
        }
        for bad in ["", "{", "1 2", "{\"a\":1,}", "[1,]", "nul"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn the_first_repeated_key_is_found() {
        let (_, r) = parse(br#"{"id":8,"id":9}"#).unwrap();
        assert_eq!(
            r,
            Some(Repeated {
                key: "id".into(),
                top_level: true
            })
        );
        let (v, r) = parse(br#"{"id":1,"p":{"a":[{"x":1,"x":2}],"b":1,"b":2}}"#).unwrap();
        assert_eq!(
            r,
            Some(Repeated {
                key: "x".into(),
                top_level: false
            })
        );
        assert_eq!(v["id"], 1);
        // Keys are compared decoded: an escape is no way around it.
        let (_, r) = parse(br#"{"id":1,"\u0069d":2}"#).unwrap();
        assert!(r.is_some_and(|r| r.key == "id" && r.top_level));
        assert_eq!(parse(br#"{"a":{"b":1},"b":{"a":1}}"#).unwrap().1, None);
    }
}
