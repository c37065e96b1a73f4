//! `breadbox-auth`, the authorization server alone (scale-out), as a real process on a
//! database prepared by another instance.

use std::process::{Command, Stdio};
use std::time::Duration;

use breadbox_auth::{AuthConfig, AuthService, Environment, Plan, ScopeSet};

#[tokio::test]
async fn standalone_server_issues_tokens_for_a_shared_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = AuthService::start(AuthConfig::for_data_dir(dir.path().to_path_buf()), "https://api.example.com".into())
        .await
        .expect("database");
    let org = service.create_org("Acme", Plan::Growth).await.expect("org");
    let scopes = ScopeSet::parse("accounts:read").expect("scopes");
    let (client, secret) = service.create_client(&org.id, Environment::Live, scopes, "PSA").await.expect("client");
    service.db().close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_breadbox-auth"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--issuer", "https://api.example.com"])
        .env("BREADBOX_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn breadbox-auth");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut metadata = None;
    for _ in 0..100 {
        if let Ok(response) = http.get(format!("{base}/.well-known/oauth-authorization-server")).send().await {
            metadata = response.json::<serde_json::Value>().await.ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metadata = metadata.expect("breadbox-auth answers");
    assert_eq!(metadata["issuer"], "https://api.example.com");
    assert_eq!(metadata["token_endpoint"], "https://api.example.com/api/v1/auth/token");

    let response = http
        .post(format!("{base}/api/v1/auth/token"))
        .basic_auth(&client.id, Some(secret.expose()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["scope"], "accounts:read");
    assert_eq!(body["expires_in"], 3600);

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut stopped = false;
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "graceful exit");
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !stopped {
        let _ = child.kill();
        panic!("breadbox-auth did not stop on SIGTERM");
    }
}
