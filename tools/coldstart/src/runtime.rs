//! The local stand-ins a cold start is measured against: a Lambda Runtime API that hands the
//! function one event and reports what it does (`GET …/next`, the reply) to the measuring
//! thread, and a pass-through proxy in front of the AWS endpoint that times every call.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// What the runtime API saw, in order.
pub enum Seen {
    /// A `GET …/next`: when, how many this run has had (1 = the first), and the process's CPU
    /// time at that moment.
    Next(Instant, usize, Option<Duration>),
    /// A `POST` of the result: `response`, `error` or `init error`.
    Reply {
        at: Instant,
        kind: String,
        body: String,
    },
}

/// The run in progress, shared with the runtime API's connection threads.
pub struct Run {
    pub function: String,
    pub event: String,
    pub pid: u32,
    pub nexts: usize,
    pub tx: Sender<Seen>,
}

/// Start and end of every AWS call that went through the proxy.
pub type Calls = Arc<Mutex<Vec<(Instant, Instant)>>>;

/// CPU time of every thread of `pid` (`/proc/<pid>/task/*/schedstat`, nanoseconds).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    if pid == 0 {
        return None;
    }
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// The local Runtime API: its `host:port` and the run it serves.
pub fn runtime_api() -> Result<(String, Arc<Mutex<Run>>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    let api = listener
        .local_addr()
        .map_err(|e| format!("listen: {e}"))?
        .to_string();
    let state = Arc::new(Mutex::new(Run {
        function: String::new(),
        event: String::new(),
        pid: 0,
        nexts: 0,
        tx: mpsc::channel().0,
    }));
    let shared = Arc::clone(&state);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = Arc::clone(&shared);
            thread::spawn(move || {
                let _ = runtime_connection(stream, &state);
            });
        }
    });
    Ok((api, state))
}

/// Serves one connection of the function's runtime client.
fn runtime_connection(stream: TcpStream, state: &Mutex<Run>) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_message(&mut reader, false)? {
        let at = Instant::now();
        let mut start = request.start.split_whitespace();
        let (method, path) = (
            start.next().unwrap_or_default(),
            start.next().unwrap_or_default(),
        );
        let mut run = state.lock().map_err(|_| io::Error::other("lock"))?;
        if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            run.nexts += 1;
            let n = run.nexts;
            let _ = run.tx.send(Seen::Next(at, n, cpu_time(run.pid)));
            if n > 1 {
                // Hold the request: the process stays idle until it is killed.
                drop(run);
                let mut sink = [0u8; 64];
                while reader.read(&mut sink)? > 0 {}
                return Ok(());
            }
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Lambda-Runtime-Aws-Request-Id: {REQUEST_ID}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:{}\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-677e4f42-5c6d7e8f9a0b1c2d3e4f5a6b;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n",
                run.function,
                run.event.len()
            );
            writer.write_all(head.as_bytes())?;
            writer.write_all(run.event.as_bytes())?;
        } else if method == "POST"
            && let Some(kind) =
                path.strip_prefix("/2018-06-01/runtime/").and_then(|rest| {
                    match rest.rsplit_once('/') {
                        Some(("init", "error")) => Some("init error"),
                        Some((_, "response")) => Some("response"),
                        Some((_, "error")) => Some("error"),
                        _ => None,
                    }
                })
        {
            let _ = run.tx.send(Seen::Reply {
                at,
                kind: kind.into(),
                body: String::from_utf8_lossy(&request.body).into_owned(),
            });
            let ok = "{\"status\":\"OK\"}";
            write!(
                writer,
                "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ok}",
                ok.len()
            )?;
        } else {
            eprintln!("coldstart: unexpected {method} {path}");
            writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
        writer.flush()?;
    }
    Ok(())
}

/// A proxy in front of moto at `port` that records when each call starts and ends; returns its
/// URL.
pub fn aws_proxy(port: u16, calls: Calls) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("proxy: {e}"))?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let calls = Arc::clone(&calls);
            thread::spawn(move || {
                let _ = proxy_connection(stream, port, &calls);
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// Forwards each request of one client connection to moto on a new connection, and the answer
/// back with `Content-Length` framing, keeping the client's connection open.
fn proxy_connection(stream: TcpStream, port: u16, calls: &Calls) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_message(&mut reader, false)? {
        let start = Instant::now();
        let mut upstream = TcpStream::connect(("127.0.0.1", port))?;
        upstream.write_all(&request.encode("close"))?;
        let response = read_message(&mut BufReader::new(upstream), true)?
            .ok_or_else(|| io::Error::other("moto closed the connection"))?;
        writer.write_all(&response.encode("keep-alive"))?;
        writer.flush()?;
        if let Ok(mut c) = calls.lock() {
            c.push((start, Instant::now()));
        }
    }
    Ok(())
}

/// An HTTP/1.1 message: start line, headers and de-chunked body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    /// The message with a `Content-Length` body and the given `Connection` header.
    fn encode(&self, connection: &str) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if !matches!(
                lower.as_str(),
                "connection" | "keep-alive" | "transfer-encoding" | "content-length"
            ) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 message; `None` at the end of the stream. A response without length or
/// chunking runs to the end of the stream.
fn read_message(r: &mut impl BufRead, response: bool) -> io::Result<Option<Message>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut message = Message {
        start: line.trim_end().to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            message
                .headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = message
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let body = &mut message.body;
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(body)?;
    } else if response {
        r.read_to_end(body)?;
    }
    Ok(Some(message))
}

