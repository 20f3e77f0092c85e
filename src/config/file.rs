//! Reading config.json (and shared_config.json): its entries in order, refusing what
//! would otherwise be misread without a word. Validation is the parent module's.

use serde::Deserialize;
use serde_json::Value;

/// config.json's keys and values, in order. A UTF-8 byte order mark (Notepad writes
/// one) is skipped; UTF-16, a key given twice and anything but an object at the top
/// level are refused with what to do.
pub(super) fn parse(bytes: &[u8]) -> std::result::Result<Vec<(String, Value)>, String> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        let why = "is not valid UTF-8: it starts with a UTF-16 byte order mark";
        return Err(format!("{why}; save it as UTF-8"));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "is not valid UTF-8 (at byte {}): save it as UTF-8",
            e.valid_up_to()
        )
    })?;
    match serde_json::from_str::<Entries>(text) {
        Ok(Entries(entries)) => Ok(entries),
        // Valid JSON, but not a settings object (or a key twice): no "not valid JSON".
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(e.to_string()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// A JSON object's entries in order. A key given twice is refused, as serde's derived
/// `Deserialize` refuses a field given twice in an HTTP body (`duplicate field`):
/// otherwise the last one would win without a word.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object at the top level")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "key \"{key}\" is given twice; keep one"
                        )));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Visit)
    }
}
