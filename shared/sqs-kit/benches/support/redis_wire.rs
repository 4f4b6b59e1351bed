//! A TCP proxy in front of a Redis server that counts the commands its clients send, as they
//! cross the wire: what a store costs in round trips, whatever the client library batches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy: a URL for clients, and the count of commands sent through it so far.
pub struct CountingProxy {
    pub url: String,
    commands: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// Listens on 127.0.0.1 and forwards every connection to the server of `upstream` (a
    /// `redis://` URL; credentials and database pass through in the URL clients get).
    pub async fn start(upstream: &str) -> Self {
        let (scheme, rest) = upstream.split_once("://").expect("a redis:// URL");
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (format!("{credentials}@"), address),
            None => (String::new(), rest),
        };
        let (server, path) = match address.split_once('/') {
            Some((server, path)) => (server.to_owned(), format!("/{path}")),
            None => (address.to_owned(), String::new()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{scheme}://{credentials}{}{path}", listener.local_addr().unwrap());
        let commands = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&commands);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&server).await.unwrap();
                tokio::spawn(relay(client, server, Arc::clone(&counted)));
            }
        });
        Self { url, commands }
    }

    /// Commands sent through the proxy so far.
    pub fn commands(&self) -> usize {
        self.commands.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, commands: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut pending = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            pending.extend_from_slice(&chunk[..read]);
            while let Some(length) = command_length(&pending) {
                commands.fetch_add(1, Ordering::SeqCst);
                pending.drain(..length);
            }
            if server_write.write_all(&chunk[..read]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(upstream, downstream);
}

/// The length of the first whole command in `buffer` (a RESP array of bulk strings, which is
/// how clients send commands), or `None` if it has not all arrived.
fn command_length(buffer: &[u8]) -> Option<usize> {
    let (count, mut at) = number_line(buffer, 0, b'*')?;
    for _ in 0..count {
        let (length, data) = number_line(buffer, at, b'$')?;
        at = data + length + 2;
        if at > buffer.len() {
            return None;
        }
    }
    Some(at)
}

/// Reads `<marker><number>\r\n` at `at`: the number, and where the next byte is.
fn number_line(buffer: &[u8], at: usize, marker: u8) -> Option<(usize, usize)> {
    if *buffer.get(at)? != marker {
        panic!("not a RESP command at byte {at}: {:?}", String::from_utf8_lossy(&buffer[at..buffer.len().min(at + 32)]));
    }
    let end = at + buffer[at..].windows(2).position(|pair| pair == b"\r\n")?;
    let number = std::str::from_utf8(&buffer[at + 1..end]).ok()?.parse().ok()?;
    Some((number, end + 2))
}
