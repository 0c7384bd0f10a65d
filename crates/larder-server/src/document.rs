//! The OpenAPI document as Larder publishes it: what poem-openapi writes, plus what its
//! registry cannot say:
//! - operations without a security scheme need none (`"security": []`), so linters and
//!   client generators can tell a public operation from one whose security was forgotten;
//! - strict JSON request bodies (published as [`JSON_CONTENT_TYPE`]) take only the fields
//!   they publish (`"additionalProperties": false`), which is what the server enforces: an
//!   unknown field is a 422. The webhook's bodies take any field and are left alone.
//!
//! The document is edited as an ordered tree, so everything else stays as poem-openapi
//! wrote it, in its order.

use indexmap::IndexMap;
use larder_api_common::body::JSON_CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Node {
    Object(IndexMap<String, Node>),
    Array(Vec<Node>),
    Scalar(Value),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(fields) => fields.get(key),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Object(fields) => fields.get_mut(key),
            _ => None,
        }
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = (&String, &mut Node)> {
        let fields = match self {
            Node::Object(fields) => Some(fields),
            _ => None,
        };
        fields.into_iter().flat_map(|f| f.iter_mut())
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Sets `key`, right before `before` when that key is there (else at the end).
    fn insert_before(&mut self, before: &str, key: &str, value: Node) {
        if let Node::Object(fields) = self
            && !fields.contains_key(key)
        {
            let at = fields.get_index_of(before).unwrap_or(fields.len());
            fields.shift_insert(at, key.to_owned(), value);
        }
    }
}

/// The schema names of every strict JSON request body of `doc`.
fn request_body_schemas(doc: &Node) -> Vec<String> {
    let Some(Node::Object(paths)) = doc.get("paths") else {
        return Vec::new();
    };
    paths
        .values()
        .filter_map(|item| match item {
            Node::Object(ops) => Some(ops.values()),
            _ => None,
        })
        .flatten()
        .filter_map(|op| {
            let content = op.get("requestBody")?.get("content")?;
            let Node::Object(types) = content else {
                return None;
            };
            let media = types.get(JSON_CONTENT_TYPE)?;
            let reference = media.get("schema")?.get("$ref")?.as_str()?;
            reference.rsplit('/').next().map(str::to_owned)
        })
        .collect()
}

/// Finishes poem-openapi's pretty JSON `spec` (see the module's doc).
pub fn finish(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Node>(spec) else {
        return spec.to_owned();
    };
    let bodies = request_body_schemas(&doc);
    if let Some(paths) = doc.get_mut("paths") {
        for (_, item) in paths.entries_mut() {
            for (_, op) in item.entries_mut() {
                if op.get("security").is_none() {
                    op.insert_before("operationId", "security", Node::Array(Vec::new()));
                }
            }
        }
    }
    if let Some(schemas) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")) {
        for (name, schema) in schemas.entries_mut() {
            if bodies.contains(name) && schema.get("properties").is_some() {
                schema.insert_before(
                    "example",
                    "additionalProperties",
                    Node::Scalar(Value::Bool(false)),
                );
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"{
  "paths": {
    "/a": {
      "post": {
        "requestBody": {
          "content": {
            "application/json; charset=utf-8": {
              "schema": {
                "$ref": "#/components/schemas/Req"
              }
            }
          }
        },
        "responses": {},
        "operationId": "open"
      },
      "get": {
        "responses": {},
        "security": [
          {
            "Auth": []
          }
        ],
        "operationId": "guarded"
      }
    }
  },
  "components": {
    "schemas": {
      "Req": {
        "type": "object",
        "properties": {
          "name": {
            "type": "string"
          }
        },
        "example": {
          "name": "x"
        }
      },
      "Answer": {
        "type": "object",
        "properties": {}
      }
    }
  }
}"##;

    #[test]
    fn public_operations_need_no_security_and_bodies_take_only_their_fields() {
        let finished = finish(SPEC);
        let doc: Value = serde_json::from_str(&finished).expect("still JSON");
        assert_eq!(
            doc["paths"]["/a"]["post"]["security"],
            serde_json::json!([])
        );
        assert_eq!(
            doc["paths"]["/a"]["get"]["security"][0]["Auth"],
            serde_json::json!([])
        );
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Req"]["additionalProperties"], false);
        assert_eq!(schemas["Answer"].get("additionalProperties"), None);
        // Everything else keeps poem-openapi's order and formatting.
        assert!(finished.contains(
            "        \"responses\": {},\n        \"security\": [],\n        \"operationId\": \"open\""
        ));
        assert!(finished.contains("\"additionalProperties\": false,\n        \"example\""));
        assert_eq!(finish(&finished), finished);
    }
}
