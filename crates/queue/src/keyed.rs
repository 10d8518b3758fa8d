//! Keyed runs on the queue: each message holds one key's rows (the keyed buffer makes them so),
//! and the key's state travels with its task. The coordinator keeps each key's state (as a
//! chain holding only that key saves it), sends a key's next message only once the result of
//! its last one has come back with the new state, and parks it meanwhile; other keys' messages
//! go on in parallel to any worker. A worker that dies mid-task costs nothing: the task is
//! claimed by another worker with the same state.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use streamprep_core::Message;
use streamprep_engine::keyed::KeyRouter;

/// The keys' states, the keys in flight and the messages parked behind them.
pub(crate) struct KeyedTasks {
    router: KeyRouter,
    /// Key -> its state (the chain's, per step, as bytes) and when it was last used.
    states: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Keys by last use (least recent first), when bounded.
    order: BTreeMap<u64, Vec<u8>>,
    tick: u64,
    max_keys: Option<usize>,
    /// Sequence number -> key, for the tasks sent.
    in_flight: HashMap<u64, Vec<u8>>,
    busy: HashSet<Vec<u8>>,
    parked: VecDeque<(Vec<u8>, Message)>,
    /// Keys whose state was dropped beyond `max_keys`.
    pub(crate) evicted: u64,
}

impl KeyedTasks {
    pub(crate) fn new(router: KeyRouter, max_keys: Option<usize>) -> Self {
        KeyedTasks {
            router,
            states: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            max_keys,
            in_flight: HashMap::new(),
            busy: HashSet::new(),
            parked: VecDeque::new(),
            evicted: 0,
        }
    }

    /// The key of a message (its first row's; `[0]` for rows without one).
    pub(crate) fn key_of(&self, msg: &Message) -> Vec<u8> {
        let first = match &msg.payload {
            streamprep_core::Payload::Raw { format, .. } => msg
                .payload
                .raw_rows()
                .next()
                .and_then(|r| self.router.key_of(*format, r)),
            streamprep_core::Payload::Columnar(_) => None,
        };
        match first {
            Some(k) => {
                let mut v = Vec::with_capacity(k.len() + 1);
                v.push(1);
                v.extend_from_slice(&k);
                v
            }
            None => vec![0],
        }
    }

    /// Messages parked behind their keys.
    pub(crate) fn parked(&self) -> usize {
        self.parked.len()
    }

    /// A message to send now with its key's state, or `None` when its key is busy (it is
    /// parked, to go after the key's result).
    pub(crate) fn admit(&mut self, msg: Message) -> Option<(Message, Vec<u8>)> {
        let key = self.key_of(&msg);
        if self.busy.contains(&key) || self.parked.iter().any(|(k, _)| *k == key) {
            self.parked.push_back((key, msg));
            return None;
        }
        Some(self.start(key, msg))
    }

    /// The first parked message whose key is free now, with its key's state.
    pub(crate) fn unpark(&mut self) -> Option<(Message, Vec<u8>)> {
        let at = self
            .parked
            .iter()
            .position(|(k, _)| !self.busy.contains(k))?;
        let (key, msg) = self.parked.remove(at)?;
        Some(self.start(key, msg))
    }

    fn start(&mut self, key: Vec<u8>, msg: Message) -> (Message, Vec<u8>) {
        let state = self
            .states
            .get(&key)
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        self.busy.insert(key.clone());
        self.in_flight.insert(msg.seq, key);
        (msg, state)
    }

    /// A task's result came back (`state`: the key's new state; `None` when the worker gave
    /// the message up, and the key keeps the state it had).
    pub(crate) fn finished(&mut self, seq: u64, state: Option<Vec<u8>>) {
        let Some(key) = self.in_flight.remove(&seq) else {
            return;
        };
        self.busy.remove(&key);
        if let Some(s) = state {
            self.put(key, s);
        }
    }

    fn put(&mut self, key: Vec<u8>, state: Vec<u8>) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, t)) = self.states.get(&key) {
            self.order.remove(t);
        } else if let Some(max) = self.max_keys {
            while self.states.len() >= max {
                let Some((_, old)) = self.order.pop_first() else {
                    break;
                };
                self.states.remove(&old);
                self.evicted += 1;
            }
        }
        if self.max_keys.is_some() {
            self.order.insert(tick, key.clone());
        }
        self.states.insert(key, (state, tick));
    }

    /// Take back saved states: `(key as the steps name it, its state)`.
    pub(crate) fn load(&mut self, saved: Vec<(String, Vec<u8>)>) {
        for (k, s) in saved {
            let mut key = vec![1];
            key.extend_from_slice(k.as_bytes());
            self.put(key, s);
        }
    }

    /// Every key's state, as its chain saved it.
    pub(crate) fn states(&self) -> Vec<&[u8]> {
        self.states.values().map(|(s, _)| s.as_slice()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_core::{Payload, RowFormat};

    fn msg(seq: u64, key: &str) -> Message {
        let row = format!("{{\"k\":\"{key}\"}}\n");
        Message::new(
            seq,
            Payload::Raw {
                format: RowFormat::Ndjson,
                ends: vec![row.len()],
                bytes: row.into_bytes(),
            },
        )
    }

    #[test]
    fn a_keys_next_task_waits_for_its_last_result_and_takes_its_state() {
        let mut k = KeyedTasks::new(KeyRouter::new("k", 1, None, b','), Some(2));
        let (m, s) = k.admit(msg(0, "a")).expect("a goes");
        assert_eq!((m.seq, s.len()), (0, 0), "a first: no state");
        assert!(k.admit(msg(1, "a")).is_none(), "a is busy: parked");
        let (m, _) = k.admit(msg(2, "b")).expect("b goes");
        assert_eq!(m.seq, 2);
        assert!(k.unpark().is_none());
        k.finished(0, Some(b"a1".to_vec()));
        let (m, s) = k.unpark().expect("a's next");
        assert_eq!((m.seq, s.as_slice()), (1, &b"a1"[..]));
        // a result without a state (given up): the key keeps what it had
        k.finished(1, None);
        let (_, s) = k.admit(msg(3, "a")).expect("a again");
        assert_eq!(s, b"a1");
        k.finished(3, Some(b"a2".to_vec()));
        k.finished(2, Some(b"b1".to_vec()));
        // a third key: beyond max_keys the least recently used (a) goes
        let (_, _) = k.admit(msg(4, "c")).expect("c");
        k.finished(4, Some(b"c1".to_vec()));
        assert_eq!(k.evicted, 1);
        let (_, s) = k.admit(msg(5, "a")).expect("a");
        assert!(s.is_empty(), "a starts afresh");
    }
}
