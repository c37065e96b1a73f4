//! A webhook receiver in the test process: records every POST and answers with the
//! status (and headers) the test sets; verifies both signatures independently of the
//! server's code (the `hmac` crate for `X-MSP-Signature`, the Standard Webhooks
//! algorithm written out from its specification for `webhook-signature`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use std::sync::Mutex;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;


/// One POST received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_else(|| panic!("header {name} missing"))
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    /// Status and extra headers of the next answers (200 when unset).
    answer: Mutex<(u16, Vec<(String, String)>)>,
    arrived: Notify,
}

pub struct Receiver {
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A free port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Receiver {
    /// Listens on a free port.
    pub async fn start() -> Receiver {
        Receiver::on_port(0).await
    }

    /// Listens on `port` (0: any).
    pub async fn on_port(port: u16) -> Receiver {
        let acceptor = TcpListener::bind(format!("127.0.0.1:{port}")).into_acceptor().await.expect("receiver binds");
        let port = acceptor.local_addr()[0].as_socket_addr().expect("socket").port();
        let state = Arc::new(State::default());
        *state.answer.lock().expect("lock") = (200, Vec::new());
        let shared = state.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let state = shared.clone();
            async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                let body = req.into_body().into_vec().await.unwrap_or_default();
                state.received.lock().expect("lock").push(Received { headers, body });
                state.arrived.notify_waiters();
                let (status, extra) = state.answer.lock().expect("lock").clone();
                let mut response = Response::builder().status(poem::http::StatusCode::from_u16(status).expect("status"));
                for (name, value) in extra {
                    response = response.header(name, value);
                }
                response.body("ok")
            }
        });
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        Receiver { url: format!("http://127.0.0.1:{port}/hook"), state, task }
    }

    /// Answers every following POST with `status` and `headers`.
    pub fn answer(&self, status: u16, headers: &[(&str, &str)]) {
        *self.state.answer.lock().expect("lock") =
            (status, headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Waits until `done` holds for what was received, or panics after `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.state.arrived.notified();
            let received = self.received();
            if done(&received) {
                return received;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let types: Vec<String> = received.iter().map(|r| r.json()["type"].as_str().unwrap_or("?").to_owned()).collect();
                panic!("receiver: {what} did not happen within {within:?}; got {types:?}");
            }
        }
    }

    /// Waits for a POST of event type `kind` and returns it.
    pub async fn event(&self, kind: &str) -> Received {
        let all = self.wait_for(Duration::from_secs(15), kind, |r| r.iter().any(|r| r.json()["type"] == kind)).await;
        all.into_iter().find(|r| r.json()["type"] == kind).expect("found")
    }
}

/// `X-MSP-Signature` holds a hex HMAC-SHA256 of the body by `secret` (one of its
/// comma-separated values).
pub fn msp_signature_valid(received: &Received, secret: &str) -> bool {
    let header = received.header("x-msp-signature");
    header.split(',').any(|candidate| {
        let Ok(tag) = hex::decode(candidate.trim()) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&received.body);
        mac.verify_slice(&tag).is_ok()
    })
}

/// Standard Webhooks verification: the key is the base64 after `whsec_`; the signed
/// content is `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds
/// space-separated `v1,<base64>` entries; the timestamp must be within five minutes.
pub fn standard_signature_valid(received: &Received, secret: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 secret");
    let id = received.header("webhook-id");
    let timestamp = received.header("webhook-timestamp");
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    if (now - ts).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    received
        .header("webhook-signature")
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}
