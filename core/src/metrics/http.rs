//! A minimal HTTP/1.1 endpoint for scrapers: `GET /metrics` (or `HEAD`)
//! answers the exposition, any other path 404, any other method 405. One
//! thread, blocking `std::net`, one connection at a time with `Connection:
//! close`; a client that sends nothing is dropped after a read timeout.
//! [`MetricsServer::stop`] wakes the blocked `accept` by connecting to it.

use super::exposition::CONTENT_TYPE;
use super::Collector;
use crate::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may take to send its request, and to take the reply.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests larger than this (line plus headers) are refused.
const MAX_REQUEST: usize = 16 * 1024;

/// A running `/metrics` endpoint ([`Collector::serve`]). Stops when dropped.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// use std::io::{Read, Write};
/// let c = Collector::new();
/// c.counter("up_total", "Up.").unwrap().inc();
/// let server = c.serve("127.0.0.1:0").unwrap();
/// let mut s = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
/// let mut reply = String::new();
/// s.read_to_string(&mut reply).unwrap();
/// assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(reply.ends_with("up_total 1\n"));
/// server.stop();
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub(crate) fn start(collector: Collector, addr: impl ToSocketAddrs) -> Result<MetricsServer, Error> {
        let listener = TcpListener::bind(addr).map_err(|e| Error::invalid("addr", format!("cannot listen: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::invalid("addr", format!("no local address: {e}")))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("nimsync-metrics-http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    // Acquire: pairs with the Release in `stop`.
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        // A failing client (reset, timeout) only loses its own reply.
                        Ok(stream) => drop(serve_one(&collector, stream)),
                        // Out of file descriptors or similar: back off rather
                        // than spin on an accept that keeps failing.
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .map_err(|e| Error::OutOfMemory(format!("cannot start the metrics thread: {e}")))?;
        Ok(MetricsServer { addr, stopping, thread: Some(thread) })
    }

    /// The address the endpoint listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        // Release: the thread that sees the flag after the wake-up stops.
        self.stopping.store(true, Ordering::Release);
        // Wake the blocked accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, IO_TIMEOUT).is_ok() {
            let _ = thread.join();
        }
        // If even that connection failed the listener is unusable; the thread
        // is left to end with the process rather than hang this call.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads one request and answers it.
fn serve_one(collector: &Collector, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                true,
            );
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // closed before a full request (also our own wake-up)
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return respond(&mut stream, "404 Not Found", "text/plain", b"not found: try /metrics\n", true);
    }
    match method {
        "GET" | "HEAD" => {
            let body = collector.to_prometheus();
            respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes(), method == "GET")
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET and HEAD\n", true),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    stream.flush()
}
