//! A Lambda Runtime API on 127.0.0.1 for running a function binary as Lambda runs it: it speaks
//! the HTTP protocol of `/2018-06-01/runtime/invocation/...`, hands out the test's events and
//! collects what the function answers.
//!
//! ```text
//! let api = RuntimeApi::function("invoices").serve(vec![event]);
//! let mut function = api.command(binary).spawn().unwrap();
//! let reply = api.reply(Duration::from_secs(30)).expect("a reply to the invocation");
//! ```
//!
//! Every connection has a thread of its own: the client holds `next` open on one connection
//! while it posts on another, and a function that runs several invocations at once
//! (`AWS_LAMBDA_MAX_CONCURRENCY`) holds several `next` requests open, each of which gets an
//! event of its own.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const INVOCATION: &str = "/2018-06-01/runtime/invocation/";

/// What the function posted back for one invocation.
#[derive(Debug)]
pub struct Reply {
    /// The `Lambda-Runtime-Aws-Request-Id` of the invocation: `req-0` for the first event.
    pub request_id: String,
    /// `"response"` or `"error"`, the last part of the path the function posted to.
    pub kind: &'static str,
    pub body: String,
}

/// The `Lambda-Runtime-Deadline-Ms` of each invocation.
#[derive(Clone, Copy, Debug)]
pub enum Deadline {
    /// This long after the event is handed out, as Lambda counts a function's timeout.
    After(Duration),
    /// This instant in milliseconds since the epoch, whenever the event is handed out: one
    /// already past, or the fixed value an emulator such as `cargo lambda watch` sends.
    EpochMs(u64),
}

/// How the Runtime API describes the invocations; [`RuntimeApi::function`] makes one.
#[derive(Clone, Debug)]
pub struct Builder {
    function_name: String,
    deadline: Deadline,
}

impl Builder {
    /// The deadline of every invocation; 30 seconds after the hand-out unless set.
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }

    /// Serves `events`, one per `next` request in order (request ids `req-0`, `req-1`, ...).
    /// Once they are handed out, `next` waits, as Lambda's does between invocations, until the
    /// [`RuntimeApi`] is dropped.
    pub fn serve(self, events: Vec<String>) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1 for the Runtime API");
        let address = listener.local_addr().expect("the Runtime API's listener has an address").to_string();
        let (sender, replies) = channel();
        let server = Arc::new(Server {
            function_arn: format!("arn:aws:lambda:ap-northeast-2:123456789012:function:{}", self.function_name),
            deadline: self.deadline,
            state: Mutex::new(State {
                events: events.into_iter().enumerate().collect(),
                open: HashSet::new(),
                most_open: 0,
                connections: Vec::new(),
                closed: false,
            }),
            closing: Condvar::new(),
        });
        let accepting = Arc::clone(&server);
        thread::spawn(move || accepting.accept(listener, sender));
        RuntimeApi { address, function_name: self.function_name, replies, server }
    }
}

/// A running Runtime API. Dropping it closes every connection: a function still waiting for
/// an event then sees its Runtime API go away.
pub struct RuntimeApi {
    address: String,
    function_name: String,
    replies: Receiver<Reply>,
    server: Arc<Server>,
}

impl RuntimeApi {
    /// A Runtime API for the function `name` (its `Lambda-Runtime-Invoked-Function-Arn`).
    pub fn function(name: &str) -> Builder {
        Builder { function_name: name.to_owned(), deadline: Deadline::After(Duration::from_secs(30)) }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `binary` with the environment Lambda gives a function of this name, pointed at this
    /// Runtime API.
    pub fn command(&self, binary: impl AsRef<Path>) -> Command {
        let mut command = Command::new(binary.as_ref());
        command
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.function_name));
        command
    }

    /// The most invocations handed out and not yet answered at one time so far: 1 for a
    /// function that serves one invocation at a time, as it asks for the next event only after
    /// answering the last.
    pub fn most_in_flight(&self) -> usize {
        self.server.state.lock().unwrap().most_open
    }

    /// The next reply the function posted, in the order they arrived.
    pub fn reply(&self, timeout: Duration) -> Result<Reply, RecvTimeoutError> {
        self.replies.recv_timeout(timeout)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        let mut state = self.server.state.lock().unwrap();
        state.closed = true;
        for connection in &state.connections {
            let _ = connection.shutdown(Shutdown::Both);
        }
        drop(state);
        self.server.closing.notify_all();
        // Wakes the accept loop, which then sees `closed`.
        let _ = TcpStream::connect(&self.address);
    }
}

struct Server {
    function_arn: String,
    deadline: Deadline,
    state: Mutex<State>,
    /// Signalled when the Runtime API closes: the events never grow, so that is all a waiting
    /// `next` can be waiting for.
    closing: Condvar,
}

struct State {
    events: VecDeque<(usize, String)>,
    /// Request ids of the invocations handed out and not yet answered.
    open: HashSet<String>,
    /// The most invocations that were open at once.
    most_open: usize,
    /// Clones of every accepted stream, shut down on drop to end the connections' threads.
    connections: Vec<TcpStream>,
    closed: bool,
}

impl Server {
    fn accept(self: Arc<Self>, listener: TcpListener, replies: Sender<Reply>) {
        for stream in listener.incoming().flatten() {
            let mut state = self.state.lock().unwrap();
            if state.closed {
                return;
            }
            let Ok(clone) = stream.try_clone() else { continue };
            state.connections.push(clone);
            drop(state);
            let (server, replies) = (Arc::clone(&self), replies.clone());
            thread::spawn(move || server.connection(stream, &replies));
        }
    }

    fn connection(&self, stream: TcpStream, replies: &Sender<Reply>) {
        let Ok(mut writer) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        while let Some((path, body)) = read_request(&mut reader) {
            let answer = match route(&path) {
                Route::Next => match self.next_event() {
                    Some((index, event)) => self.invocation(index, &event),
                    None => return,
                },
                Route::Reply { request_id, kind } => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    self.state.lock().unwrap().open.remove(request_id);
                    let _ = replies.send(Reply { request_id: request_id.to_owned(), kind, body });
                    "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}".to_owned()
                }
                Route::Unknown => {
                    // Shown with the failing test's output: a request the fake does not know is
                    // the likeliest reason a reply never came.
                    eprintln!("runtime API: no route for {path} (body {:?})", String::from_utf8_lossy(&body));
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                }
            };
            // A client that went away is the test's business, seen in the replies it misses.
            if writer.write_all(answer.as_bytes()).and_then(|()| writer.flush()).is_err() {
                return;
            }
        }
    }

    /// The next event to hand out, after waiting for one; `None` once the Runtime API closes.
    fn next_event(&self) -> Option<(usize, String)> {
        let state = self.state.lock().unwrap();
        let mut state = self.closing.wait_while(state, |state| state.events.is_empty() && !state.closed).unwrap();
        if state.closed {
            return None;
        }
        let (index, event) = state.events.pop_front()?;
        state.open.insert(request_id(index));
        state.most_open = state.most_open.max(state.open.len());
        Some((index, event))
    }

    /// The answer to `next` that hands out the event `index`.
    fn invocation(&self, index: usize, event: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
        let deadline_ms = match self.deadline {
            Deadline::After(timeout) => (now + timeout).as_millis(),
            Deadline::EpochMs(ms) => ms.into(),
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\
             Lambda-Runtime-Aws-Request-Id: {request_id}\r\nLambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
             Lambda-Runtime-Invoked-Function-Arn: {arn}\r\nLambda-Runtime-Trace-Id: Root=1-{seconds:08x}-{index:024x};Sampled=0\r\n\
             \r\n{event}",
            length = event.len(),
            request_id = request_id(index),
            arn = self.function_arn,
            seconds = now.as_secs(),
        )
    }
}

/// The request id of the event `index`: `req-0` for the first.
fn request_id(index: usize) -> String {
    format!("req-{index}")
}

enum Route<'a> {
    Next,
    Reply { request_id: &'a str, kind: &'static str },
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix(INVOCATION) else { return Route::Unknown };
    if rest == "next" {
        return Route::Next;
    }
    match rest.split_once('/') {
        Some((request_id, "response")) => Route::Reply { request_id, kind: "response" },
        Some((request_id, "error")) => Route::Reply { request_id, kind: "error" },
        _ => Route::Unknown,
    }
}

/// One HTTP/1.1 request's path and body (sized by `Content-Length`); `None` once the client
/// has closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait this long for an answer means the server never gives one.
    const ANSWER: Duration = Duration::from_secs(10);

    /// Sends one request on its own connection and returns the connection, to read the answer.
    fn send(api: &RuntimeApi, request: &str) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(api.address()).unwrap();
        stream.set_read_timeout(Some(ANSWER)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        BufReader::new(stream)
    }

    /// The answer's head, up to the blank line; empty once the server closed the connection.
    fn head(reader: &mut BufReader<TcpStream>) -> String {
        let mut head = String::new();
        while reader.read_line(&mut head).unwrap() > 2 {}
        head
    }

    const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn concurrent_next_requests_get_an_event_each_and_the_rest_wait_until_the_drop() {
        let api = RuntimeApi::function("f").deadline(Deadline::EpochMs(1_000)).serve(vec!["{}".into(), "{}".into()]);
        // Both requests are open before either is answered, as a function's concurrent polls are.
        let mut concurrent = [send(&api, NEXT), send(&api, NEXT)];
        let mut heads: Vec<String> = concurrent.iter_mut().map(head).collect();
        heads.sort();
        assert!(heads[0].contains("Lambda-Runtime-Aws-Request-Id: req-0\r\n"), "{heads:?}");
        assert!(heads[1].contains("Lambda-Runtime-Aws-Request-Id: req-1\r\n"), "{heads:?}");
        assert!(heads.iter().all(|head| head.contains("Lambda-Runtime-Deadline-Ms: 1000\r\n")), "{heads:?}");
        let arn = "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:ap-northeast-2:123456789012:function:f\r\n";
        assert!(heads.iter().all(|head| head.contains(arn) && head.contains("Lambda-Runtime-Trace-Id: Root=1-")), "{heads:?}");

        let mut last = send(&api, NEXT);
        last.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut byte = [0];
        assert!(last.read(&mut byte).is_err(), "the third next waits for an event");
        last.get_ref().set_read_timeout(Some(ANSWER)).unwrap();
        drop(api);
        assert_eq!(head(&mut last), "", "the drop closes the waiting connection");
    }

    #[test]
    fn invocations_count_as_in_flight_from_their_hand_out_until_their_answer() {
        let api = RuntimeApi::function("f").serve(vec!["{}".into(), "{}".into(), "{}".into()]);
        let answer = |request_id: &str| {
            let post = format!("POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}");
            assert!(head(&mut send(&api, &post)).starts_with("HTTP/1.1 202 "));
            assert_eq!(api.reply(Duration::from_secs(5)).unwrap().request_id, request_id);
        };
        assert_eq!(api.most_in_flight(), 0);
        assert!(head(&mut send(&api, NEXT)).contains("req-0"));
        answer("req-0");
        assert!(head(&mut send(&api, NEXT)).contains("req-1"));
        assert_eq!(api.most_in_flight(), 1, "one at a time");
        assert!(head(&mut send(&api, NEXT)).contains("req-2"));
        answer("req-1");
        answer("req-2");
        assert_eq!(api.most_in_flight(), 2, "req-1 and req-2 were open together");
    }

    #[test]
    fn replies_carry_their_request_id_kind_and_body() {
        let api = RuntimeApi::function("f").serve(Vec::new());
        for (kind, body) in [("response", "{\"ok\":1}"), ("error", "boom")] {
            let post = format!("POST /2018-06-01/runtime/invocation/req-7/{kind} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            assert!(head(&mut send(&api, &post)).starts_with("HTTP/1.1 202 "));
            let reply = api.reply(Duration::from_secs(5)).unwrap();
            assert_eq!((reply.request_id.as_str(), reply.kind, reply.body.as_str()), ("req-7", kind, body));
        }
        let stray = "POST /2018-06-01/runtime/invocation/req-7/other HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert!(head(&mut send(&api, stray)).starts_with("HTTP/1.1 404 "));
        assert!(api.reply(Duration::from_millis(100)).is_err(), "a stray request is no reply");
    }
}
