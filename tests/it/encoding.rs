//! Content codings: responses gzip-compressed for clients that accept it (lists, the
//! spec; not single records, whose `ETag` names one representation), request bodies
//! sent gzip-compressed, and the size limit of every request body. Decompressed here
//! with flate2.

use std::io::{Read, Write};

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(data).expect("compress");
    encoder.finish().expect("compress")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("a gzip body");
    out
}

/// A GET with `Accept-Encoding` (when given): status, headers and the body as sent.
async fn get_raw(app: &TestApp, path: &str, accept: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = app.http.get(app.url(path)).header("X-API-Key", &app.admin_key);
    if let Some(accept) = accept {
        request = request.header("Accept-Encoding", accept);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.bytes().await.expect("body").to_vec())
}

/// A POST of `body` as sent, with `Content-Encoding` when given.
async fn post_raw(app: &TestApp, path: &str, body: Vec<u8>, encoding: Option<&str>, headers: &[(&str, &str)]) -> Answer {
    let mut request = app
        .http
        .post(app.url(path))
        .header("X-API-Key", &app.admin_key)
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::of(request.send().await.expect("request")).await
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn lists_and_the_spec_are_gzipped_for_clients_that_accept_it(app: &mut TestApp) {
    for i in 0..20 {
        let body = json!({"name": format!("Compressed {i}"), "industry": "Healthcare", "notes": "a repeated note"});
        let created = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&body), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let path = "/api/v1/accounts?limit=100";
    let (status, plain_headers, plain) = get_raw(app, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(header(&plain_headers, "content-encoding"), None, "not asked for: sent as it is");
    assert_eq!(header(&plain_headers, "vary"), None);
    let plain: Value = serde_json::from_slice(&plain).expect("JSON");
    for accept in ["gzip", "br, gzip;q=0.5", "*", "GZIP", "deflate, x-gzip"] {
        let (status, headers, body) = get_raw(app, path, Some(accept)).await;
        assert_eq!(status, 200, "{accept}");
        assert_eq!(header(&headers, "content-encoding"), Some("gzip"), "{accept}");
        assert_eq!(header(&headers, "vary"), Some("accept-encoding"), "{accept}");
        assert_eq!(header(&headers, "content-length").map(str::to_owned), Some(body.len().to_string()), "{accept}");
        assert!(header(&headers, "x-ratelimit-limit").is_some() && header(&headers, "x-request-id").is_some());
        let unpacked: Value = serde_json::from_slice(&gunzip(&body)).expect("gzip of JSON");
        assert_eq!(unpacked["data"], plain["data"], "{accept}: the same page");
        assert!(body.len() * 3 < serde_json::to_vec(&unpacked).expect("JSON").len(), "{accept}: compressed well");
    }
    for accept in ["gzip;q=0", "br", "identity", "*;q=0", "gzip;q=0, *"] {
        let (status, headers, body) = get_raw(app, path, Some(accept)).await;
        assert_eq!(status, 200, "{accept}");
        assert_eq!(header(&headers, "content-encoding"), None, "{accept}: gzip refused");
        let body: Value = serde_json::from_slice(&body).expect("JSON as it is");
        assert_eq!(body["data"], plain["data"], "{accept}");
    }
    let (_, headers, spec) = get_raw(app, "/api/v1/openapi.json", Some("gzip")).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let spec: Value = serde_json::from_slice(&gunzip(&spec)).expect("the spec");
    assert_eq!(spec["openapi"], "3.0.0");
}

async fn single_records_and_small_answers_are_not_compressed(app: &mut TestApp) {
    let body = json!({"name": "Long notes", "notes": "n".repeat(9_000)});
    let created = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["data"]["id"].as_str().expect("id");
    let (status, headers, record) = get_raw(app, &format!("/api/v1/accounts/{id}"), Some("gzip")).await;
    assert_eq!(status, 200);
    assert!(record.len() > 9_000, "large, yet");
    assert_eq!(header(&headers, "content-encoding"), None, "its ETag names this representation");
    assert_eq!(header(&headers, "etag"), created.header("etag").as_deref());
    let (status, headers, me) = get_raw(app, "/api/v1/me", Some("gzip")).await;
    assert_eq!(status, 200);
    assert!(me.len() < 1024);
    assert_eq!(header(&headers, "content-encoding"), None, "too small to gain");
    assert_eq!(header(&headers, "vary"), Some("accept-encoding"), "chosen by Accept-Encoding all the same");
    let _: Value = serde_json::from_slice(&me).expect("JSON as it is");
}

async fn gzip_request_bodies_are_taken(app: &mut TestApp) {
    let body = serde_json::to_vec(&json!({"name": "Sent compressed", "industry": "Legal"})).expect("JSON");
    let created = post_raw(app, "/api/v1/accounts", gzip(&body, 6), Some("gzip"), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!((created.body["data"]["name"].as_str(), created.body["data"]["industry"].as_str()), (Some("Sent compressed"), Some("Legal")));
    // A retry compressed otherwise is the same request: the key compares what was sent.
    let key = [("Idempotency-Key", "gzip-retry-1")];
    let body = serde_json::to_vec(&json!({"name": "Once"})).expect("JSON");
    let first = post_raw(app, "/api/v1/accounts", gzip(&body, 1), Some("gzip"), &key).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post_raw(app, "/api/v1/accounts", gzip(&body, 9), Some("x-gzip"), &key).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.body["data"]["id"], first.body["data"]["id"]);
    let plain = post_raw(app, "/api/v1/accounts", body.clone(), None, &key).await;
    assert_eq!(plain.body["data"]["id"], first.body["data"]["id"], "and so is the body sent as it is");
    let mut devices = Vec::new();
    for i in 0..500 {
        devices.push(json!({"accountId": first.body["data"]["id"], "rmmAgentId": format!("gz-{i}"), "hostname": format!("ws-{i}")}));
    }
    let bulk = serde_json::to_vec(&json!({"devices": devices})).expect("JSON");
    let upserted = post_raw(app, "/api/v1/devices/bulk", gzip(&bulk, 6), Some("gzip"), &[]).await;
    assert_eq!(upserted.status, 200, "{}", upserted.body);
    assert_eq!(upserted.body["data"]["created"], 500, "{}", upserted.body);
}

async fn bad_codings_and_oversized_bodies_are_refused(app: &mut TestApp) {
    let body = serde_json::to_vec(&json!({"name": "Never"})).expect("JSON");
    let cases = [
        (body.clone(), Some("br"), "Content-Encoding `br` is not supported"),
        (gzip(&body, 6), Some("gzip, gzip"), "Content-Encoding `more than one coding` is not supported"),
        (body.clone(), Some("gzip"), "not valid gzip data"),
        (gzip(&body, 6)[..10].to_vec(), Some("gzip"), "not valid gzip data"),
        (vec![b' '; 8 * 1024 * 1024 + 1], None, "at most 8388608 bytes (8 MiB)"),
        // 9 MiB of spaces in 9 KB: refused once it grows past the limit, not stored.
        (gzip(&vec![b' '; 9 * 1024 * 1024], 9), Some("gzip"), "at most 8388608 bytes (8 MiB) once decompressed"),
    ];
    for (sent, encoding, message) in cases {
        let answer = post_raw(app, "/api/v1/accounts", sent, encoding, &[]).await;
        assert_eq!(answer.status, 400, "{encoding:?}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "bad_request", "{}", answer.body);
        let text = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{encoding:?}: {text}");
        assert!(answer.header("x-request-id").is_some());
    }
    // A body announced far over the limit is refused before it is sent.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    let head = format!(
        "POST /api/v1/accounts HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
        app.admin_key
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await.expect("send the head");
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut stream, &mut answer));
    let n = read.await.expect("answered without the body").expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("at most 8388608 bytes"), "{answer}");
    // With a key, the claim is given back: the same key then works.
    let key = [("Idempotency-Key", "too-large-1")];
    let answer = post_raw(app, "/api/v1/accounts", vec![b' '; 8 * 1024 * 1024 + 1], None, &key).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let answer = post_raw(app, "/api/v1/accounts", body, None, &key).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let (_, list) = app.get_key("/api/v1/accounts?limit=100", &app.admin_key).await;
    let names: Vec<_> = list["data"].as_array().expect("data").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["Never"], "only the last request created an account");
}

both_backends!(
    lists_and_the_spec_are_gzipped_for_clients_that_accept_it,
    single_records_and_small_answers_are_not_compressed,
    gzip_request_bodies_are_taken,
    bad_codings_and_oversized_bodies_are_refused
);
