//! Writing on a thread of its own, so that reading goes on while the peer
//! is slow to read.
//!
//! An echo endpoint that writes on the thread that reads deadlocks with a
//! peer that sends a whole large message before it reads anything: both
//! sides block in `write` once the socket buffers are full. With the writes
//! on their own thread, the reader keeps draining the socket and the output
//! waits in memory, up to a bound; past it the reader waits too, which is
//! the back-pressure the peer sees.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the writer thread reports back.
#[derive(Debug, Default)]
struct State {
    /// Bytes handed over and not yet written.
    pending: usize,
    /// The write that failed, which ends the writer.
    failed: Option<(io::ErrorKind, String)>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A writer thread owning a clone of the socket.
#[derive(Debug)]
pub(crate) struct WriteBehind {
    queue: Option<Sender<Vec<u8>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    stream: TcpStream,
    limit: usize,
}

impl WriteBehind {
    /// Start writing to `stream` on a new thread, holding at most `limit`
    /// bytes not yet written (a single larger batch is still accepted when
    /// nothing else waits).
    pub(crate) fn start(stream: &TcpStream, limit: usize) -> io::Result<Self> {
        let mut writer = stream.try_clone()?;
        let shared = Arc::new(Shared::default());
        // The byte count bounds the queue (`write` waits, with a timeout,
        // while it is over the limit), so sending on the channel never
        // blocks.
        let (queue, batches): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ws-writer".into())
            .spawn(move || {
                for batch in batches {
                    let result = writer.write_all(&batch);
                    let mut state = thread_shared.lock();
                    state.pending -= batch.len();
                    if let Err(err) = result {
                        state.failed = Some((err.kind(), err.to_string()));
                        thread_shared.changed.notify_all();
                        return;
                    }
                    thread_shared.changed.notify_all();
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            shared,
            thread: Some(thread),
            stream: stream.try_clone()?,
            limit,
        })
    }

    /// Hand `batch` to the writer, waiting (at most `timeout`) while the
    /// bytes not yet written would go past the limit.
    pub(crate) fn write(&mut self, batch: Vec<u8>, timeout: Duration) -> io::Result<()> {
        let end = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some((kind, message)) = &state.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            if state.pending == 0 || state.pending + batch.len() <= self.limit {
                break;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer stopped reading",
                ));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.pending += batch.len();
        drop(state);
        let queue = self.queue.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        if queue.send(batch).is_err() {
            // The writer ended: report why.
            let state = self.shared.lock();
            return Err(match &state.failed {
                Some((kind, message)) => io::Error::new(*kind, message.clone()),
                None => io::Error::new(io::ErrorKind::BrokenPipe, "the writer ended"),
            });
        }
        Ok(())
    }

    /// Wait (at most `timeout`) until everything handed over is written,
    /// then stop the writer thread. What could not be written in time is
    /// abandoned by shutting the socket down.
    pub(crate) fn finish(&mut self, timeout: Duration) -> io::Result<()> {
        self.queue = None;
        let end = Instant::now() + timeout;
        let mut result = Ok(());
        {
            let mut state = self.shared.lock();
            while state.pending > 0 && state.failed.is_none() {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    result = Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer stopped reading",
                    ));
                    break;
                }
                state = self
                    .shared
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if let Some((kind, message)) = &state.failed {
                result = Err(io::Error::new(*kind, message.clone()));
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Not finished: abandon what is queued rather than block.
            let _ = self.stream.shutdown(Shutdown::Both);
            self.queue = None;
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn writes_everything_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut writer = WriteBehind::start(&client, 1 << 20).unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            server.read_to_end(&mut all).unwrap();
            all
        });
        let mut expected = Vec::new();
        for i in 0..100u32 {
            let batch: Vec<u8> = (0..50_000).map(|j| ((i + j) % 256) as u8).collect();
            expected.extend_from_slice(&batch);
            writer.write(batch, Duration::from_secs(10)).unwrap();
        }
        writer.finish(Duration::from_secs(10)).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap(), expected);
    }

    #[test]
    fn a_peer_that_never_reads_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let mut writer = WriteBehind::start(&client, 1 << 20).unwrap();
        let mut result = Ok(());
        for _ in 0..1000 {
            result = writer.write(vec![0; 1 << 20], Duration::from_millis(200));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(writer.finish(Duration::from_millis(100)).is_err());
    }
}
