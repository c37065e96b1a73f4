//! The load generator: N workers, each on its own keep-alive HTTP/1.1 connection,
//! looping request → full response for warm-up + measurement. Every scenario, the
//! baseline included, goes through this one code path so that the ratios are fair.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// Largest latency the histograms hold (one minute, in microseconds).
const MAX_LATENCY_US: u64 = 60_000_000;
/// How many distinct error messages a scenario keeps to print.
const MAX_ERROR_SAMPLES: usize = 5;

/// One request, sent over and over.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name shown in the report.
    pub name: &'static str,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The request method.
    pub method: Method,
    /// Origin-form target, e.g. `/api/v1/me`.
    pub path: String,
    /// Headers sent with every request (`Host` is added).
    pub headers: HeaderMap,
    /// The request body (empty for GET).
    pub body: Bytes,
}

impl Scenario {
    /// A GET of `path` on `addr`.
    pub fn get(name: &'static str, addr: SocketAddr, path: &str) -> Scenario {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host_value(addr));
        Scenario { name, addr, method: Method::GET, path: path.to_owned(), headers, body: Bytes::new() }
    }

    /// A POST of `body` (with its content type) to `path` on `addr`.
    pub fn post(name: &'static str, addr: SocketAddr, path: &str, content_type: &'static str, body: Bytes) -> Scenario {
        let mut scenario = Scenario::get(name, addr, path);
        scenario.method = Method::POST;
        scenario.headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        scenario.body = body;
        scenario
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Scenario {
        self.headers.insert(name, value);
        self
    }

    fn request(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .body(Full::new(self.body.clone()))?;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

fn host_value(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).expect("a socket address is a valid Host header")
}

/// How long to load: a warm-up whose responses are not counted, then the measurement.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Concurrent connections, one worker each.
    pub connections: usize,
    /// Load applied before measuring (connections open, caches fill, CPU clocks up).
    pub warmup: Duration,
    /// The measured period.
    pub duration: Duration,
}

/// What one scenario measured.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's name.
    pub name: &'static str,
    /// Responses with a 2xx status completed inside the measured period.
    pub requests: u64,
    /// The measured period.
    pub duration: Duration,
    /// Latency of those responses, in microseconds (request sent → body read).
    pub latency_us: Histogram<u64>,
    /// Non-200 responses and transport errors, warm-up included.
    pub errors: u64,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
}

impl Outcome {
    /// Successful responses per second over the measured period.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64()
    }

    /// The latency at `quantile` (0..=1), in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Per-worker tallies, merged when the scenario ends.
struct Tally {
    requests: u64,
    latency_us: Histogram<u64>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally { requests: 0, latency_us: new_histogram(), errors: 0, error_samples: Vec::new() }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        keep_samples(&mut self.error_samples, [message]);
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        keep_samples(&mut self.error_samples, other.error_samples);
    }
}

/// Adds the `messages` not yet in `samples`, up to `MAX_ERROR_SAMPLES` in all.
fn keep_samples(samples: &mut Vec<String>, messages: impl IntoIterator<Item = String>) {
    for message in messages {
        if samples.len() < MAX_ERROR_SAMPLES && !samples.contains(&message) {
            samples.push(message);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram bounds are valid")
}

/// Runs `scenario` on `runtime` with the given shape and returns what it measured.
pub fn measure(runtime: &Runtime, scenario: Scenario, shape: LoadShape) -> Outcome {
    let scenario = Arc::new(scenario);
    let start = Instant::now() + shape.warmup;
    let end = start + shape.duration;
    let total = runtime.block_on(async {
        let workers: Vec<_> =
            (0..shape.connections.max(1)).map(|_| tokio::spawn(worker(scenario.clone(), start, end))).collect();
        let mut total = Tally::new();
        for worker in workers {
            match worker.await {
                Ok(tally) => total.merge(tally),
                Err(err) => total.error(format!("worker failed: {err}")),
            }
        }
        total
    });
    Outcome {
        name: scenario.name,
        requests: total.requests,
        duration: shape.duration,
        latency_us: total.latency_us,
        errors: total.errors,
        error_samples: total.error_samples,
    }
}

impl Outcome {
    /// Adds `other` (a later slice of the same scenario) to this one.
    fn absorb(&mut self, other: Outcome) {
        self.requests += other.requests;
        self.duration += other.duration;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.absorb_errors(other);
    }

    /// Adds the errors of `other` (a warm-up, say) to this outcome's.
    fn absorb_errors(&mut self, other: Outcome) {
        self.errors += other.errors;
        keep_samples(&mut self.error_samples, other.error_samples);
    }
}

/// Target length of one slice of an interleaved measurement.
const SLICE: Duration = Duration::from_millis(500);
/// Unmeasured load at the start of each slice (its connections are new).
const SLICE_WARMUP: Duration = Duration::from_millis(100);

/// The order of an interleaved measurement's slices: the side of each, A B B A A B B A
/// …, `per_side` slices of each side in all.
pub fn slice_order(per_side: usize) -> Vec<usize> {
    (0..per_side).flat_map(|pair| if pair % 2 == 0 { [0, 1] } else { [1, 0] }).collect()
}

/// Measures side 0 and side 1 (`measure(side, shape)`) in short slices taken in turn,
/// after one warm-up of each (only its errors count), and adds each side's slices up.
/// These machines' speed moves by a fifth or more within seconds: two runs of a few
/// seconds, one after the other, measured that drift as much as the difference between
/// the sides. In slices of half a second, ordered A B B A so that a steady drift weighs
/// equally on both sides, the drift falls out of the ratio; a table that grows while it
/// is measured favours neither side either.
pub fn interleaved(mut measure: impl FnMut(usize, LoadShape) -> Outcome, shape: LoadShape) -> [Outcome; 2] {
    let warm_ups = [0, 1].map(|side| measure(side, LoadShape { warmup: shape.warmup, duration: Duration::ZERO, ..shape }));
    let per_side = (shape.duration.as_secs_f64() / SLICE.as_secs_f64()).round().max(2.0) as usize;
    let slice = LoadShape { warmup: SLICE_WARMUP.min(shape.warmup), duration: shape.duration / per_side as u32, ..shape };
    let mut sums: [Option<Outcome>; 2] = [None, None];
    for side in slice_order(per_side) {
        let outcome = measure(side, slice);
        match sums[side].as_mut() {
            Some(sum) => sum.absorb(outcome),
            None => sums[side] = Some(outcome),
        }
    }
    let mut sums = sums.map(|sum| sum.expect("each side is measured at least twice"));
    for (sum, warm_up) in sums.iter_mut().zip(warm_ups) {
        sum.absorb_errors(warm_up);
    }
    sums
}

/// Loops until `end`; counts responses that complete in `start..=end`.
async fn worker(scenario: Arc<Scenario>, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < end {
        let sender = match connection.as_mut() {
            Some(sender) => sender,
            None => match connect(scenario.addr).await {
                Ok(sender) => connection.insert(sender),
                Err(err) => {
                    tally.error(format!("connect: {err}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match exchange(sender, &scenario).await {
            Ok((status, _)) if (200..300).contains(&status) => {
                let done = Instant::now();
                if done >= start && done <= end {
                    tally.requests += 1;
                    tally.latency_us.saturating_record(done.duration_since(sent).as_micros() as u64);
                }
            }
            Ok((status, body)) => tally.error(format!("HTTP {status}: {}", snippet(&body))),
            Err(err) => {
                tally.error(format!("transport: {err:#}"));
                connection = None;
            }
        }
    }
    tally
}

/// Opens a keep-alive HTTP/1.1 connection; its driver runs as a task of the caller's runtime.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request of `scenario` and reads the whole response.
pub async fn exchange(sender: &mut SendRequest<Full<Bytes>>, scenario: &Scenario) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(scenario.request()?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(requests: u64, duration: Duration, errors: u64) -> Outcome {
        let mut latency_us = new_histogram();
        latency_us.saturating_record(100 + requests);
        Outcome { name: "test", requests, duration, latency_us, errors, error_samples: vec![format!("e{errors}")] }
    }

    #[test]
    fn slices_alternate_so_that_drift_falls_on_both_sides() {
        assert_eq!(slice_order(2), vec![0, 1, 1, 0]);
        assert_eq!(slice_order(4), vec![0, 1, 1, 0, 0, 1, 1, 0]);
        assert_eq!(slice_order(3).iter().filter(|&&s| s == 1).count(), 3);
    }

    #[test]
    fn interleaving_adds_each_sides_slices_and_skips_the_warm_up() {
        let shape = LoadShape { connections: 4, warmup: Duration::from_secs(1), duration: Duration::from_secs(2) };
        let mut calls = Vec::new();
        let [a, b] = interleaved(
            |side, slice| {
                calls.push((side, slice.warmup, slice.duration));
                if slice.duration.is_zero() {
                    return outcome(1_000_000, slice.duration, 7);
                }
                outcome(if side == 0 { 100 } else { 50 }, slice.duration, side as u64)
            },
            shape,
        );
        assert_eq!(calls.len(), 2 + 8, "two warm-ups, then four half-second slices a side");
        assert_eq!(&calls[..2], &[(0, Duration::from_secs(1), Duration::ZERO), (1, Duration::from_secs(1), Duration::ZERO)]);
        assert!(calls[2..].iter().all(|&(_, warmup, duration)| warmup == SLICE_WARMUP && duration == Duration::from_millis(500)));
        assert_eq!(calls[2..].iter().map(|c| c.0).collect::<Vec<_>>(), slice_order(4));
        // A warm-up's requests are not counted; its errors are.
        assert_eq!((a.requests, a.duration, a.errors), (400, Duration::from_secs(2), 7));
        assert_eq!((b.requests, b.duration, b.errors), (200, Duration::from_secs(2), 7 + 4));
        assert!(b.error_samples.contains(&"e7".to_owned()) && b.error_samples.contains(&"e1".to_owned()));
        assert_eq!(a.requests_per_sec(), 200.0);
        assert_eq!(b.latency_us.len(), 4);
    }
}
