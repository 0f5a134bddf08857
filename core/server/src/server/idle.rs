//! Long-idle keep-alive connections leave their tasks and wait here, as
//! a socket and a few words each, the way nginx keeps them: an idle
//! connection then costs about what the kernel holds for it. Each worker
//! thread has one lot: an epoll instance of its own with the parked
//! sockets in it, a queue of their keep-alive deadlines, and a thread
//! that blocks in `epoll_wait` and reports the sockets that turn
//! readable. (A thread rather than registering the epoll descriptor with
//! the reactor: that needs `unsafe`, which the core keeps to its loader.)
//!
//! A connection is parked only after `PARK_AFTER` of idleness, so busy
//! keep-alive connections never pay the extra epoll calls. A parked
//! connection that becomes readable gets a new task and goes on where it
//! left off. TLS connections are not parked (their session state lives
//! in their task).

use super::connection;
use super::pipeline::Site;
use super::Shared;
use crate::http::client_io::ClientIo;
use crate::http::client_tcp::ClientTcp;
use crate::log;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

/// A plain connection idle this long is parked.
pub const PARK_AFTER: Duration = Duration::from_millis(100);
/// Ready sockets taken from the lot's epoll per call.
const BATCH: usize = 64;

/// What an open connection holds until it closes: its MaxConnections
/// slot, and its part in the drain that a stop or restart waits for.
pub struct Held {
    /// Taken by a tunnel after a 101 (`respond::switch`): the client's
    /// connection stays open, so it keeps counting against the limit.
    pub slot: Option<OwnedSemaphorePermit>,
    pub _drain: mpsc::Sender<()>,
}

/// A connection waiting in the lot: as little as it can be, so its
/// `ConnInfo` is made again when it wakes.
pub struct Parked {
    pub stream: std::net::TcpStream,
    pub site: Arc<Site>,
    pub held: Held,
    /// When the keep-alive timeout closes it.
    pub deadline: Instant,
}

thread_local! {
    /// This worker thread's lot, once it runs.
    static LOT: RefCell<Option<mpsc::UnboundedSender<Parked>>> = const { RefCell::new(None) };
}

/// Whether this thread has a lot to park in.
pub fn available() -> bool {
    LOT.with(|lot| lot.borrow().as_ref().is_some_and(|tx| !tx.is_closed()))
}

/// Parks a connection in this thread's lot; without one it is closed.
pub fn park(parked: Parked) {
    LOT.with(|lot| {
        if let Some(tx) = lot.borrow().as_ref() {
            let _ = tx.send(parked);
        }
    });
}

/// Runs this worker thread's lot until the worker's runtime ends.
pub async fn run(shared: Arc<Shared>) {
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let epoll = match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
        .map(Arc::new)
        .and_then(|epoll| {
            let watched = epoll.clone();
            std::thread::Builder::new()
                .name("modproxy-idle".into())
                .spawn(move || report_ready(&watched, &ready_tx))
                .map_err(|_| nix::Error::EAGAIN)?;
            Ok(epoll)
        }) {
        Ok(epoll) => epoll,
        Err(e) => {
            // Idle connections then keep their tasks: more memory, no harm.
            log::error(&format!(
                "cannot make the idle-connection lot ({e}); idle connections keep their tasks"
            ));
            return;
        }
    };
    let (tx, mut incoming) = mpsc::unbounded_channel();
    LOT.with(|lot| *lot.borrow_mut() = Some(tx));
    let mut lot = Lot::default();
    let mut stop = shared.stop.clone();
    let mut stopped = false;
    loop {
        let next_deadline = lot.deadlines.front().map(|(at, _)| *at);
        tokio::select! {
            biased;
            parked = incoming.recv() => match parked {
                // Parked after a stop took effect: closes at once.
                Some(_) if shared.stopping_now() => {}
                Some(parked) => lot.add(&epoll, parked),
                None => return,
            },
            key = ready.recv() => match key {
                Some(key) => {
                    if let Some(parked) = lot.take(&epoll, key) {
                        resume(parked, &shared);
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                lot.expire(&epoll, Instant::now());
            }
            _ = stop.wait_for(|s| *s), if !stopped => {
                stopped = true;
                // On a hand-off they wait for their next request or their
                // timeout, as busy connections do; on a stop they close.
                if shared.stopping_now() {
                    lot.close_all(&epoll);
                }
            }
        }
    }
}

/// The lot's watcher thread: each parked socket is reported once
/// (EPOLLONESHOT), when it turns readable or its client hangs up.
fn report_ready(epoll: &Epoll, ready: &mpsc::UnboundedSender<u64>) {
    let mut events = [EpollEvent::empty(); BATCH];
    loop {
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                log::error(&format!("the idle-connection lot stopped watching: {e}"));
                return;
            }
        };
        for event in &events[..n] {
            if ready.send(event.data()).is_err() {
                return;
            }
        }
    }
}

/// Back to a task of its own, reading the request that woke it.
fn resume(parked: Parked, shared: &Arc<Shared>) {
    let Parked {
        stream, site, held, ..
    } = parked;
    match stream.peer_addr() {
        Ok(client) => {
            // Unregistered again: the read that woke it will not block.
            let stream = ClientTcp::fresh(stream);
            let conn = super::conn_info(&stream, client, &site);
            tokio::spawn(Box::pin(connection::serve(
                ClientIo::Tcp(stream),
                conn,
                site,
                shared.clone(),
                held,
            )));
        }
        Err(e) => log::debug(&format!("a parked connection could not resume: {e}")),
    }
}

/// The parked connections by slot, with a generation per slot so that a
/// stale key (a slot reused since) finds nothing.
#[derive(Default)]
struct Lot {
    slots: Vec<(u32, Option<Parked>)>,
    free: Vec<u32>,
    /// In the order parked, which is deadline order: every connection
    /// waits the same PARK_AFTER and keep-alive timeout.
    deadlines: VecDeque<(Instant, u64)>,
}

impl Lot {
    fn add(&mut self, epoll: &Epoll, parked: Parked) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                self.slots.len() as u32 - 1
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.0 = slot.0.wrapping_add(1);
        let key = u64::from(slot.0) << 32 | u64::from(index);
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        let event = EpollEvent::new(flags, key);
        if epoll.add(&parked.stream, event).is_err() {
            self.free.push(index);
            return;
        }
        self.deadlines.push_back((parked.deadline, key));
        slot.1 = Some(parked);
    }

    /// Takes a connection out of the lot (and its epoll).
    fn take(&mut self, epoll: &Epoll, key: u64) -> Option<Parked> {
        let index = key as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if u64::from(slot.0) != key >> 32 {
            return None;
        }
        let parked = slot.1.take()?;
        let _ = epoll.delete(&parked.stream);
        self.free.push(index);
        Some(parked)
    }

    /// Closes the connections whose keep-alive timeout has passed.
    fn expire(&mut self, epoll: &Epoll, now: Instant) {
        while let Some(&(at, key)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            drop(self.take(epoll, key));
        }
        self.shrink();
    }

    fn close_all(&mut self, epoll: &Epoll) {
        while let Some((_, key)) = self.deadlines.pop_front() {
            drop(self.take(epoll, key));
        }
        self.shrink();
    }

    /// Gives memory back after a crowd of idle connections has gone.
    fn shrink(&mut self) {
        if self.deadlines.is_empty() && self.slots.len() > 1024 {
            *self = Lot::default();
        }
    }
}
