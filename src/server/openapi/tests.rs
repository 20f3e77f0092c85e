//! `/openapi.json` against the router's tables.

use super::*;
use crate::server::router::Route;

/// (path, method) pairs: the router's, or the description's.
fn routed(table: &[Route]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = table
        .iter()
        .flat_map(|r| {
            r.allow
                .split(", ")
                .map(|m| (r.path.to_owned(), m.to_owned()))
        })
        .collect();
    all.sort();
    all
}

fn described(doc: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            all.push((path.clone(), method.to_uppercase()));
        }
    }
    all.sort();
    all
}

#[test]
fn every_route_is_described_and_nothing_else() {
    for kind in [Kind::Resident, Kind::Shared] {
        let doc: Value = serde_json::from_slice(&document(kind)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(described(&doc), routed(kind.routes()), "{kind:?}");
    }
}

/// Every `$ref` names a schema there is, and operation ids are unique.
#[test]
fn references_resolve() {
    fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    for kind in [Kind::Resident, Kind::Shared] {
        let doc = describe(kind);
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
        let mut ids: Vec<&Value> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| &op["operationId"])
            .collect();
        let n = ids.len();
        ids.sort_by_key(|v| v.to_string());
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids repeat");
    }
}

/// Each described path's parameters in `{}` are described as path parameters.
#[test]
fn path_parameters_are_described() {
    for kind in [Kind::Resident, Kind::Shared] {
        let doc = describe(kind);
        for (path, item) in doc["paths"].as_object().unwrap() {
            let named: Vec<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|s| s.split_once('}').map(|(n, _)| n))
                .collect();
            for op in item.as_object().unwrap().values() {
                let mut given: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                given.sort();
                let mut want = named.clone();
                want.sort();
                assert_eq!(given, want, "{path}");
            }
        }
    }
}

/// The query parameters described for `route` (`{path}`s and `{id}`s left out).
fn query_params(doc: &Value, path: &str, method: &str) -> Vec<String> {
    let mut names: Vec<String> = doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

/// The parameters and body fields described are the ones the routes take.
#[test]
fn parameters_are_the_routes_own() {
    use crate::server::routes::{DOCUMENT_PARAMS, QUERY_PARAMS, RENDER_PARAMS};
    for kind in [Kind::Resident, Kind::Shared] {
        let doc = describe(kind);
        let at = if kind == Kind::Shared {
            "/projects/{id}"
        } else {
            ""
        };
        for method in ["get", "head"] {
            let query = format!("{at}/query");
            assert_eq!(query_params(&doc, &query, method), sorted(QUERY_PARAMS));
            let document = format!("{at}/documents/{{path}}");
            assert_eq!(
                query_params(&doc, &document, method),
                sorted(DOCUMENT_PARAMS)
            );
            let render = format!("{at}/render/{{path}}");
            assert_eq!(query_params(&doc, &render, method), sorted(RENDER_PARAMS));
            let by_section = format!("{at}/documents/");
            assert_eq!(
                query_params(&doc, &by_section, method),
                sorted(DOCUMENT_PARAMS)
            );
        }
        let body = &doc["components"]["schemas"]["Search"]["properties"];
        let mut fields: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, sorted(QUERY_PARAMS));
        // Every field described is one the body takes (it refuses others).
        let all: serde_json::Map<String, Value> =
            fields.iter().map(|f| (f.clone(), Value::Null)).collect();
        let mut all = Value::Object(all);
        all["q"] = json!("words");
        serde_json::from_value::<crate::api::Search>(all).unwrap();
    }
}
