//! The `breadbox` binary as an operator meets it: first run on an empty data
//! directory, graceful shutdown on SIGTERM, and the admin commands with `--json`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn breadbox(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breadbox"));
    command.env_remove("DATABASE_URL").env("BREADBOX_DATA_DIR", data_dir).env("RUST_LOG", "warn");
    command
}

fn run_json(data_dir: &Path, args: &[&str]) -> Value {
    let output = breadbox(data_dir).args(args).arg("--json").output().expect("run breadbox");
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e})"))
}

fn run_failing(data_dir: &Path, args: &[&str]) -> Output {
    let output = breadbox(data_dir).args(args).output().expect("run breadbox");
    assert!(!output.status.success(), "{args:?} should fail");
    output
}

/// A running `breadbox serve` and what it printed before it started answering.
struct Server {
    child: Child,
    banner: String,
    base: String,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn serve(data_dir: &Path) -> Server {
    let port = free_port();
    let mut child = breadbox(data_dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "breadbox serve did not answer /healthz within 20 s");
    // The banner is printed before the server starts answering.
    let banner: String = rx.try_iter().map(|line| line + "\n").collect();
    Server { child, banner, base }
}

fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.child.kill();
    panic!("breadbox did not stop within 10 s of SIGTERM");
}

fn field<'a>(banner: &'a str, label: &str) -> &'a str {
    banner
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(str::trim)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("banner lacks `{label}`:\n{banner}"))
}

#[tokio::test]
async fn first_run_prints_working_credentials_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = serve(dir.path()).await;
    let key = field(&server.banner, "Admin API key:").to_owned();
    let client_id = field(&server.banner, "OAuth client:   client_id").to_owned();
    let client_secret = field(&server.banner, "client_secret").to_owned();
    assert!(key.starts_with("msp_live_") && client_secret.starts_with("mcs_"));
    assert!(!server.base.is_empty(), "banner names the base URL");
    assert!(dir.path().join("breadbox.db").exists(), "SQLite database created under the data dir");

    let http = reqwest::Client::new();
    let me = http.get(format!("{}/api/v1/me", server.base)).header("X-API-Key", &key).send().await.expect("me");
    assert_eq!(me.status(), 200);
    let token = http
        .post(format!("{}/api/v1/auth/token", server.base))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 200);
    assert!(terminate(&mut server).success(), "graceful exit on SIGTERM");

    // A second start on the same database prints no credentials.
    let mut again = serve(dir.path()).await;
    assert!(!again.banner.contains("shown ONCE"));
    assert!(!again.banner.contains(&key));
    terminate(&mut again);
}

#[tokio::test]
async fn admin_commands_manage_orgs_keys_clients_and_signing_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let org = run_json(dir.path(), &["org", "create", "--name", "Acme MSP", "--plan", "growth"]);
    let org_id = org["id"].as_str().expect("org id").to_owned();
    assert_eq!(org["plan"], "growth");

    let created = run_json(
        dir.path(),
        &["key", "create", "--org", &org_id, "--env", "test", "--scopes", "accounts:read devices:write", "--name", "RMM"],
    );
    let key = created["key"].as_str().expect("key").to_owned();
    let key_id = created["apiKey"]["id"].as_str().expect("key id").to_owned();
    assert!(key.starts_with("msp_test_"));
    assert_eq!(created["apiKey"]["scopes"], serde_json::json!(["accounts:read", "devices:write"]));

    let preset = run_json(dir.path(), &["key", "create", "--org", &org_id, "--preset", "read_only", "--name", "Reports"]);
    assert_eq!(preset["apiKey"]["scopes"], serde_json::json!(["admin:read"]));

    let listed = run_json(dir.path(), &["key", "list", "--org", &org_id]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&key), "lists never show keys");

    let rotated = run_json(dir.path(), &["key", "rotate", &key_id, "--grace", "1h"]);
    assert!(rotated["key"].as_str().is_some_and(|k| k != key));
    let revoked = run_json(dir.path(), &["key", "revoke", &key_id]);
    assert!(revoked["revokedAt"].is_number());

    let client = run_json(dir.path(), &["client", "create", "--org", &org_id, "--scopes", "accounts:read", "--name", "PSA"]);
    let client_id = client["clientId"].as_str().expect("client id").to_owned();
    assert!(client["clientSecret"].as_str().is_some_and(|s| s.starts_with("mcs_")));
    let rotated = run_json(dir.path(), &["client", "rotate-secret", &client_id]);
    assert_ne!(rotated["clientSecret"], client["clientSecret"]);
    let disabled = run_json(dir.path(), &["client", "disable", &client_id]);
    assert!(disabled["disabledAt"].is_number());
    let kid = run_json(dir.path(), &["signing-key", "rotate"]);
    assert!(kid["kid"].as_str().is_some_and(|k| !k.is_empty()));

    let failure = run_failing(dir.path(), &["org", "create", "--name", "X", "--plan", "gold"]);
    assert!(String::from_utf8_lossy(&failure.stderr).contains("unknown plan"));
    let failure = run_failing(dir.path(), &["key", "create", "--org", "org_missing", "--preset", "read_only", "--name", "n"]);
    assert!(String::from_utf8_lossy(&failure.stderr).contains("not found"));
    let failure = run_failing(dir.path(), &["key", "create", "--org", &org_id, "--scopes", "accounts:delete", "--name", "n"]);
    assert!(String::from_utf8_lossy(&failure.stderr).contains("unknown scope"));
}

#[test]
fn openapi_command_prints_the_spec_without_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = breadbox(&dir.path().join("never-created")).arg("openapi").output().expect("run");
    assert!(output.status.success());
    let spec: Value = serde_json::from_slice(&output.stdout).expect("spec JSON");
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(!dir.path().join("never-created").exists(), "no database touched");
}

#[tokio::test]
async fn demo_loads_a_data_set_an_integrator_can_read_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let org = run_json(dir.path(), &["org", "create", "--name", "Demo MSP"]);
    let org_id = org["id"].as_str().expect("org id").to_owned();
    let loaded = run_json(dir.path(), &["demo", "--org", &org_id]);
    assert_eq!(loaded["environment"], "test");
    let accounts = loaded["loaded"]["accounts"].as_u64().expect("accounts");
    assert!(accounts >= 24, "dozens of accounts, got {accounts}");
    assert!(loaded["loaded"]["contacts"].as_u64() >= Some(2 * accounts));
    let failure = run_failing(dir.path(), &["demo", "--org", "org_missing"]);
    assert!(String::from_utf8_lossy(&failure.stderr).contains("not found"));

    let key = run_json(dir.path(), &["key", "create", "--org", &org_id, "--env", "test", "--preset", "read_only", "--name", "Explore"]);
    let key = key["key"].as_str().expect("key").to_owned();
    let mut server = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).header("X-API-Key", &key).send();
    let page: Value = get("/api/v1/accounts?limit=100").await.expect("accounts").json().await.expect("json");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(accounts as usize));
    let deals: Value = get("/api/v1/deals?limit=100").await.expect("deals").json().await.expect("json");
    let stages: std::collections::HashSet<&str> =
        deals["data"].as_array().into_iter().flatten().filter_map(|d| d["stage"].as_str()).collect();
    assert_eq!(stages.len(), 6, "deals in every stage: {stages:?}");
    for (what, path) in [
        ("contracts", "/api/v1/contracts?limit=100"),
        ("devices", "/api/v1/devices?limit=100"),
        ("touchpoints", "/api/v1/touchpoints?limit=100"),
        ("leads", "/api/v1/leads?limit=100"),
        ("compliance items", "/api/v1/compliance/items?limit=100"),
        ("onboarding projects", "/api/v1/onboarding/projects?limit=100"),
        ("reconciliation records", "/api/v1/reconciliation?limit=100"),
    ] {
        let page: Value = get(path).await.expect(what).json().await.expect("json");
        assert!(page["data"].as_array().is_some_and(|items| !items.is_empty()), "no {what}: {page}");
    }
    let mrr: Value = get("/api/v1/mrr").await.expect("mrr").json().await.expect("json");
    assert!(mrr.to_string().contains("MANAGED_SERVICES"), "MRR by category: {mrr}");
    let first = page["data"][0]["id"].as_str().expect("account id").to_owned();
    let health: Value = get(&format!("/api/v1/health-scores/{first}")).await.expect("health").json().await.expect("json");
    let history = health["data"]["history"].as_array().expect("history");
    assert_eq!(history.len(), 90);
    assert!(history.iter().all(|point| point["score"].is_number()), "90 days of history: {health}");
    assert!(terminate(&mut server).success());
}
