//! Connections per peer: a listener holds at most so many connections from one IP address, so
//! that one caller — a slowloris, a leaking client pool — cannot take a listener's whole share
//! of connections from everyone else. A connection over the cap is shut down as it is accepted
//! (before TLS, before any byte is read); the others are untouched.
//!
//! Behind a load balancer or a proxy every connection comes from the proxy's address: set the
//! cap there (or leave it 0, off, here).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The open connections of each peer of one listener.
#[derive(Debug)]
pub struct PeerConnections {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection: its peer's count goes down when it is dropped (with the connection).
#[derive(Debug)]
pub struct PeerSlot {
    peers: Arc<PeerConnections>,
    peer: IpAddr,
}

impl PeerConnections {
    /// At most `cap` connections per peer; 0: no cap.
    pub fn new(cap: usize) -> Arc<PeerConnections> {
        Arc::new(PeerConnections { cap, open: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more connection of `peer`, or `None` when it already holds `cap`.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<PeerSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(peer).or_insert(0);
        if self.cap != 0 && *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PeerSlot { peers: self.clone(), peer })
    }

    /// Connections `peer` holds now.
    pub fn open(&self, peer: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(&peer).copied().unwrap_or(0)
    }

    /// Admits the connection `io` (a TCP stream, or a TLS stream over one) into `extensions`, or
    /// shuts its socket down when its peer is over the cap: for a server's `on_connect`.
    pub fn on_connect(self: &Arc<Self>, io: &dyn std::any::Any, extensions: &mut actix_web::dev::Extensions) {
        use actix_tls::accept::rustls_0_23::TlsStream;
        use actix_web::rt::net::TcpStream;
        let tcp = io
            .downcast_ref::<TcpStream>()
            .or_else(|| io.downcast_ref::<TlsStream<TcpStream>>().map(|tls| tls.get_ref().0));
        let Some(tcp) = tcp else { return };
        let Ok(peer) = tcp.peer_addr() else { return };
        match self.admit(peer.ip()) {
            Some(slot) => {
                extensions.insert(slot);
            }
            None => {
                // Both directions: actix reads end of stream and drops the connection at once.
                let _ = rustix::net::shutdown(tcp, rustix::net::Shutdown::Both);
                tracing::debug!(peer = %peer.ip(), cap = self.cap, "connection refused: too many from this peer");
            }
        }
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_at_most_its_cap_and_a_closed_connection_frees_its_slot() {
        let peers = PeerConnections::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = peers.admit(a).expect("1st");
        let _second = peers.admit(a).expect("2nd");
        assert!(peers.admit(a).is_none(), "a third from the same peer");
        assert!(peers.admit(b).is_some(), "another peer is not affected");
        drop(first);
        assert_eq!(peers.open(a), 1);
        assert!(peers.admit(a).is_some(), "a slot freed is free again");
        let unlimited = PeerConnections::new(0);
        let slots: Vec<_> = (0..1000).map(|_| unlimited.admit(a).expect("no cap")).collect();
        assert_eq!(unlimited.open(a), 1000);
        drop(slots);
        assert_eq!(unlimited.open(a), 0);
    }
}
