//! A publishing MQTT client: its connection is driven on its own thread (reconnecting with
//! backoff), and `flush` waits until every publish so far has left (QoS 0) or been
//! acknowledged by the broker (QoS 1).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, Outgoing, Packet, QoS, Request};
use streamprep_core::IoError;

use super::{backoff, MqttUrl};

#[derive(Default)]
struct Progress {
    /// Publishes handed to the client.
    sent: u64,
    /// Publishes written (QoS 0) or acknowledged by the broker (QoS 1).
    done: u64,
    connected: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
    closing: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Publishes to one topic.
pub struct Publisher {
    client: Client,
    topic: String,
    qos: QoS,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    name: String,
}

/// Wait for the first CONNACK, so a wrong address or a refused login is an error before
/// anything runs.
pub(crate) fn connect(conn: &mut Connection, url: &MqttUrl) -> Result<(), IoError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(IoError::Protocol(format!(
                "{}: no answer from the broker within 5 s",
                url.display()
            )));
        }
        match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(IoError::Protocol(format!(
                    "cannot connect to the MQTT broker at {}: {e}",
                    url.display()
                )))
            }
            Err(_) => {}
        }
    }
}

impl Publisher {
    /// Connect (waiting for the broker's answer) and start driving the connection.
    pub fn connect(url: &MqttUrl, role: &str, stop: Arc<AtomicBool>) -> Result<Self, IoError> {
        if url.has_wildcards() {
            return Err(IoError::Protocol(format!(
                "{}: cannot publish to a topic filter with + or #",
                url.display()
            )));
        }
        let (client, mut conn) = Client::new(url.options(role, false)?, 1024);
        connect(&mut conn, url)?;
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                connected: true,
                ..Progress::default()
            }),
            changed: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let qos = url.qos();
        let name = url.display();
        let thread = {
            let shared = shared.clone();
            let name = name.clone();
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name("streamprep-mqtt-pub".into())
                .spawn(move || {
                    let _run = span.enter();
                    drive(conn, qos, &shared, &name)
                })
                .map_err(|e| IoError::io("starting the MQTT publisher", e))?
        };
        Ok(Publisher {
            client,
            topic: url.topic.clone(),
            qos,
            shared,
            thread: Some(thread),
            stop,
            name,
        })
    }

    /// Publish one payload (waits while the client's queue is full: backpressure).
    pub fn publish(&mut self, payload: Vec<u8>) -> Result<(), IoError> {
        self.shared.lock().sent += 1;
        self.client
            .publish(self.topic.clone(), self.qos, false, payload)
            .map_err(|e| IoError::Protocol(format!("publishing to {}: {e}", self.name)))
    }

    /// Wait until every publish so far has left (QoS 0) or been acknowledged (QoS 1).
    pub fn flush(&mut self) -> Result<(), IoError> {
        let mut p = self.shared.lock();
        while p.done < p.sent {
            if self.stop.load(Ordering::Relaxed) && !p.connected {
                return Err(IoError::Protocol(format!(
                    "{}: stopped with {} publish(es) not confirmed by the broker",
                    self.name,
                    p.sent - p.done
                )));
            }
            p = self
                .shared
                .changed
                .wait_timeout(p, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }

    /// Flush, disconnect and stop the connection's thread.
    pub fn close(&mut self) -> Result<(), IoError> {
        let flushed = self.flush();
        self.shared.closing.store(true, Ordering::SeqCst);
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        flushed
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.closing.store(true, Ordering::SeqCst);
            let _ = self.client.try_disconnect();
        }
    }
}

/// Drive the connection. rumqttc keeps the publishes not yet confirmed when a connection
/// drops, but clears them when the broker answers the reconnect without a session (a clean
/// session, or a broker restarted without its state), so they would be lost: they are taken
/// aside while disconnected and handed back, with fresh packet ids, once connected again.
fn drive(mut conn: Connection, qos: QoS, shared: &Shared, name: &str) {
    let mut failures = 0u32;
    let mut unconfirmed: VecDeque<Request> = VecDeque::new();
    loop {
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(event)) => {
                let done = match event {
                    Event::Incoming(Packet::ConnAck(ack)) => {
                        if failures > 0 {
                            let again = resend(&mut conn, &mut unconfirmed, ack.session_present);
                            tracing::info!(
                                "mqtt: reconnected to {name}{}",
                                if again > 0 {
                                    format!("; sending {again} unconfirmed publish(es) again")
                                } else {
                                    String::new()
                                }
                            );
                        }
                        failures = 0;
                        shared.lock().connected = true;
                        false
                    }
                    Event::Outgoing(Outgoing::Publish(_)) => qos == QoS::AtMostOnce,
                    Event::Incoming(Packet::PubAck(_)) => true,
                    Event::Outgoing(Outgoing::Disconnect) => return,
                    _ => false,
                };
                if done {
                    shared.lock().done += 1;
                    shared.changed.notify_all();
                }
            }
            Ok(Err(e)) => {
                // rumqttc has moved what was in flight or queued to `pending`; keep it
                unconfirmed.extend(
                    conn.eventloop
                        .pending
                        .drain(..)
                        .filter(|r| matches!(r, Request::Publish(_))),
                );
                if shared.closing.load(Ordering::SeqCst) {
                    return;
                }
                let wait = backoff(failures);
                if failures == 0 {
                    tracing::warn!(
                        "mqtt: connection to {name} lost ({e}); reconnecting with backoff"
                    );
                }
                failures += 1;
                shared.lock().connected = false;
                shared.changed.notify_all();
                std::thread::sleep(wait);
            }
            Err(rumqttc::RecvTimeoutError::Timeout) => {
                if shared.closing.load(Ordering::SeqCst) {
                    let p = shared.lock();
                    if p.done >= p.sent {
                        return;
                    }
                }
            }
            Err(rumqttc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// After a reconnect: put the publishes kept aside first in line, in their order. Without a
/// session they get new packet ids (the broker forgot the old ones); with one, rumqttc resends
/// them under their ids. Returns how many.
fn resend(conn: &mut Connection, unconfirmed: &mut VecDeque<Request>, session: bool) -> usize {
    let n = unconfirmed.len();
    let pending = &mut conn.eventloop.pending;
    for mut r in unconfirmed.drain(..).rev() {
        if let Request::Publish(p) = &mut r {
            if !session {
                p.pkid = 0;
                p.dup = false;
            }
        }
        pending.push_front(r);
    }
    n
}
