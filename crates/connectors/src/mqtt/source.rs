//! The MQTT source. A publish carries one JSON row or a JSON array of rows (or CSV lines).
//! At QoS 1 the session is persistent and acknowledgements are manual: a publish is
//! acknowledged only after the message holding its last row has reached the sinks, so a crash
//! or a lost connection means redelivery, never loss (at least once, end to end).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{Client, Connection, Event, Packet, Publish, QoS, SubscribeReasonCode};
use streamprep_core::{
    AckToken, Acker, IoError, LinkHealth, Read, RowBlock, RowFormat, Source, SourceKind,
};

use super::{backoff, publisher::connect, MqttUrl};

/// How often a waiting source looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// Rows of one publish not yet handed to the buffer: the publish's text (shared, not copied
/// unless line breaks had to go) and where each row is in it.
struct Pending {
    text: Bytes,
    rows: Vec<Range<usize>>,
    next: usize,
    token: Option<AckToken>,
    /// The publish refused whole (empty, or over the size limit), as `(reason, data)`: a
    /// dead letter, acknowledged like rows so it is not redelivered for ever.
    refused: Option<(String, Vec<u8>)>,
}

/// The MQTT client reads packets up to MQTT's own maximum, so a publish over the source's
/// limit arrives, becomes a dead letter and is acknowledged (a smaller client limit would drop
/// the connection and the broker would redeliver it for ever).
pub const CLIENT_MAX_PACKET: usize = 268_435_455;

/// Subscribes to a topic filter and delivers the rows of its publishes.
pub struct MqttSource {
    client: Client,
    conn: Connection,
    url: MqttUrl,
    format: RowFormat,
    stop: Arc<AtomicBool>,
    /// Incremented when a connection is lost: packet ids of an older one are not acknowledged
    /// (the broker redelivers those publishes instead).
    epoch: Arc<AtomicU64>,
    /// Tokens handed out and not yet acknowledged (to explain a stall at QoS 1).
    unacked: Arc<AtomicU64>,
    health: Arc<LinkHealth>,
    inbox: VecDeque<Publish>,
    pending: Option<Pending>,
    failures: u32,
    retry_at: Option<Instant>,
    ended: bool,
    hinted: bool,
    /// Messages in a row closed by time right after a burst of this many publishes.
    stalls: (u64, u32),
    /// When the current connection was made (a redelivered backlog is not a stall).
    connected_at: Instant,
    /// The largest publish taken; a larger one is a dead letter.
    max_payload: usize,
}

impl MqttSource {
    /// Connect and subscribe; an unreachable broker or a refused subscription is an error
    /// here, before anything runs.
    pub fn connect(
        url: &MqttUrl,
        format: RowFormat,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, IoError> {
        if format == RowFormat::Csv && url.header.is_none() {
            return Err(IoError::Protocol(format!(
                "{}: CSV rows over MQTT need their header: add ?header=col1,col2,...",
                url.display()
            )));
        }
        let persistent = url.qos == 1;
        let mut opts = url.options("source", persistent)?;
        opts.set_manual_acks(true);
        let (client, mut conn) = Client::new(opts, 1 << 16);
        connect(&mut conn, url)?;
        let mut src = MqttSource {
            client,
            conn,
            url: url.clone(),
            format,
            stop,
            epoch: Arc::new(AtomicU64::new(1)),
            unacked: Arc::new(AtomicU64::new(0)),
            health: Arc::new(LinkHealth::default()),
            inbox: VecDeque::new(),
            pending: None,
            failures: 0,
            retry_at: None,
            ended: false,
            hinted: false,
            stalls: (0, 0),
            connected_at: Instant::now(),
            max_payload: 16 << 20,
        };
        src.health.connected.store(true, Ordering::Relaxed);
        src.subscribe()?;
        // wait for the SUBACK: a refused subscription is a configuration error
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoError::Protocol(format!(
                    "{}: the broker did not confirm the subscription within 5 s",
                    url.display()
                )));
            }
            match src.conn.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        return Err(IoError::Protocol(format!(
                            "{}: the broker refused the subscription (check the topic filter and the user's rights)",
                            url.display()
                        )));
                    }
                    break;
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => src.inbox.push_back(p),
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => {
                    return Err(IoError::Protocol(format!(
                        "{}: connection lost while subscribing: {e}",
                        url.display()
                    )))
                }
            }
        }
        Ok(src)
    }

    fn subscribe(&mut self) -> Result<(), IoError> {
        self.client
            .try_subscribe(self.url.topic.clone(), self.url.qos())
            .map_err(|e| IoError::Protocol(format!("subscribing to {}: {e}", self.url.display())))
    }

    /// Refuse publishes larger than `max` bytes (each becomes a dead letter, acknowledged).
    pub fn with_max_payload(mut self, max: usize) -> Self {
        self.max_payload = max.max(1);
        self
    }

    /// Split a publish into rows.
    fn take(&mut self, p: Publish) {
        let token = match p.qos {
            QoS::AtMostOnce => None,
            qos => {
                self.unacked.fetch_add(1, Ordering::Relaxed);
                Some(
                    (self.epoch.load(Ordering::Relaxed) << 32)
                        | ((qos as u64) << 16)
                        | u64::from(p.pkid),
                )
            }
        };
        let refused = if p.payload.is_empty() {
            Some((
                "empty MQTT publish: it holds no row".to_string(),
                Vec::new(),
            ))
        } else if p.payload.len() > self.max_payload {
            Some((
                format!(
                    "MQTT publish of {} bytes on '{}' is larger than the maximum of {} bytes \
                     (max_row); refused (its first 256 bytes are kept here)",
                    p.payload.len(),
                    p.topic,
                    self.max_payload
                ),
                p.payload[..256.min(p.payload.len())].to_vec(),
            ))
        } else {
            None
        };
        if refused.is_some() {
            self.pending = Some(Pending {
                text: Bytes::new(),
                rows: Vec::new(),
                next: 0,
                token,
                refused,
            });
            return;
        }
        let (text, rows) = publish_rows(p.payload, self.format);
        self.pending = Some(Pending {
            text,
            rows,
            next: 0,
            token,
            refused: None,
        });
    }

    /// Wait for the next event up to `until`; a publish goes to the inbox.
    fn poll(&mut self, until: Instant) {
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if now < at {
                std::thread::sleep((at - now).min(until.saturating_duration_since(now)));
                return;
            }
            self.retry_at = None;
        }
        let wait = until.saturating_duration_since(Instant::now());
        match self.conn.recv_timeout(wait) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => self.inbox.push_back(p),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                // (the epoch moved on when the connection was lost)
                self.connected_at = Instant::now();
                self.health.connected.store(true, Ordering::Relaxed);
                tracing::info!("mqtt: reconnected to {}", self.url.display());
                self.failures = 0;
                // a persistent session keeps the subscription, a clean one does not
                let _ = self.subscribe();
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // acknowledgements still on their way belong to the lost connection: skip them
                // (an old packet id could name another publish in a new session)
                self.epoch.fetch_add(1, Ordering::SeqCst);
                if self.failures == 0 {
                    self.health.disconnects.fetch_add(1, Ordering::Relaxed);
                    self.health.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        "mqtt: connection to {} lost ({e}); reconnecting with backoff",
                        self.url.display()
                    );
                }
                self.retry_at = Some(Instant::now() + backoff(self.failures));
                self.failures += 1;
            }
            Err(rumqttc::RecvTimeoutError::Timeout) => {}
            Err(rumqttc::RecvTimeoutError::Disconnected) => self.ended = true,
        }
    }
}

/// The rows of one publish: its text (a JSON publish on one line) and where each row is in
/// it: the elements of a top-level JSON array or the payload itself; CSV lines.
pub fn publish_rows(payload: Bytes, format: RowFormat) -> (Bytes, Vec<Range<usize>>) {
    match format {
        RowFormat::Ndjson => {
            let text = one_line(payload);
            let rows = json_rows(&text);
            (text, rows)
        }
        RowFormat::Csv => {
            let mut rows = Vec::new();
            let mut start = 0;
            for line in payload.split_inclusive(|&b| b == b'\n') {
                let end = start + line.len();
                let row = line.strip_suffix(b"\n").unwrap_or(line);
                let row = row.strip_suffix(b"\r").unwrap_or(row);
                if !row.iter().all(u8::is_ascii_whitespace) {
                    rows.push(start..start + row.len());
                }
                start = end;
            }
            (payload, rows)
        }
    }
}

/// A publish's text with its line breaks (JSON whitespace outside strings, invalid inside
/// them) turned into spaces, so a pretty-printed row stays one row; copied only if it has any.
fn one_line(payload: Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', &payload).is_none() {
        return payload;
    }
    payload
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect::<Vec<u8>>()
        .into()
}

/// Where the rows of a (one-line) JSON publish are: the elements of a top-level array, or the
/// payload itself.
fn json_rows(text: &[u8]) -> Vec<Range<usize>> {
    let Some(start) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Vec::new();
    };
    // the publish as one row
    let whole = || std::iter::once(start..text.len()).collect::<Vec<_>>();
    if text[start] != b'[' {
        return whole();
    }
    // split the array's elements at top-level commas
    let mut rows = Vec::new();
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut elem = start + 1;
    for (i, &b) in text.iter().enumerate().skip(start) {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    if !text[elem..i].iter().all(u8::is_ascii_whitespace) {
                        rows.push(elem..i);
                    }
                    if !text[i + 1..].iter().all(u8::is_ascii_whitespace) {
                        // text after the array: the whole publish as one row, which
                        // `prepare` refuses with the reason
                        return whole();
                    }
                    return rows;
                }
            }
            b',' if depth == 1 => {
                rows.push(elem..i);
                elem = i + 1;
            }
            _ => {}
        }
    }
    // unterminated array: one row, refused by `prepare` with the reason
    whole()
}

impl Source for MqttSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(self.format)
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        Ok(match self.format {
            RowFormat::Csv => self.url.header.as_ref().map(|h| h.as_bytes().to_vec()),
            RowFormat::Ndjson => None,
        })
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        let mut block = RowBlock::default();
        self.read_block(1, None, &mut block)?;
        if block.ends.is_empty() {
            return Ok(Read::End);
        }
        buf.extend_from_slice(block.bytes.strip_suffix(b"\n").unwrap_or(&block.bytes));
        Ok(Read::Row)
    }

    fn read_block(
        &mut self,
        max: usize,
        max_wait: Option<Duration>,
        block: &mut RowBlock,
    ) -> Result<(), IoError> {
        let mut deadline: Option<Instant> = None;
        let (mut first, mut last, mut publishes) = (None, None, 0u64);
        loop {
            // rows already received first
            if let Some(p) = &mut self.pending {
                if let Some(r) = p.refused.take() {
                    block.first_at.get_or_insert_with(Instant::now);
                    block.rejected.push(r);
                }
                while p.next < p.rows.len() && block.ends.len() < max {
                    block.first_at.get_or_insert_with(Instant::now);
                    block
                        .bytes
                        .extend_from_slice(&p.text[p.rows[p.next].clone()]);
                    block.bytes.push(b'\n');
                    block.ends.push(block.bytes.len());
                    p.next += 1;
                }
                if p.next == p.rows.len() {
                    // the publish's last row is in this block: its ack rides with it
                    if let Some(t) = p.token {
                        block.acks.push(t);
                    }
                    self.pending = None;
                }
            }
            if deadline.is_none() && !block.is_empty() {
                deadline = max_wait.map(|w| Instant::now() + w);
            }
            if block.ends.len() >= max {
                self.stalls = (0, 0);
                return Ok(());
            }
            if self.pending.is_none() {
                if let Some(p) = self.inbox.pop_front() {
                    self.take(p);
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = Some(now);
                    publishes += 1;
                    continue;
                }
            }
            if self.ended || self.stop.load(Ordering::Relaxed) {
                block.ended = true;
                return Ok(());
            }
            let now = Instant::now();
            if block.is_empty() && block.give_up_at.is_some_and(|g| now >= g) {
                return Ok(());
            }
            if let Some(d) = deadline {
                if now >= d {
                    match (first, last, max_wait) {
                        // everything arrived at once, then nothing: the broker may be waiting
                        (Some(f), Some(l), Some(w)) if l - f < w / 4 => {
                            self.hint_inflight_limit(publishes, max)
                        }
                        _ => self.stalls = (0, 0),
                    }
                    return Ok(());
                }
            }
            let until = deadline
                .or(block.give_up_at)
                .map_or(now + TICK, |d| d.min(now + TICK));
            self.poll(until);
        }
    }

    fn acker(&mut self) -> Option<Box<dyn Acker>> {
        Some(Box::new(MqttAcker {
            client: self.client.clone(),
            epoch: self.epoch.clone(),
            unacked: self.unacked.clone(),
            topic: self.url.topic.clone(),
        }))
    }

    fn link(&self) -> Option<Arc<LinkHealth>> {
        Some(self.health.clone())
    }
}

impl MqttSource {
    /// At QoS 1 a broker sends only so many unacknowledged publishes (mosquitto: 20 by
    /// default); a buffer larger than that then closes by time only. Say so once, when three
    /// messages in a row ended that way after the same number of publishes.
    fn hint_inflight_limit(&mut self, publishes: u64, max: usize) {
        let unacked = self.unacked.load(Ordering::Relaxed);
        let settled = self.connected_at.elapsed() > Duration::from_secs(2);
        if !(settled && self.url.qos == 1 && publishes >= 10 && unacked == publishes) {
            self.stalls = (0, 0);
            return;
        }
        self.stalls = match self.stalls {
            (p, n) if p == publishes => (p, n + 1),
            _ => (publishes, 1),
        };
        if !self.hinted && self.stalls.1 >= 3 {
            self.hinted = true;
            tracing::warn!(
                "mqtt: the broker stopped after {unacked} unacknowledged publishes \
                 (its in-flight limit at QoS 1; mosquitto: max_inflight_messages, default 20), \
                 so messages close by max_wait with fewer than {max} rows; raise the broker's \
                 limit or use a buffer of {unacked} or less"
            );
        }
    }
}

/// Acknowledges publishes of the current connection; those of an older one are left to the
/// broker's redelivery.
struct MqttAcker {
    client: Client,
    epoch: Arc<AtomicU64>,
    unacked: Arc<AtomicU64>,
    topic: String,
}

impl Acker for MqttAcker {
    fn ack(&mut self, tokens: &[AckToken]) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        for &t in tokens {
            self.unacked.fetch_sub(1, Ordering::Relaxed);
            if t >> 32 != epoch {
                continue;
            }
            let qos = match (t >> 16) & 0xffff {
                1 => QoS::AtLeastOnce,
                2 => QoS::ExactlyOnce,
                _ => continue,
            };
            let mut p = Publish::new(self.topic.clone(), qos, Vec::new());
            p.pkid = (t & 0xffff) as u16;
            // the connection is driven by the reading thread; a full queue means it is
            // blocked, and the broker will redeliver what is not acknowledged
            let _ = self.client.try_ack(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{json_rows, one_line};

    #[test]
    fn splits_arrays_into_rows_and_keeps_single_rows_whole() {
        let rows = |s: &str| -> Vec<String> {
            let text = one_line(bytes::Bytes::copy_from_slice(s.as_bytes()));
            json_rows(&text)
                .into_iter()
                .map(|r| String::from_utf8(text[r].to_vec()).unwrap())
                .collect()
        };
        assert_eq!(rows(r#"{"a":1}"#), vec![r#"{"a":1}"#]);
        assert_eq!(
            rows(r#" [{"a":1,"s":"x],{"}, {"a":[2,3]} ] "#),
            vec![r#"{"a":1,"s":"x],{"}"#, r#" {"a":[2,3]} "#]
        );
        assert_eq!(rows("[]"), Vec::<String>::new());
        assert_eq!(rows("{\n\"a\": 1\n}"), vec!["{ \"a\": 1 }"]);
        // malformed: one row, which prepare refuses with a reason
        assert_eq!(rows(r#"[{"a":1}"#), vec![r#"[{"a":1}"#]);
        assert_eq!(rows(r#"[{"a":1}] x"#), vec![r#"[{"a":1}] x"#]);
    }
}
