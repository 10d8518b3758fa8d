//! The coordinator: the process that reads the source sends each message as one task to the
//! task stream, reads the results from its own reply stream, drops duplicates by sequence
//! number and delivers in input order. It keeps every message until its result has arrived,
//! so a task Redis lost (a restart without persistence) is sent again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use streamprep_core::{AckToken, IoError, LinkHealth, Message};
use streamprep_engine::chain::{encode_output, Processed};
use streamprep_engine::{Remote, RemoteJob};

use crate::keyed::KeyedTasks;
use crate::redis_io::{
    connect, ensure_group, is_lost, stream_entries, worker_distance, xadd, Conn, TASKS,
};
use crate::wire::{is_arrow, job_spec, parse_result, rtt_of, take_state, task, worker_of, Fields};

/// With nothing outstanding, how long to wait for the source before looking again.
const SOURCE_WAIT: Duration = Duration::from_millis(200);

/// With tasks outstanding and no result for this long, say that no worker seems to run.
const NO_WORKER_HINT: Duration = Duration::from_secs(10);

/// The queue method's executor: `--method queue --broker redis://...`.
#[derive(Debug, Clone)]
pub struct Queue {
    /// The Redis URL.
    pub url: String,
    /// A task with no result for this long is sent again if it is no longer in the stream
    /// (Redis lost it); after a reconnect, at once.
    pub resend_after: Duration,
    /// Bytes of tasks outstanding, at most (besides `in_flight` messages): large messages
    /// must not pile up in Redis.
    pub max_bytes: usize,
    /// The largest task sent: a larger one is a dead letter (Redis would close the connection
    /// on it). [`MAX_TASK_BYTES`], Redis' default `proto-max-bulk-len`, unless the broker is
    /// set lower.
    pub max_task_bytes: usize,
    /// With tasks outstanding and no result for this long: fail (`profile`); `None` waits,
    /// saying once that no worker seems to be running.
    pub give_up_after: Option<Duration>,
    /// Connected to Redis or not, and connections lost (the status line shows it).
    pub health: Arc<LinkHealth>,
    /// Send tasks, and have results sent, LZ4-compressed (`--task-compression lz4`): less to
    /// carry between hosts, more CPU at both ends.
    pub lz4: bool,
    /// Decide `lz4` from the workers' round trip to Redis (`--task-compression auto`): LZ4
    /// once the workers whose results came are [`AUTO_LZ4_RTT`] or more away on average.
    pub auto_lz4: bool,
}

pub use streamprep_engine::planner::AUTO_LZ4_RTT;

impl Queue {
    /// Check that Redis answers (a clear error before anything runs).
    pub fn new(url: &str) -> Result<Self, IoError> {
        let mut con = connect(url)?;
        ensure_group(&mut con)?;
        Ok(Queue {
            url: url.to_string(),
            resend_after: Duration::from_secs(60),
            max_bytes: 64 << 20,
            max_task_bytes: MAX_TASK_BYTES,
            give_up_after: None,
            health: Arc::new(LinkHealth {
                connected: AtomicBool::new(true),
                ..LinkHealth::default()
            }),
            lz4: false,
            auto_lz4: false,
        })
    }
}

struct Sent {
    /// The task's entry id.
    id: String,
    fields: Fields,
    acks: Vec<AckToken>,
    dropped: usize,
    arrived: Option<(Instant, Instant)>,
    at: Instant,
}

/// The largest value Redis takes by default (`proto-max-bulk-len`, 512 MB).
pub const MAX_TASK_BYTES: usize = 512 << 20;

/// The bytes of a message's rows (what its task carries, before compression).
fn raw_size(msg: &streamprep_core::Message) -> usize {
    match &msg.payload {
        streamprep_core::Payload::Raw { bytes, ends, .. } => bytes.len() + 8 * ends.len(),
        streamprep_core::Payload::Columnar(b) => b.get_array_memory_size(),
    }
}

/// A connection that reconnects with backoff, saying so once.
struct Link {
    url: String,
    health: Arc<LinkHealth>,
    con: Option<Conn>,
    /// Set when a lost connection came back: what Redis held may be gone.
    reconnected: bool,
}

impl Link {
    fn get(&mut self) -> &mut Option<Conn> {
        let mut failures = 0u32;
        while self.con.is_none() {
            match connect(&self.url) {
                Ok(c) => {
                    if failures > 0 {
                        tracing::info!("queue: reconnected to {}", self.url);
                    }
                    self.con = Some(c);
                    self.health.connected.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("queue: {e}; retrying with backoff");
                    }
                    failures += 1;
                    if failures > 60 {
                        return &mut self.con;
                    }
                    std::thread::sleep(Duration::from_millis(
                        (100u64 << failures.min(5)).min(2000),
                    ));
                }
            }
        }
        &mut self.con
    }

    /// Run `f` on the connection; a lost connection is retried (60 attempts, up to 2 s apart).
    fn with<T>(
        &mut self,
        mut f: impl FnMut(&mut Conn) -> Result<T, IoError>,
    ) -> Result<T, IoError> {
        let mut lost = 0u32;
        loop {
            let Some(con) = self.get().as_mut() else {
                return Err(IoError::Protocol(format!(
                    "lost Redis at {} and could not reconnect",
                    self.url
                )));
            };
            match f(con) {
                Ok(v) => return Ok(v),
                Err(e) if con.is_open() && !is_lost(&e) => return Err(e),
                Err(e) => {
                    // Redis answers and then drops the same command again: it is the
                    // command, not the link (say so, and stop, instead of looping)
                    lost += 1;
                    if lost >= 8 {
                        return Err(IoError::Protocol(format!(
                            "Redis at {} closed the connection on the same command {lost} times \
                             in a row ({e}); giving up",
                            self.url
                        )));
                    }
                    if lost > 1 {
                        std::thread::sleep(Duration::from_millis(100u64 << lost.min(4)));
                    }
                    tracing::warn!("queue: {e}; reconnecting");
                    self.con = None;
                    self.reconnected = true;
                    self.health.connected.store(false, Ordering::Relaxed);
                    self.health.disconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Remote for Queue {
    fn health(&self) -> Option<Arc<LinkHealth>> {
        Some(self.health.clone())
    }

    fn execute(
        &self,
        job: &RemoteJob,
        in_flight: usize,
        next: &mut (dyn FnMut() -> Result<Option<Message>, IoError> + Send),
        deliver: &mut (dyn FnMut(Processed) -> Result<(), IoError> + Send),
        stop: &AtomicBool,
    ) -> Result<(), IoError> {
        // the source is read on a thread of its own, a message each time the window has room
        // (as if called here): waiting for a live source's next message must not keep results
        // waiting in Redis
        let (want_tx, want_rx) = crossbeam_channel::unbounded::<()>();
        let (tx, rx) = crossbeam_channel::unbounded::<Result<Option<Message>, IoError>>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for () in want_rx {
                    let m = next();
                    let last = !matches!(m, Ok(Some(_)));
                    if tx.send(m).is_err() || last {
                        break;
                    }
                }
            });
            let source = Source {
                want: want_tx,
                got: rx,
                asked: 0,
            };
            let r = self.coordinate(job, in_flight, source, deliver);
            if r.is_err() {
                // a source waiting for rows nobody will take returns (the thread ends)
                stop.store(true, Ordering::SeqCst);
            }
            r
        })
    }
}

/// The source's thread: asked for as many messages as the window has room for.
struct Source {
    want: crossbeam_channel::Sender<()>,
    got: crossbeam_channel::Receiver<Result<Option<Message>, IoError>>,
    /// Messages asked for and not yet taken.
    asked: usize,
}

impl Source {
    /// The next message if the source has it within `wait` (`Ok(None)` at its end; `Err(None)`
    /// when it has none yet), `room` being how many messages the window can take.
    fn next(&mut self, room: usize, wait: Duration) -> Result<Option<Message>, Option<IoError>> {
        // (a source that ended takes no more asks; what it read is still in `got`, its end last)
        while self.asked < room && self.want.send(()).is_ok() {
            self.asked += 1;
        }
        let got = if wait.is_zero() {
            self.got.try_recv().map_err(|e| e.is_disconnected())
        } else {
            self.got.recv_timeout(wait).map_err(|e| e.is_disconnected())
        };
        match got {
            Ok(m) => {
                self.asked = self.asked.saturating_sub(1);
                m.map_err(Some)
            }
            Err(true) => Ok(None),
            Err(false) => Err(None),
        }
    }
}

impl Queue {
    fn coordinate(
        &self,
        job: &RemoteJob,
        in_flight: usize,
        mut source: Source,
        deliver: &mut (dyn FnMut(Processed) -> Result<(), IoError> + Send),
    ) -> Result<(), IoError> {
        let mut link = Link {
            url: self.url.clone(),
            health: self.health.clone(),
            con: None,
            reconnected: false,
        };
        link.with(ensure_group)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let reply = format!("streamprep:results:{}:{nanos}", std::process::id());
        let spec = job_spec(job);
        // the sink's encoding, for the outputs far workers send as their batch alone
        let mut encoder = streamprep_ops::result::ResultStep::new(job.encoding);
        // with auto: the workers' round trips reported with their results (sum, count)
        let mut lz4 = self.lz4;
        let mut rtts = (0u64, 0u64);
        if self.auto_lz4 && !lz4 {
            // the workers running now said how far they are: no need to wait for results
            // (a hint: a Redis that refuses it leaves the choice to the results)
            if let Ok(Some((mean, n))) = link.with(worker_distance) {
                if mean >= AUTO_LZ4_RTT {
                    lz4 = true;
                    tracing::info!(
                        "queue: the {n} worker thread(s) running are {:.1} ms from Redis on average (round trip): tasks and results LZ4-compressed (task_compression = \"auto\")",
                        mean.as_secs_f64() * 1e3
                    );
                }
            }
        }
        let mut sent: BTreeMap<u64, Sent> = BTreeMap::new();
        let mut done: BTreeMap<u64, Processed> = BTreeMap::new();
        // workers numbered in the order their first result came (metrics count them)
        let mut workers: HashMap<Vec<u8>, usize> = HashMap::new();
        let (mut next_seq, mut eof, mut last_id) = (0u64, false, "0-0".to_string());
        let size = |f: &Fields| f.iter().map(|(_, v)| v.len()).sum::<usize>();
        let mut bytes = 0usize;
        // result entries read and not yet deleted from the reply stream
        let mut read: Vec<String> = Vec::new();
        // the last result (or the last moment nothing was outstanding), and whether the user
        // was told that no result comes
        let (mut progress, mut warned) = (Instant::now(), false);
        // a keyed run: each key's state travels with its tasks
        let mut keyed = job.key.clone().map(|r| KeyedTasks::new(r, job.max_keys));
        if let Some(k) = keyed.as_mut() {
            load_states(job, k);
        }
        let result = (|| -> Result<(), IoError> {
            loop {
                // deliver what is ready first: it makes room in the window
                while let Some(p) = done.remove(&next_seq) {
                    deliver(p)?;
                    next_seq += 1;
                }
                // send while the window has room (sent, parked behind their keys and not
                // yet delivered); a parked message whose key is free goes first
                loop {
                    let parked = keyed.as_ref().map_or(0, KeyedTasks::parked);
                    let (mut msg, state) = match keyed.as_mut().and_then(KeyedTasks::unpark) {
                        Some((m, s)) => (m, Some(s)),
                        None => {
                            if eof
                                || sent.len() + done.len() + parked >= in_flight
                                || !(sent.is_empty() || bytes < self.max_bytes)
                            {
                                break;
                            }
                            // a message the source has ready; none ready: read results
                            // (or, with none outstanding, wait for the source)
                            let wait = if sent.is_empty() && done.is_empty() && parked == 0 {
                                SOURCE_WAIT
                            } else {
                                Duration::ZERO
                            };
                            let room = in_flight - (sent.len() + done.len() + parked);
                            let mut msg = match source.next(room, wait) {
                                Ok(Some(m)) => m,
                                Ok(None) => {
                                    eof = true;
                                    break;
                                }
                                Err(Some(e)) => return Err(e),
                                Err(None) => break,
                            };
                            if msg.payload.rows() == 0 {
                                // nothing for a worker to do (shed, or only refused rows)
                                let mut p = Processed::refused(
                                    msg.seq,
                                    0,
                                    std::mem::take(&mut msg.rejected),
                                );
                                p.acks = std::mem::take(&mut msg.acks);
                                p.dropped = msg.dropped;
                                done.insert(msg.seq, p);
                                continue;
                            }
                            match keyed.as_mut() {
                                Some(k) => match k.admit(msg) {
                                    Some((m, s)) => (m, Some(s)),
                                    None => continue,
                                },
                                None => (msg, None),
                            }
                        }
                    };
                    let acks = std::mem::take(&mut msg.acks);
                    let dropped = msg.dropped;
                    let arrived = msg.arrived;
                    let seq = msg.seq;
                    // a task Redis cannot take (over its bulk limit, it closes the
                    // connection) becomes a dead letter, not a resend for ever
                    // (a copy of the rows is kept only for a message that may be that large)
                    let rows = msg.payload.rows();
                    let kept =
                        (raw_size(&msg) > self.max_task_bytes / 2).then(|| msg.payload.clone());
                    let mut fields = task(&reply, &spec, msg, lz4)?;
                    if self.auto_lz4 && !lz4 {
                        // not yet known to be far: a far worker compresses its result
                        fields.push(("z", b"auto".to_vec()));
                    }
                    if let Some(s) = state {
                        fields.push(("state", s));
                    }
                    if size(&fields) > self.max_task_bytes {
                        let dead = streamprep_core::DeadLetter {
                            seq,
                            step: "queue".into(),
                            reason: format!(
                                "the task of this message is {} MB, over Redis' limit of {} MB \
                                 for one value (proto-max-bulk-len): lower --buffer",
                                size(&fields) >> 20,
                                self.max_task_bytes >> 20
                            ),
                            data: kept
                                .as_ref()
                                .map(streamprep_engine::chain::message_data)
                                .unwrap_or_default(),
                            rows,
                        };
                        let mut p = Processed::refused(seq, rows, vec![dead]);
                        p.acks = acks;
                        p.dropped = dropped;
                        done.insert(seq, p);
                        if let Some(k) = keyed.as_mut() {
                            k.finished(seq, None);
                        }
                        continue;
                    }
                    let task_mb = size(&fields) as f64 / (1 << 20) as f64;
                    let id = link.with(|c| xadd(c, TASKS, &fields)).map_err(|e| {
                        IoError::Protocol(format!(
                            "sending message {seq}'s task ({task_mb:.1} MB) to Redis: {e}; if \
                             the broker's proto-max-bulk-len is below that, lower the buffer"
                        ))
                    })?;
                    bytes += size(&fields);
                    if sent.is_empty() {
                        progress = Instant::now(); // the wait for a result starts now
                    }
                    sent.insert(
                        seq,
                        Sent {
                            id,
                            fields,
                            acks,
                            dropped,
                            arrived,
                            at: Instant::now(),
                        },
                    );
                }
                let delivered = next_seq;
                while let Some(p) = done.remove(&next_seq) {
                    deliver(p)?;
                    next_seq += 1;
                }
                if eof
                    && sent.is_empty()
                    && done.is_empty()
                    && keyed.as_ref().is_none_or(|k| k.parked() == 0)
                {
                    return Ok(());
                }
                if next_seq != delivered && !eof {
                    continue; // that made room: send before waiting for results
                }
                if sent.is_empty() && !eof {
                    continue; // nothing to wait for in Redis: wait for the source
                }
                // while the source may bring a message, wait for results only briefly
                let room = sent.len() + done.len() < in_flight;
                let block = if eof || !room { "200" } else { "2" };
                // results, in one round trip with the deletion of the ones read last time
                let v: Value = link.with(|c| {
                    let xread: [&[u8]; 7] = [
                        b"XREAD",
                        b"COUNT",
                        b"256",
                        b"BLOCK",
                        block.as_bytes(),
                        b"STREAMS",
                        reply.as_bytes(),
                    ];
                    let mut xread = xread.to_vec();
                    xread.push(last_id.as_bytes());
                    let mut xdel: Vec<&[u8]> = vec![b"XDEL", reply.as_bytes()];
                    xdel.extend(read.iter().map(|id| id.as_bytes()));
                    let cmds: Vec<&[&[u8]]> = if read.is_empty() {
                        vec![&xread]
                    } else {
                        vec![&xdel, &xread]
                    };
                    Ok(c.pipe("XREAD", &cmds)?.pop().unwrap_or(Value::Nil))
                })?;
                let entries = stream_entries(v);
                if !entries.is_empty() || sent.is_empty() {
                    progress = Instant::now();
                    warned = false;
                }
                let silent = progress.elapsed();
                let hint = || {
                    format!(
                        "no result from any worker for {} s: is `streamprep worker --broker {}` running?",
                        silent.as_secs(),
                        self.url
                    )
                };
                if self.give_up_after.is_some_and(|t| silent >= t) {
                    return Err(IoError::Protocol(hint()));
                }
                if !warned && silent >= NO_WORKER_HINT {
                    tracing::warn!("queue: {}", hint());
                    warned = true;
                }
                read = entries.iter().map(|(id, _)| id.clone()).collect();
                if let Some(id) = read.last() {
                    last_id = id.clone();
                }
                for (_, mut fields) in entries {
                    let worker = worker_of(&fields).to_vec();
                    if let (true, Some(us)) = (self.auto_lz4 && !lz4, rtt_of(&fields)) {
                        rtts = (rtts.0 + us, rtts.1 + 1);
                        let mean = Duration::from_micros(rtts.0 / rtts.1);
                        if rtts.1 >= 4 && mean >= AUTO_LZ4_RTT {
                            lz4 = true;
                            tracing::info!(
                                "queue: the workers are {:.1} ms from Redis (round trip): tasks and results LZ4-compressed from now on (task_compression = \"auto\")",
                                mean.as_secs_f64() * 1e3
                            );
                        }
                    }
                    let state = take_state(&mut fields);
                    let arrow = is_arrow(&fields);
                    let mut p = parse_result(fields)?;
                    // a result for a message already delivered or received is a duplicate
                    if let Some(s) = sent.remove(&p.seq) {
                        if arrow {
                            // the worker's `result` stage, run here: its time counts as the
                            // message's
                            let t = Instant::now();
                            encode_output(&mut encoder, &mut p);
                            let took = t.elapsed();
                            p.service += took;
                            if let Some(last) = p.stages.last_mut() {
                                *last += took;
                            }
                        }
                        if let Some(k) = keyed.as_mut() {
                            k.finished(p.seq, state);
                        }
                        bytes -= size(&s.fields);
                        p.acks = s.acks;
                        p.dropped = s.dropped;
                        p.arrived = s.arrived;
                        let n = workers.len();
                        p.worker = *workers.entry(worker).or_insert(n);
                        done.insert(p.seq, p);
                    }
                }
                // tasks without a result for too long, or sent before the connection was
                // lost (Redis may have restarted empty): send them again; a second result is
                // dropped as a duplicate
                let now = Instant::now();
                let all = std::mem::take(&mut link.reconnected);
                if all {
                    link.with(ensure_group)?;
                }
                for s in sent.values_mut() {
                    if !all && now.duration_since(s.at) <= self.resend_after {
                        continue;
                    }
                    s.at = now;
                    // a task still in the stream is only waiting for a worker
                    let present: Value = link.with(|c| {
                        let id = s.id.as_bytes();
                        c.cmd("XRANGE", &[b"XRANGE", TASKS.as_bytes(), id, id])
                    })?;
                    if matches!(&present, Value::Array(a) if !a.is_empty()) {
                        continue;
                    }
                    s.id = link.with(|c| xadd(c, TASKS, &s.fields))?;
                }
            }
        })();
        if let Some(c) = link.con.as_mut() {
            // on the way out after an error, tasks nobody will wait for are withdrawn
            if !sent.is_empty() {
                let mut xdel: Vec<&[u8]> = vec![b"XDEL", TASKS.as_bytes()];
                xdel.extend(sent.values().map(|s| s.id.as_bytes()));
                let _ = c.cmd("XDEL", &xdel);
            }
            let _ = c.cmd("DEL", &[b"DEL", reply.as_bytes()]);
        }
        if let (Ok(()), Some(k)) = (&result, &keyed) {
            save_states(job, k);
        }
        result
    }
}

/// Take back the state the last run of this chain saved, cut into one piece a key.
fn load_states(job: &RemoteJob, keyed: &mut KeyedTasks) {
    let (Some(slot), Some(router)) = (&job.state, &job.key) else {
        return;
    };
    let Some(bytes) = slot.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    // (a saved state of another chain or key: the pipeline said so already)
    let Ok(saved) =
        streamprep_engine::state::SavedState::read(&bytes, &job.chain, Some(router.key()))
    else {
        return;
    };
    let chain = streamprep_engine::chain::Chain::new(&job.chain, job.prepare.clone(), job.encoding);
    match chain
        .map_err(|e| e.to_string())
        .and_then(|c| c.split_state(&saved.steps))
    {
        Ok(keys) => keyed.load(
            keys.into_iter()
                .map(|(k, s)| (k, streamprep_engine::state::key_state_to_bytes(&s)))
                .collect(),
        ),
        Err(e) => tracing::warn!("queue: the saved state cannot be taken back: {e}"),
    }
}

/// Leave every key's state for the next run of this chain.
fn save_states(job: &RemoteJob, keyed: &KeyedTasks) {
    let (Some(slot), Some(router)) = (&job.state, &job.key) else {
        return;
    };
    let states = keyed
        .states()
        .into_iter()
        .filter_map(|s| streamprep_engine::state::key_state_from_bytes(s).ok())
        .collect();
    if let Some(s) =
        streamprep_engine::state::SavedState::gather(&job.chain, Some(router.key()), states)
    {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.to_bytes());
    }
}
