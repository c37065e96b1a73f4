//! Webhooks survive the process: `breadbox serve` killed with SIGKILL after a change
//! commits and before (or between) deliveries delivers after a restart, with exactly
//! the same event id. Endpoints are managed with the `breadbox webhook` commands.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;

fn breadbox(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breadbox"));
    command
        .env_remove("DATABASE_URL")
        .env("BREADBOX_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .env("BREADBOX_WEBHOOK_ALLOW_LOOPBACK", "true")
        .env("BREADBOX_WEBHOOK_POLL", "20ms");
    command
}

fn run_json(data_dir: &Path, args: &[&str]) -> Value {
    let output = breadbox(data_dir).args(args).arg("--json").output().expect("run breadbox");
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e})"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `breadbox serve` on `port`, answering /healthz.
async fn serve(data_dir: &Path, port: u16, delivery: bool) -> Child {
    let mut child = breadbox(data_dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("BREADBOX_WEBHOOK_DELIVERY", delivery.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not left running (nor unreaped) behind the failing test.
    sigkill(&mut child);
    panic!("breadbox serve did not answer /healthz within 20 s");
}

fn sigkill(child: &mut Child) {
    let sent = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let _ = child.wait();
}

/// Records the `webhook-id` of every POST; answers with the status in `status`.
struct Receiver {
    url: String,
    ids: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
}

async fn receiver() -> Receiver {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("bind");
    let port = acceptor.local_addr()[0].as_socket_addr().expect("addr").port();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(Mutex::new(200u16));
    let (ids2, status2) = (ids.clone(), status.clone());
    let endpoint = poem::endpoint::make(move |req: Request| {
        let (ids, status) = (ids2.clone(), status2.clone());
        async move {
            let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            ids.lock().expect("lock").push(id);
            let code = *status.lock().expect("lock");
            Response::builder().status(poem::http::StatusCode::from_u16(code).expect("status")).body("")
        }
    });
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
    });
    Receiver { url: format!("http://127.0.0.1:{port}/hook"), ids, status }
}

impl Receiver {
    fn ids(&self) -> Vec<String> {
        self.ids.lock().expect("lock").clone()
    }

    async fn wait(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..400 {
            let ids = self.ids();
            if done(&ids) {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} did not happen within 20 s: {:?}", self.ids());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_sigkill_is_delivered_after_restart_with_its_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let org = run_json(dir.path(), &["org", "create", "--name", "Acme MSP"])["id"].as_str().expect("org").to_owned();
    let key = run_json(dir.path(), &["key", "create", "--org", &org, "--scopes", "admin:write", "--name", "t"])["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let hook = receiver().await;
    let created = run_json(dir.path(), &["webhook", "create", "--org", &org, "--url", &hook.url, "--allow-private"]);
    let endpoint = created["endpoint"]["id"].as_str().expect("endpoint").to_owned();
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    let listed = run_json(dir.path(), &["webhook", "list", "--org", &org]);
    assert_eq!(listed[0]["id"], endpoint.as_str());

    // 1. The change commits; the process dies before any delivery.
    let port = free_port();
    let mut server = serve(dir.path(), port, false).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/v1/webhook-endpoints/{endpoint}");
    let answer = http.post(format!("{base}/test")).header("X-API-Key", &key).send().await.expect("test event");
    assert_eq!(answer.status(), 200);
    let delivery: Value = answer.json().await.expect("json");
    let delivery_id = delivery["data"]["deliveryId"].as_str().expect("delivery").to_owned();
    sigkill(&mut server);
    assert!(hook.ids().is_empty());

    // 2. After a restart it arrives, once, with the id it was stored with.
    let mut server = serve(dir.path(), port, true).await;
    let ids = hook.wait("delivery after restart", |ids| !ids.is_empty()).await;
    let listed: Value = http
        .get(format!("{base}/deliveries"))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    let stored = listed["data"].as_array().expect("list").iter().find(|d| d["id"] == delivery_id.as_str()).expect("listed").clone();
    assert_eq!(ids, [stored["eventId"].as_str().expect("eventId").to_owned()]);

    // 3. Killed between a failed attempt and its retry (due 5 s later): the retry
    // after the restart carries the same id.
    *hook.status.lock().expect("lock") = 500;
    let answer = http.post(format!("{base}/test")).header("X-API-Key", &key).send().await.expect("test event");
    assert_eq!(answer.status(), 200);
    let failed = hook.wait("a failed attempt", |ids| ids.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sigkill(&mut server);
    *hook.status.lock().expect("lock") = 200;
    let seen = hook.ids().len();
    let mut server = serve(dir.path(), port, true).await;
    let after = hook.wait("the retry after restart", |ids| ids.len() > seen).await;
    assert_eq!(after.last(), Some(&failed[1]), "the retry carries the same event id");
    sigkill(&mut server);
}
