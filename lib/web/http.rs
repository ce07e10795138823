//! The HTTP/1.1 layer: one request per connection, parsed with `httparse`,
//! bounded in size and in time so a slow or hostile client holds at most
//! one thread and a few kilobytes, and only for a while.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The request line and headers together.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body (posts, task descriptions).
pub const MAX_BODY: usize = 256 * 1024;
/// How long a client has to send its whole request, and to take each
/// write of ours: a client slower than that is dropped.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (names compare without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name).then_some(v)
            })
    }
}

/// Decode `%XX` and `+`; invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why no request could be read: a status to answer with, or nothing
/// (the client went away or never spoke).
pub enum BadRequest {
    Gone,
    Status(u16, &'static str),
}

/// Read one request within `IO_TIMEOUT` and the size limits.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, BadRequest> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let (head_len, mut req) = loop {
        read_some(stream, deadline, &mut chunk, &mut buf)?;
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let (path, query) = match r.path.unwrap_or("/").split_once('?') {
                    Some((p, q)) => (p.to_string(), q.to_string()),
                    None => (r.path.unwrap_or("/").to_string(), String::new()),
                };
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let req = Request {
                    method: r.method.unwrap_or("GET").to_string(),
                    path,
                    query,
                    headers,
                    body: Vec::new(),
                };
                break (n, req);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(BadRequest::Status(431, "request head too large"));
            }
            Err(_) => return Err(BadRequest::Status(400, "malformed request")),
        }
    };
    if req.header("transfer-encoding").is_some() {
        return Err(BadRequest::Status(411, "send a Content-Length"));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| BadRequest::Status(400, "bad Content-Length"))?,
    };
    if len > MAX_BODY {
        return Err(BadRequest::Status(413, "request body too large"));
    }
    let mut body = buf.split_off(head_len);
    while body.len() < len {
        read_some(stream, deadline, &mut chunk, &mut body)?;
    }
    body.truncate(len);
    req.body = body;
    Ok(req)
}

fn read_some(
    stream: &mut TcpStream,
    deadline: Instant,
    chunk: &mut [u8],
    into: &mut Vec<u8>,
) -> Result<(), BadRequest> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(BadRequest::Status(408, "request too slow"));
    }
    let _ = stream.set_read_timeout(Some(left));
    match stream.read(chunk) {
        Ok(0) => Err(BadRequest::Gone),
        Ok(n) => {
            into.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(BadRequest::Status(408, "request too slow"))
        }
        Err(_) => Err(BadRequest::Gone),
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
    pub fn json(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200, "application/json", body)
    }
    /// An error as `{"error": ...}`.
    pub fn error(status: u16, what: &str) -> Response {
        Response::new(
            status,
            "application/json",
            serde_json::json!({ "error": what }).to_string(),
        )
    }
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// What every answer carries: the page may run only its own script and
/// talk only to this server; nothing is cached, sniffed or framed.
pub const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
X-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\n\
X-Frame-Options: DENY\r\n\
Cache-Control: no-store\r\n";

pub fn write_response(stream: &mut TcpStream, r: &Response) -> io::Result<()> {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{SECURITY_HEADERS}",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&r.body);
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
