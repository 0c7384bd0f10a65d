//! Decoding a ThriveCart delivery body, whichever way it was sent.
//!
//! ThriveCart posts `application/x-www-form-urlencoded` by default (PHP `http_build_query`:
//! bracket keys such as `customer[email]` and `order[charges][0][item_type]`, `+` for a
//! space, `%2B` for a plus) and JSON when the tenant ticked "receive results as JSON". Both
//! decode to the same document here. A missing or odd `Content-Type` is sniffed.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body is not a form: {0}")]
    Form(String),
}

/// Decodes a delivery body into a JSON document. An empty body is an empty object (a ping).
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, DecodeError> {
    let mime = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let Some(first) = first else {
        return Ok(Value::Object(Map::new()));
    };
    let json = match mime.as_str() {
        "application/json" | "text/json" => true,
        m if m.ends_with("+json") => true,
        "application/x-www-form-urlencoded" => false,
        // Missing or something else: look at the body.
        _ => first == b'{' || first == b'[',
    };
    if json {
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))
    } else {
        decode_form(body)
    }
}

/// The deepest key accepted (`order[charges][0][item_type]` is 4). ThriveCart nests 4
/// deep at most; a limit keeps a hostile body from recursing the decoder into the ground.
const MAX_KEY_DEPTH: usize = 8;

/// One bracket key, `order[charges][0][item_type]`, as its segments. `a[]` appends.
fn key_segments(key: &str) -> Result<Vec<Option<&str>>, DecodeError> {
    let bad = || DecodeError::Form(format!("malformed key `{key}`"));
    let (name, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if name.is_empty() {
        return Err(bad());
    }
    let mut segments = vec![Some(name)];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(bad)?;
        let close = inner.find(']').ok_or_else(bad)?;
        let segment = &inner[..close];
        segments.push((!segment.is_empty()).then_some(segment));
        if segments.len() > MAX_KEY_DEPTH {
            return Err(DecodeError::Form(format!(
                "a key nests deeper than {MAX_KEY_DEPTH} levels"
            )));
        }
        rest = &inner[close + 1..];
    }
    Ok(segments)
}

fn insert(root: &mut Map<String, Value>, key: &str, value: String) -> Result<(), DecodeError> {
    let conflict = || DecodeError::Form(format!("key `{key}` clashes with another key"));
    let segments = key_segments(key)?;
    let mut map = root;
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        // `a[]` appends: the next free index.
        let segment = match segment {
            Some(s) => s.to_owned(),
            None => map.len().to_string(),
        };
        if i == last {
            if map.contains_key(&segment) {
                return Err(conflict());
            }
            map.insert(segment, Value::String(value));
            return Ok(());
        }
        let next = map
            .entry(segment)
            .or_insert_with(|| Value::Object(Map::new()));
        map = next.as_object_mut().ok_or_else(conflict)?;
    }
    Ok(())
}

/// Turns objects keyed `0, 1, 2…` into arrays, as PHP lists are sent.
fn listify(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_list =
                !map.is_empty() && (0..map.len()).all(|i| map.contains_key(&i.to_string()));
            if is_list {
                let mut map = map;
                Value::Array(
                    (0..map.len())
                        .map(|i| listify(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                        .collect(),
                )
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, listify(v))).collect())
            }
        }
        other => other,
    }
}

fn decode_form(body: &[u8]) -> Result<Value, DecodeError> {
    if std::str::from_utf8(body).is_err() {
        return Err(DecodeError::Form("the body is not UTF-8 text".into()));
    }
    if !body.contains(&b'=') {
        return Err(DecodeError::Form("no `key=value` pairs".into()));
    }
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if key.is_empty() {
            continue;
        }
        if key.contains('\u{fffd}') || value.contains('\u{fffd}') {
            return Err(DecodeError::Form("a field is not valid UTF-8".into()));
        }
        insert(&mut root, &key, value.into_owned())?;
    }
    Ok(listify(Value::Object(root)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_form_fixture_decodes_to_its_json_twin() {
        let mut seen = 0;
        for fixture in larder_testkit::fixtures::THRIVECART {
            let stem = fixture.name;
            let form = fixture.form.as_bytes();
            let json = fixture.json_value();
            let ct = Some("application/x-www-form-urlencoded");
            assert_eq!(decode_body(ct, form).unwrap(), json, "{stem}");
            // Sniffed the same without a Content-Type, or with a wrong one.
            assert_eq!(decode_body(None, form).unwrap(), json, "{stem}");
            assert_eq!(
                decode_body(Some("text/plain"), form).unwrap(),
                json,
                "{stem}"
            );
            assert_eq!(
                decode_body(None, fixture.json.as_bytes()).unwrap(),
                json,
                "{stem}"
            );
            seen += 1;
        }
        assert_eq!(seen, 13);
    }

    #[test]
    fn plus_is_a_space_and_percent_2b_a_plus() {
        let doc = decode_body(
            None,
            b"a=x+y&b=stripe_connect%2B&c%5Bd%5D%5B0%5D=1&c%5Bd%5D%5B1%5D=2",
        )
        .unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"a": "x y", "b": "stripe_connect+", "c": {"d": ["1", "2"]}})
        );
    }

    #[test]
    fn raw_brackets_and_appends_work_too() {
        let doc = decode_body(None, b"customer[email]=a%40b.c&list[]=x&list[]=y&empty=").unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"customer": {"email": "a@b.c"}, "list": ["x", "y"], "empty": ""})
        );
    }

    #[test]
    fn empty_bodies_are_empty_documents() {
        assert_eq!(decode_body(None, b"").unwrap(), serde_json::json!({}));
        assert_eq!(
            decode_body(Some("application/json"), b"  ").unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn undecodable_bodies_are_errors() {
        assert!(decode_body(Some("application/json"), b"{\"event\":").is_err());
        assert!(decode_body(None, b"{not json").is_err());
        assert!(decode_body(None, b"just words").is_err());
        assert!(decode_body(None, b"a=1&a[b]=2").is_err());
        assert!(decode_body(None, b"a[b=1").is_err());
        assert!(decode_body(None, &[0xff, 0xfe, b'=', 0x80]).is_err());
        assert!(decode_body(None, b"a=%ff%fe").is_err());
        // Deep nesting is refused, not recursed into.
        let deep = format!("a{}=1", "[x]".repeat(100_000));
        assert!(decode_body(None, deep.as_bytes()).is_err());
        let ok = format!("a{}=1", "[x]".repeat(MAX_KEY_DEPTH - 1));
        assert!(decode_body(None, ok.as_bytes()).is_ok());
    }
}
