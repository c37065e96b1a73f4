//! The OpenAPI document: generated from code, committed under `openapi/`, served, and
//! complete about security and errors. `UPDATE_OPENAPI=1 cargo test` regenerates it.

use std::path::PathBuf;

use breadbox_tests::*;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

#[test]
fn committed_spec_matches_the_code() {
    let generated = breadbox_api::api::spec_json();
    let path = committed_path();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, format!("{generated}\n")).expect("write spec");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p breadbox-tests spec` and commit it"
    );
}

#[test]
fn every_operation_declares_security_scopes_and_errors() {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("spec is JSON");
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["OAuth2"]["flows"]["clientCredentials"]["tokenUrl"], "/api/v1/auth/token");
    assert_eq!(schemes["ApiKeyAuth"]["name"], "X-API-Key");
    assert_eq!(schemes["BearerAuth"]["scheme"], "bearer");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 6);
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(op["summary"].is_string(), "{id} has no summary");
            let security = op["security"].as_array().unwrap_or_else(|| panic!("{id} has no security"));
            let names: Vec<&str> = security.iter().flat_map(|s| s.as_object().expect("req").keys()).map(String::as_str).collect();
            assert_eq!(names, ["OAuth2", "BearerAuth", "ApiKeyAuth"], "{id}");
            if id != "get_me" {
                let scopes = &security[0]["OAuth2"];
                assert_eq!(scopes.as_array().map(Vec::len), Some(1), "{id} declares one required scope");
            }
            for status in ["401", "403", "500"] {
                assert!(op["responses"][status].is_object(), "{id} does not document {status}");
            }
        }
    }
}

#[test]
fn every_operation_declares_its_rate_limit_class() {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("spec is JSON");
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let class = op["x-rate-limit-class"].as_str().unwrap_or_else(|| panic!("{method} {path} has no class"));
            let expected = breadbox_auth::limits::class_of(method, path).expect("an API path");
            assert_eq!(class, expected.as_str(), "{method} {path}");
            seen.insert(class.to_owned());
        }
    }
    for class in ["list", "detail", "write"] {
        assert!(seen.contains(class), "no {class} operation");
    }
    assert_eq!(spec["paths"]["/api/v1/me"]["get"]["x-rate-limit-class"], "detail");
}

/// The middleware takes `Idempotency-Key` on every POST under `/api/v1` but the OAuth
/// endpoints; the spec must say so on each of those operations, and on no other.
#[test]
fn every_post_declares_the_idempotency_key() {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("spec is JSON");
    let mut posts = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let params = op["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
            let key = params.iter().find(|p| p["name"] == "Idempotency-Key");
            if method == "post" && !path.starts_with("/api/v1/auth/") {
                posts += 1;
                let key = key.unwrap_or_else(|| panic!("POST {path} does not declare Idempotency-Key"));
                assert_eq!(key["in"], "header", "POST {path}");
                assert_eq!(key["required"], false, "POST {path}");
            } else {
                assert!(key.is_none(), "{method} {path} declares Idempotency-Key");
            }
        }
    }
    assert!(posts >= 20, "only {posts} POST operations");
}

#[test]
fn every_get_with_an_etag_documents_if_none_match_and_304() {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("spec is JSON");
    let mut tagged = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let Some(get) = item.get("get") else { continue };
        let params = get["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
        let header = params.iter().find(|p| p["name"] == "If-None-Match");
        if get["responses"]["200"]["headers"]["ETAG"].is_object() {
            tagged.push(path.clone());
            let header = header.unwrap_or_else(|| panic!("GET {path} answers an ETag but takes no If-None-Match"));
            assert_eq!((&header["in"], &header["required"]), (&Value::from("header"), &Value::from(false)), "GET {path}");
            let not_modified = &get["responses"]["304"];
            assert!(not_modified["headers"]["ETAG"].is_object(), "GET {path}: 304 with its ETag");
            assert!(not_modified.get("content").is_none(), "GET {path}: a 304 has no body");
        } else {
            assert!(header.is_none() && get["responses"]["304"].is_null(), "GET {path} has no ETag to compare");
        }
    }
    // accounts, contacts, contracts, deals, devices, leads, touchpoints, compliance
    // items, onboarding projects.
    assert_eq!(tagged.len(), 9, "{tagged:?}");
}

async fn served_spec_and_swagger_ui(app: &mut TestApp) {
    let served = app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("spec").text().await.expect("text");
    assert_eq!(served.trim_end(), breadbox_api::api::spec_json().trim_end());
    let docs = app.http.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.expect("html").to_lowercase().contains("swagger"));
}

/// POSTs `body` to `path`: answered `success` when it is given, else refused with a 422
/// whose first detail names `field`.
async fn at_bound(app: &TestApp, path: &str, body: &Value, field: &str, success: Option<u16>, case: &str) {
    let answer = app.send(reqwest::Method::POST, path, &app.admin_key, Some(body), &[]).await;
    match success {
        Some(status) => assert_eq!(answer.status, status, "{case}: {}", answer.body),
        None => {
            assert_eq!(answer.status, 422, "{case}: {}", answer.body);
            assert_eq!(answer.body["error"]["details"][0]["field"], field, "{case}: {}", answer.body);
        }
    }
}

// The `maxLength` the spec documents is the length the domain enforces: a text of that
// many characters is stored, one more is a 422 naming the field.
async fn documented_max_lengths_are_the_ones_enforced(app: &mut TestApp) {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("the spec is JSON");
    let max = |schema: &str, field: &str| {
        let max = &spec["components"]["schemas"][schema]["properties"][field]["maxLength"];
        usize::try_from(max.as_u64().unwrap_or_else(|| panic!("{schema}.{field} has no maxLength"))).expect("a length")
    };
    let acme = app.send(reqwest::Method::POST, "/api/v1/accounts", &app.admin_key, Some(&serde_json::json!({"name": "Acme"})), &[]).await;
    let acme = acme.body["data"]["id"].as_str().expect("id").to_owned();
    let cases = [
        ("/api/v1/accounts", "CreateAccount", "name", serde_json::json!({})),
        ("/api/v1/contacts", "CreateContact", "phone", serde_json::json!({"firstName": "F", "lastName": "L"})),
        ("/api/v1/devices", "CreateDevice", "hostname", serde_json::json!({"accountId": acme, "rmmAgentId": "agent"})),
        ("/api/v1/touchpoints", "CreateTouchpoint", "subject", serde_json::json!({"accountId": acme, "type": "CALL", "occurredAt": "2026-12-01T10:00:00Z"})),
    ];
    for (path, schema, field, base) in cases {
        let n = max(schema, field);
        for (length, accepted) in [(n, true), (n + 1, false)] {
            let mut body = base.clone();
            body[field] = Value::from("x".repeat(length));
            if path == "/api/v1/devices" {
                body["rmmAgentId"] = Value::from(format!("agent-{length}"));
            }
            at_bound(app, path, &body, field, accepted.then_some(201), &format!("{schema}.{field} of {length}")).await;
        }
    }
}

// The ranges the spec documents for numbers (`minimum`, `maximum`, `exclusiveMinimum`)
// and lists (`minItems`, `maxItems`) are the ones the domain enforces: each bound is
// accepted and the value just past it is a 422 naming the field.
async fn documented_ranges_are_the_ones_enforced(app: &mut TestApp) {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("the spec is JSON");
    let bound = |schema: &str, field: &str, key: &str| {
        let value = &spec["components"]["schemas"][schema]["properties"][field][key];
        value.as_f64().unwrap_or_else(|| panic!("{schema}.{field} documents no {key}"))
    };
    let acme = app.send(reqwest::Method::POST, "/api/v1/accounts", &app.admin_key, Some(&serde_json::json!({"name": "Acme"})), &[]).await;
    let acme = acme.body["data"]["id"].as_str().expect("id").to_owned();
    let signals = format!("/api/v1/health-scores/{acme}/signals");
    let observed = breadbox_api::time::rfc3339(breadbox_auth::db::now_ms() - 1_000);
    // (path, schema, field, a valid body without the field, the success status)
    let numbers = [
        ("/api/v1/accounts", "CreateAccount", "seats", serde_json::json!({"name": "Seats"}), 201),
        ("/api/v1/deals", "CreateDeal", "amount", serde_json::json!({"accountId": acme, "name": "Deal"}), 201),
        ("/api/v1/leads", "CreateLead", "employeeCount", serde_json::json!({"companyName": "Lead"}), 201),
        (signals.as_str(), "PushSignal", "value", serde_json::json!({"source": "rmm", "name": "patching", "weight": 1, "observedAt": observed}), 200),
        (signals.as_str(), "PushSignal", "weight", serde_json::json!({"source": "rmm", "name": "patching", "value": 50, "observedAt": observed}), 200),
    ];
    for (path, schema, field, base, ok) in numbers {
        let (min, max) = (bound(schema, field, "minimum"), bound(schema, field, "maximum"));
        let above_min = spec["components"]["schemas"][schema]["properties"][field]["exclusiveMinimum"] == true;
        let step = if spec["components"]["schemas"][schema]["properties"][field]["type"] == "integer" { 1.0 } else { 0.5 };
        let mut cases = vec![(max, true), (max + step, false), (min - step, false)];
        cases.push((min, !above_min));
        if above_min {
            cases.push((min + step, true));
        }
        for (value, accepted) in cases {
            let mut body = base.clone();
            body[field] = if step == 1.0 { Value::from(value as i64) } else { Value::from(value) };
            at_bound(app, path, &body, field, accepted.then_some(ok), &format!("{schema}.{field} = {value}")).await;
        }
    }
    let site: fn(usize) -> Value = |i| serde_json::json!({"name": format!("Site {i}")});
    let milestone: fn(usize) -> Value = |i| serde_json::json!({"name": format!("Milestone {i}")});
    let lists = [
        ("/api/v1/accounts", "CreateAccount", "sites", serde_json::json!({"name": "Sites"}), site),
        (
            "/api/v1/admin/onboarding-projects",
            "CreateOnboardingProject",
            "milestones",
            serde_json::json!({"accountId": acme, "name": "Go-live"}),
            milestone,
        ),
    ];
    for (path, schema, field, base, item) in lists {
        let max = bound(schema, field, "maxItems") as usize;
        let min = spec["components"]["schemas"][schema]["properties"][field]["minItems"].as_u64().unwrap_or(0) as usize;
        let mut cases = vec![(max, true), (max + 1, false), (min, true)];
        if min > 0 {
            cases.push((min - 1, false));
        }
        for (count, accepted) in cases {
            let mut body = base.clone();
            body[field] = Value::Array((0..count).map(item).collect());
            at_bound(app, path, &body, field, accepted.then_some(201), &format!("{schema}.{field} of {count}")).await;
        }
    }
    // The bulk upsert's bound is the one its own tests send over (500 and 501).
    assert_eq!(bound("BulkDevices", "devices", "maxItems") as usize, breadbox_api::domain::device_bulk::MAX_ITEMS);
    assert_eq!(bound("BulkDevices", "devices", "minItems"), 1.0);
}

// Every free text of a request body (a string with a `maxLength` and no `format`)
// documents the characters it takes as a `pattern`.
#[test]
fn every_free_text_documents_its_pattern() {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("the spec is JSON");
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    let mut free_texts = 0;
    for (name, schema) in schemas {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            if property["type"] == "string" && property["maxLength"].is_u64() && property["format"].is_null() {
                free_texts += 1;
                let pattern = property["pattern"].as_str().unwrap_or_else(|| panic!("{name}.{field} documents no pattern"));
                regex::Regex::new(pattern).unwrap_or_else(|err| panic!("{name}.{field}: {err}"));
            }
        }
    }
    assert!(free_texts > 50, "only {free_texts} free texts found");
}

// The `pattern`s the spec documents for texts are the rules the domain applies: each
// sample is accepted exactly when the pattern (compiled by the `regex` crate) matches
// it, and refused with a 422 naming the field otherwise.
async fn documented_patterns_are_the_ones_enforced(app: &mut TestApp) {
    let spec: Value = serde_json::from_str(&breadbox_api::api::spec_json()).expect("the spec is JSON");
    let pattern = |schema: &str, field: &str| {
        let pattern = spec["components"]["schemas"][schema]["properties"][field]["pattern"].as_str();
        regex::Regex::new(pattern.unwrap_or_else(|| panic!("{schema}.{field} documents no pattern"))).expect("a regex")
    };
    let acme = app.send(reqwest::Method::POST, "/api/v1/accounts", &app.admin_key, Some(&serde_json::json!({"name": "Acme"})), &[]).await;
    let acme = acme.body["data"]["id"].as_str().expect("id").to_owned();
    let signals = format!("/api/v1/health-scores/{acme}/signals");
    let observed = breadbox_api::time::rfc3339(breadbox_auth::db::now_ms() - 1_000);
    let samples = [
        "Acme", " Acme ", "Acme\tCorp\r\n", "", "   ", "\t\n", "\u{b}", "Acme\u{b}", "\u{c}Acme", "x\u{7f}", "\u{85}x",
        "\u{a0}\u{3000}", "\u{2003}x", "\u{feff}", "Zürich", "rmm.patching:v2", "a b", "a\u{0}",
    ];
    // (path, schema, field, a valid body without the field, the success status)
    let cases = [
        ("/api/v1/accounts", "CreateAccount", "name", serde_json::json!({}), 201),
        ("/api/v1/accounts", "CreateAccount", "notes", serde_json::json!({"name": "Notes"}), 201),
        ("/api/v1/contacts", "CreateContact", "firstName", serde_json::json!({"lastName": "L"}), 201),
        (signals.as_str(), "PushSignal", "source", serde_json::json!({"name": "patching", "value": 50, "weight": 1, "observedAt": observed}), 200),
    ];
    for (path, schema, field, base, ok) in cases {
        let pattern = pattern(schema, field);
        for sample in samples {
            let mut body = base.clone();
            body[field] = Value::from(sample);
            let accepted = pattern.is_match(sample);
            at_bound(app, path, &body, field, accepted.then_some(ok), &format!("{schema}.{field} = {sample:?}")).await;
        }
    }
    // A domain: each accepted sample names another domain (they are unique in an org).
    let domain = pattern("CreateAccount", "domain");
    let samples = [
        "contoso.com", " Fabrikam.COM. ", "northwind.example..", "xn--bcher-kva.example", "", "  ", "localhost",
        "https://contoso.com", "a..b", "-a.com", "ünicode.com", "a.b\u{b}",
    ];
    for sample in samples {
        let body = serde_json::json!({"name": "Domain", "domain": sample});
        let accepted = domain.is_match(sample);
        at_bound(app, "/api/v1/accounts", &body, "domain", accepted.then_some(201), &format!("domain = {sample:?}")).await;
    }
    // An update's name is a non-blank text as the create's, which a null does not clear.
    assert_eq!(
        spec["components"]["schemas"]["UpdateAccount"]["properties"]["name"]["pattern"],
        spec["components"]["schemas"]["CreateAccount"]["properties"]["name"]["pattern"]
    );
}

both_backends!(
    served_spec_and_swagger_ui,
    documented_max_lengths_are_the_ones_enforced,
    documented_ranges_are_the_ones_enforced,
    documented_patterns_are_the_ones_enforced
);
