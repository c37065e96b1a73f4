//! Content codings of the API: request bodies sent gzip-compressed, and responses
//! compressed for clients that accept gzip.
//!
//! A request body is read whole (the JSON parser needs it all) and at most
//! [`MAX_BODY`] bytes — counted once decompressed too, so that a small compressed body
//! cannot grow into a large one. A response is compressed when the request's
//! `Accept-Encoding` takes gzip, its body is at least [`MIN_COMPRESSED`] bytes, and it
//! carries no `ETag`: an entity tag names one representation (RFC 9110 §8.8.3), and
//! Breadbox's name a record's version for `If-Match`, so single records stay as they
//! are (they are small); lists, reports and the spec are what compression is for.

use std::future::Future;
use std::io::{Read, Write};

use futures::future::{Either, FutureExt};
use poem::http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY};
use poem::http::StatusCode;
use poem::{Body, Endpoint, Request, Response};

use crate::error::ApiError;

/// Largest request body the API reads, once decompressed: a bulk upsert of 500 devices
/// with every field at its longest fits several times over.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Smallest response body worth compressing: below it, gzip's header and the
/// `Content-Encoding` and `Vary` fields cost about what they save.
pub const MIN_COMPRESSED: usize = 1024;

/// deflate's level for responses: level 1 keeps most of the size gain on JSON (whose
/// repetitions it finds at once) for a fraction of the default level's time.
const LEVEL: u32 = 1;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
}

/// The request's `Content-Encoding`: none, `identity` or `gzip` (`x-gzip`); anything
/// else (another coding, or several applied in turn) is refused with what is taken.
fn request_coding(headers: &HeaderMap) -> Result<Coding, ApiError> {
    let mut codings = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    let coding = match (codings.next(), codings.next()) {
        (None, _) => return Ok(Coding::Identity),
        (Some(one), None) if one.eq_ignore_ascii_case("gzip") || one.eq_ignore_ascii_case("x-gzip") => return Ok(Coding::Gzip),
        (Some(one), None) => one.to_owned(),
        (Some(_), Some(_)) => "more than one coding".to_owned(),
    };
    let coding: String = coding.chars().filter(|c| !c.is_control()).take(40).collect();
    Err(ApiError::bad_request(format!(
        "Content-Encoding `{coding}` is not supported: send the body as it is or compressed with gzip"
    )))
}

fn too_large(coding: Coding) -> ApiError {
    let decompressed = if coding == Coding::Gzip { " once decompressed" } else { "" };
    ApiError::bad_request(format!("the request body must be at most {MAX_BODY} bytes (8 MiB){decompressed}"))
}

/// How much of a body past [`MAX_BODY`] is read, and dropped, before the refusal goes
/// out. A client still sending when the answer arrives may lose it to the reset of a
/// connection closed with its data unread; reading a body somewhat over the limit to
/// its end lets the client read the 400. A larger one is refused as soon as it is
/// known (from its `Content-Length`, or once this much more has come).
const DRAIN_MAX: usize = 2 * MAX_BODY;

/// Reads a request body: whole, at most [`MAX_BODY`] bytes, decompressed when its
/// `Content-Encoding` is gzip.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let coding = request_coding(headers)?;
    let announced = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > (MAX_BODY + DRAIN_MAX) as u64) {
        return Err(too_large(coding));
    }
    let raw = read_limited(body, announced.map_or(0, |length| length as usize)).await.map_err(|err| match err {
        Unread::TooLarge => too_large(coding),
        Unread::Broken => ApiError::bad_request("the request body could not be read"),
    })?;
    match coding {
        Coding::Identity => Ok(raw),
        // Off the request threads: 8 MiB take tens of milliseconds to inflate.
        Coding::Gzip => match tokio::task::spawn_blocking(move || gunzip(&raw)).await {
            Ok(result) => result,
            Err(err) => Err(ApiError::internal(&err)),
        },
    }
}

/// Why a body was not read.
enum Unread {
    TooLarge,
    Broken,
}

/// The body's bytes if it holds at most [`MAX_BODY`]; past that, reads on (dropping
/// what comes) up to [`DRAIN_MAX`] more so that the refusal reaches the client.
async fn read_limited(body: Body, announced: usize) -> Result<Vec<u8>, Unread> {
    use futures::StreamExt;
    let mut stream = std::pin::pin!(body.into_bytes_stream());
    let mut kept = Vec::with_capacity(announced.min(MAX_BODY));
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        total = total.saturating_add(chunk.len());
        if total <= MAX_BODY {
            kept.extend_from_slice(&chunk);
        } else if total > MAX_BODY + DRAIN_MAX {
            return Err(Unread::TooLarge);
        }
    }
    if total > MAX_BODY {
        return Err(Unread::TooLarge);
    }
    Ok(kept)
}

/// Marks a request whose body [`read_body`] has read and put back decoded: no
/// `Content-Encoding` (it would be decoded again) and no `Content-Length` (it may not
/// be the body's any more).
pub fn mark_decoded(headers: &mut HeaderMap) {
    if headers.remove(CONTENT_ENCODING).is_some() {
        headers.remove(CONTENT_LENGTH);
    }
}

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(MAX_BODY));
    let read = flate2::read::MultiGzDecoder::new(compressed).take(MAX_BODY as u64 + 1).read_to_end(&mut out);
    match read {
        Err(_) => Err(ApiError::bad_request("the request body is not valid gzip data (Content-Encoding: gzip)")),
        Ok(_) if out.len() > MAX_BODY => Err(too_large(Coding::Gzip)),
        Ok(_) => Ok(out),
    }
}

/// Whether `Accept-Encoding` takes gzip: `gzip` (or `x-gzip`) or `*` with a weight
/// above 0, and gzip not refused by name (`gzip;q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for coding in headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')) {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let weight = parts
            .filter_map(|param| param.strip_prefix("q=").or_else(|| param.strip_prefix("Q=")))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .next()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            return weight > 0.0;
        }
        if name == "*" {
            star = weight > 0.0;
        }
    }
    star
}

/// Compresses the responses of requests that accept gzip (see the module documentation).
pub struct GzipResponses<E>(pub E);

impl<E: Endpoint<Output = Response>> Endpoint for GzipResponses<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        if !accepts_gzip(req.headers()) {
            return Either::Left(self.0.call(req));
        }
        Either::Right(self.0.call(req).then(|outcome| async move {
            match outcome {
                Ok(response) => Ok(compress(response).await),
                Err(err) => Err(err),
            }
        }))
    }
}

/// Whether a body of `content_type` gains from compression (text, not images).
fn compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/") || essence.ends_with("json") || essence.ends_with("javascript") || essence.ends_with("+xml")
}

async fn compress(response: Response) -> Response {
    let status = response.status();
    let eligible = !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
        && !status.is_informational()
        && !response.headers().contains_key(CONTENT_ENCODING)
        && !response.headers().contains_key(ETAG)
        && compressible(response.headers().get(CONTENT_TYPE));
    if !eligible {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.into_bytes().await {
        Ok(bytes) => bytes,
        Err(err) => return poem::IntoResponse::into_response(ApiError::internal(&err)),
    };
    parts.headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    if bytes.len() < MIN_COMPRESSED {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::new(LEVEL));
    let compressed = match encoder.write_all(&bytes).and_then(|()| encoder.finish()) {
        Ok(compressed) => compressed,
        // Writing to memory does not fail; were it to, the body goes as it is.
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(compressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: poem::http::header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name.clone(), HeaderValue::from_str(value).expect("a header value"));
        }
        headers
    }

    #[test]
    fn gzip_is_accepted_by_name_or_by_star_unless_refused() {
        let accepts = |values: &[&str]| accepts_gzip(&headers(ACCEPT_ENCODING, values));
        for yes in [&["gzip"][..], &["br;q=1.0, gzip;q=0.1"], &["*"], &["deflate", "x-gzip"], &["gzip ; q=0.5"], &["GZip"]] {
            assert!(accepts(yes), "{yes:?}");
        }
        for no in [&[][..], &["gzip;q=0"], &["gzip;q=0.000"], &["br"], &["identity"], &["*;q=0"], &["gzip;q=0, *"], &["gzip;q=x"]] {
            assert!(!accepts(no), "{no:?}");
        }
    }

    #[test]
    fn a_request_body_is_identity_or_gzip() {
        let coding = |values: &[&str]| request_coding(&headers(CONTENT_ENCODING, values)).ok();
        assert_eq!(coding(&[]), Some(Coding::Identity));
        assert_eq!(coding(&["identity"]), Some(Coding::Identity));
        assert_eq!(coding(&["gzip"]), Some(Coding::Gzip));
        assert_eq!(coding(&["X-GZIP"]), Some(Coding::Gzip));
        assert_eq!(coding(&["identity, gzip"]), Some(Coding::Gzip));
        assert_eq!(coding(&["br"]), None);
        assert_eq!(coding(&["gzip", "gzip"]), None, "two codings applied in turn");
    }

    #[test]
    fn a_gzip_body_is_inflated_up_to_the_limit() {
        use std::io::Write;
        let pack = |data: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("compress");
            encoder.finish().expect("compress")
        };
        assert_eq!(gunzip(&pack(b"{\"name\":\"x\"}")).ok(), Some(b"{\"name\":\"x\"}".to_vec()));
        let two_members = [pack(b"{\"a\":"), pack(b"1}")].concat();
        assert_eq!(gunzip(&two_members).ok(), Some(b"{\"a\":1}".to_vec()), "RFC 1952: members in a row");
        assert_eq!(gunzip(&pack(&vec![b' '; MAX_BODY])).map(|body| body.len()).ok(), Some(MAX_BODY));
        assert!(gunzip(&pack(&vec![b' '; MAX_BODY + 1])).is_err());
        assert!(gunzip(b"not gzip").is_err());
    }
}
