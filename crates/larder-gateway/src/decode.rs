//! Decoding a ThriveCart delivery body, whichever way it was sent.
//!
//! ThriveCart posts `application/x-www-form-urlencoded` by default (PHP `http_build_query`:
//! bracket keys such as `customer[email]` and `order[charges][0][item_type]`, `+` for a
//! space, `%2B` for a plus) and JSON when the tenant ticked "receive results as JSON". Both
//! decode to the same document here, and so does `multipart/form-data` (what a form
//! posted with files, or a relay in between, sends): its parts are the form's fields. A
//! missing or odd `Content-Type` is sniffed.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body is not a form: {0}")]
    Form(String),
    #[error("the body is not a multipart form: {0}")]
    Multipart(String),
    #[error("the body holds more than {MAX_FIELDS} fields; no ThriveCart delivery has that many")]
    TooManyFields,
}

/// The most fields (form pairs, or JSON values) a delivery may hold. A real one holds a few
/// hundred; a body of a megabyte of tiny fields is refused rather than built into a
/// document.
pub const MAX_FIELDS: usize = 10_000;

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
        "multipart/form-data" => return decode_multipart(content_type.unwrap_or_default(), body),
        "application/json" | "text/json" => true,
        m if m.ends_with("+json") => true,
        "application/x-www-form-urlencoded" => false,
        // Missing or something else: look at the body.
        _ => first == b'{' || first == b'[',
    };
    if json {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        if count_values(&doc) > MAX_FIELDS {
            return Err(DecodeError::TooManyFields);
        }
        Ok(doc)
    } else {
        decode_form(body)
    }
}

/// How many values a document holds, containers included (without recursion: serde_json
/// already bounds the depth).
fn count_values(doc: &Value) -> usize {
    let mut count = 0;
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        count += 1;
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
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
    let pairs = url::form_urlencoded::parse(body).map(|(k, v)| {
        if k.contains('\u{fffd}') || v.contains('\u{fffd}') {
            Err(DecodeError::Form("a field is not valid UTF-8".into()))
        } else {
            Ok((k.into_owned(), v.into_owned()))
        }
    });
    document(pairs)
}

/// The document of a form's fields, bracket keys nested.
fn document(
    pairs: impl Iterator<Item = Result<(String, String), DecodeError>>,
) -> Result<Value, DecodeError> {
    let mut root = Map::new();
    for (n, pair) in pairs.enumerate() {
        if n >= MAX_FIELDS {
            return Err(DecodeError::TooManyFields);
        }
        let (key, value) = pair?;
        if key.is_empty() {
            continue;
        }
        insert(&mut root, &key, value)?;
    }
    Ok(listify(Value::Object(root)))
}

/// A `multipart/form-data` body (in memory already) as the form its parts make.
fn decode_multipart(content_type: &str, body: &[u8]) -> Result<Value, DecodeError> {
    let bad = |e: multer::Error| DecodeError::Multipart(e.to_string());
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let bytes = bytes::Bytes::copy_from_slice(body);
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    // Nothing here waits on I/O: the whole body is the stream's one chunk.
    let pairs = futures::executor::block_on(async {
        let mut pairs = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            if pairs.len() >= MAX_FIELDS {
                return Err(DecodeError::TooManyFields);
            }
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.bytes().await.map_err(bad)?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| DecodeError::Multipart("a field is not UTF-8 text".into()))?;
            pairs.push((name, value));
        }
        Ok(pairs)
    })?;
    if pairs.is_empty() {
        return Err(DecodeError::Multipart("no fields".into()));
    }
    document(pairs.into_iter().map(Ok))
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

    /// A form's fields as `multipart/form-data`, the way browsers and HTTP libraries send
    /// them.
    fn multipart(pairs: &[(String, String)]) -> (String, Vec<u8>) {
        let boundary = "----larder-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (k, v) in pairs {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    #[test]
    fn multipart_forms_decode_like_forms() {
        for fixture in larder_testkit::fixtures::THRIVECART {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(fixture.form.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let (ct, body) = multipart(&pairs);
            assert_eq!(
                decode_body(Some(&ct), &body).unwrap(),
                fixture.json_value(),
                "{}",
                fixture.name
            );
        }
        assert!(decode_body(Some("multipart/form-data"), b"--x\r\n").is_err());
        assert!(decode_body(Some("multipart/form-data; boundary=x"), b"not multipart").is_err());
        let (ct, body) = multipart(&[("a".into(), "1".into()), ("a[b]".into(), "2".into())]);
        assert!(decode_body(Some(&ct), &body).is_err());
        let many: Vec<(String, String)> = (0..=MAX_FIELDS)
            .map(|n| (format!("k{n}"), "v".into()))
            .collect();
        let (ct, body) = multipart(&many);
        assert_eq!(
            decode_body(Some(&ct), &body),
            Err(DecodeError::TooManyFields)
        );
    }

    #[test]
    fn bodies_of_too_many_fields_are_refused() {
        let form: String = (0..=MAX_FIELDS).map(|n| format!("k{n}=v&")).collect();
        assert_eq!(
            decode_body(None, form.as_bytes()),
            Err(DecodeError::TooManyFields)
        );
        let json = serde_json::to_vec(&vec!["x"; MAX_FIELDS]).unwrap();
        assert_eq!(
            decode_body(Some("application/json"), &json),
            Err(DecodeError::TooManyFields)
        );
        let fine: String = (0..MAX_FIELDS - 1).map(|n| format!("k{n}=v&")).collect();
        assert!(decode_body(None, fine.as_bytes()).is_ok());
    }
}
